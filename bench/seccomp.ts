/**
 * Issue (3)'s benchmark: what the seccomp layer costs.
 *
 * - compiling a profile with libseccomp, cold, against taking it from the cache
 *   (what every run after the first pays: a Map lookup);
 * - the kernel's seccomp(2) load alone, timed in C (bench/seccomp-load.c);
 * - a whole run of a program that exits at once, with no filter, the default
 *   deny-list and the strict allow-list: the load is all that differs;
 * - a syscall-heavy program (10^6 getppid calls) filtered and not, side by
 *   side: the filter runs on every call.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { run } from '../src/index.js';
import { native, packageRoot } from '../src/native.js';
import { builtinNormalized, compileCached } from '../src/seccomp/index.js';
import { printTable, type Sample, summary, timeRuns } from './stats.js';

const PROFILES = ['none', 'default', 'strict'] as const;
const CALLS = 1_000_000;

export async function benchSeccomp(rootfs: string, n = 1000): Promise<void> {
  const prog = join(rootfs, 'bin/syscall-prog');
  execFileSync('cc', ['-static', '-O2', '-o', prog, join(packageRoot(), 'bench/syscall-prog.c')]);
  chmodSync(prog, 0o755);

  /* Compile: libseccomp every time (the memfd closed after) against the cache. */
  const compile: Sample[] = [];
  for (const name of ['default', 'strict'] as const) {
    const profile = builtinNormalized(name)!;
    const cold = await timeRuns(
      200,
      () => closeSync(native().compileSeccomp({ ...profile, pfc: false }).fd),
      5,
    );
    compileCached(profile, name);
    const cached = await timeRuns(200, () => compileCached(profile, name), 5);
    const insns = compileCached(profile, name).instructions;
    compile.push({ name: `${name}: compile`, times: cold, note: `${insns} BPF instructions` });
    compile.push({ name: `${name}: cached`, times: cached });
  }
  printTable('seccomp: compiling a profile (libseccomp) vs the per-process cache', compile);

  /* The kernel's part alone: seccomp(2) loading each compiled program, timed in C. */
  const loader = join(dirname(prog), 'seccomp-load');
  execFileSync('cc', ['-O2', '-o', loader, join(packageRoot(), 'bench/seccomp-load.c')]);
  for (const name of ['default', 'strict'] as const) {
    const filter = join(dirname(prog), `${name}.bpf`);
    writeFileSync(filter, readFileSync(`/proc/self/fd/${compileCached(builtinNormalized(name)!, name).fd}`));
    const us = execFileSync(loader, [filter, '500'], { encoding: 'utf8' }).trim();
    console.log(`  seccomp(2) load of ${name}, in a fresh process: ${us} us (median of 500)`);
    rmSync(filter);
  }
  rmSync(loader);

  /*
   * A run that exits at once: the filter's load is the only difference. The
   * profiles take turns, run by run, so drift in the machine hits them alike.
   */
  const launch: Sample[] = PROFILES.map((seccomp) => ({ name: `run, seccomp ${seccomp}`, times: [] }));
  for (let i = -20; i < n; i++) {
    for (const [k, seccomp] of PROFILES.entries()) {
      const start = performance.now();
      const r = await run({ rootfs, argv: ['/bin/syscall-prog'], seccomp, cgroups: false });
      if (i >= 0) launch[k]!.times.push(performance.now() - start);
      if (r.exitCode !== 0) throw new Error(`seccomp bench: ${seccomp} run failed: ${r.verdict}`);
    }
  }
  printTable(
    `seccomp: a whole run of a program that exits at once (${n} runs each, interleaved)`,
    launch,
    'run, seccomp none',
  );
  const base = summary(launch[0]!.times).p50;
  for (const s of launch.slice(1))
    console.log(
      `  ${s.name}: ${((summary(s.times).p50 - base) * 1000).toFixed(0)} us more per run than no filter (p50)`,
    );

  /* A syscall-heavy program: every call goes through the filter. */
  const heavy: Sample[] = [];
  for (const seccomp of PROFILES) {
    const times: number[] = [];
    for (let i = 0; i < 3; i++)
      await run({ rootfs, argv: ['/bin/syscall-prog', '1000'], seccomp, cgroups: false });
    for (let i = 0; i < 15; i++) {
      const r = await run({ rootfs, argv: ['/bin/syscall-prog', String(CALLS)], seccomp, cgroups: false });
      times.push(r.cpuTimeMs);
    }
    heavy.push({ name: `${CALLS} getppid, seccomp ${seccomp}`, times, note: 'CPU ms of the program' });
  }
  printTable(`seccomp: a syscall-heavy program, CPU time per ${CALLS} calls`, heavy, heavy[0]!.name);
  const none = summary(heavy[0]!.times).p50;
  for (const s of heavy.slice(1))
    console.log(
      `  ${s.name}: ${(((summary(s.times).p50 - none) * 1e6) / CALLS).toFixed(1)} ns more per call (p50)`,
    );
}
