/**
 * Issue (2)'s benchmark: a judge's workload. 1000 runs of a small static C
 * program (reads a number, prints its square) with every limit on, against the
 * same program spawned plainly and under bwrap in a cgroup the bench makes (how
 * an isolate-style judge would put a peer under limits); then the real
 * overshoot of each limit.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { run } from '../src/index.js';
import { packageRoot } from '../src/native.js';
import { printTable, type Sample, summary, timeConcurrent, timeRuns } from './stats.js';

const MiB = 1024 * 1024;

/** Every limit capsule has, as a judge would set them (also the table's judge rows: bench/table.ts). */
export const LIMITS = {
  cpuTimeLimitMs: 1000,
  wallTimeLimitMs: 2000,
  memoryLimitBytes: 64 * MiB,
  pidsLimit: 16,
  outputLimitBytes: MiB,
  fileSizeLimitBytes: MiB,
  openFilesLimit: 64,
  stackLimitBytes: 8 * MiB,
};

function check(stdout: string) {
  if (stdout !== '49\n') throw new Error(`judge bench: wrong answer ${JSON.stringify(stdout)}`);
}

/** A v1 cgroup per controller for bwrap, or one v2 cgroup: the bench's own, removed after. */
function peerCgroup(name: string): { procs: string[]; remove: () => void } {
  const dirs: string[] = [];
  const v1 = (controller: string, files: Record<string, string>) => {
    const dir = `/sys/fs/cgroup/${controller}/${name}`;
    mkdirSync(dir);
    dirs.push(dir);
    for (const [f, v] of Object.entries(files)) writeFileSync(join(dir, f), v);
  };
  v1('memory', { 'memory.limit_in_bytes': String(LIMITS.memoryLimitBytes) });
  /*
   * No pids limit for bwrap: when bwrap exits, its sandbox's PID 1 is reparented to the
   * host's init, and this host's init reaps late, so the zombies pile up against a shared
   * pids limit and fork fails with EAGAIN after a dozen runs. capsule reaps its own PID 1.
   */
  v1('pids', {});
  v1('cpuacct', {});
  return { procs: dirs.map((d) => join(d, 'cgroup.procs')), remove: () => dirs.forEach(removeWhenEmpty) };
}

/** rmdir a cgroup, waiting (up to 10 s) for zombies the host's init has yet to reap. */
function removeWhenEmpty(dir: string): void {
  for (const end = Date.now() + 10_000; ;) {
    try {
      rmdirSync(dir);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EBUSY' || Date.now() > end) throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    }
  }
}

export async function benchJudge({ rootfs, n }: { rootfs: string; n: number }): Promise<void> {
  const prog = join(rootfs, 'judge-prog');
  execFileSync('cc', ['-static', '-O2', '-o', prog, join(packageRoot(), 'bench/judge-prog.c')]);
  const once = async () =>
    check((await run({ rootfs, argv: ['/judge-prog'], stdin: '7\n', ...LIMITS })).stdout);

  const samples: Sample[] = [];
  samples.push({ name: 'node spawn (no sandbox)', times: await timeRuns(n, () => spawnInput(prog, [])) });
  samples.push({ name: 'capsule, every limit', times: await timeRuns(n, once) });
  const two = await timeConcurrent(n, 2, once);
  samples.push({
    name: 'capsule, every limit, 2 at once',
    times: two.times,
    runsPerSecond: two.runsPerSecond,
  });
  const four = await timeConcurrent(n, 4, once);
  samples.push({
    name: 'capsule, every limit, 4 at once',
    times: four.times,
    runsPerSecond: four.runsPerSecond,
  });

  const cg = peerCgroup(`capsule-bench-${process.pid}`);
  try {
    const join = cg.procs.map((p) => `echo $$ > ${p}`).join(' && ');
    const bwrap = `${join} && exec bwrap --unshare-all --die-with-parent --ro-bind ${rootfs} / --proc /proc --dev /dev /judge-prog`;
    samples.push({
      name: 'bwrap in a cgroup (sh + bwrap)',
      times: await timeRuns(Math.min(n, 500), () => spawnInput('/bin/sh', ['-c', bwrap])),
      note: 'one cgroup for all runs (memory limit only), no per-run accounting read',
    });
  } finally {
    cg.remove();
  }
  printTable(`A judge's run: square of a number, ${n} runs (ms per run)`, samples, 'node spawn (no sandbox)');
  const base = summary(samples[0]!.times);
  const ours = summary(samples[1]!.times);
  console.log(
    `capsule's overhead over a plain spawn: p50 ${(ours.p50 - base.p50).toFixed(3)} ms, p99 ${(ours.p99 - base.p99).toFixed(3)} ms`,
  );

  await benchOvershoot(rootfs);
}

/** How far past each limit a run goes before it is stopped. */
async function benchOvershoot(rootfs: string): Promise<void> {
  const N = 40;
  const cpu: number[] = [];
  const wall: number[] = [];
  const mem: number[] = [];
  for (let i = 0; i < N; i++) {
    const c = await run({ rootfs, argv: ['/judge-prog', 'burn'], cpuTimeLimitMs: 100 });
    cpu.push(c.cpuTimeMs - 100);
    const w = await run({ rootfs, argv: ['/bin/sleep', '10'], wallTimeLimitMs: 100 });
    wall.push(w.wallTimeMs - 100);
    const m = await run({ rootfs, argv: ['/judge-prog', 'mem', '128'], memoryLimitBytes: 32 * MiB });
    if (m.verdict !== 'MEMORY_LIMIT') throw new Error(`judge bench: expected MEMORY_LIMIT, got ${m.verdict}`);
    mem.push(((m.peakMemoryBytes ?? 0) - 32 * MiB) / MiB);
  }
  const line = (name: string, xs: number[], unit: string) => {
    const s = summary(xs);
    console.log(
      `  ${name.padEnd(34)} p50 ${s.p50.toFixed(2).padStart(7)} ${unit}   p99 ${s.p99.toFixed(2).padStart(7)} ${unit}`,
    );
  };
  console.log(`\nOvershoot past each limit (${N} runs each)`);
  line('CPU time past a 100 ms limit', cpu, 'ms');
  line('wall time past a 100 ms limit', wall, 'ms');
  line('peak memory past a 32 MiB limit', mem, 'MiB');
}

/** Spawn with "7\n" on stdin and check the answer. */
function spawnInput(cmd: string, args: string[]): Promise<void> {
  return import('node:child_process').then(
    ({ spawn }) =>
      new Promise<void>((resolve, reject) => {
        const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.on('error', reject);
        child.on('close', () => {
          try {
            check(out);
            resolve();
          } catch (e) {
            reject(e as Error);
          }
        });
        child.stdin.end('7\n');
      }),
  );
}
