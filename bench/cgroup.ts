/**
 * What a sandbox's cgroup costs per run, on this machine's layout:
 *  1. acquire + release from the pool, with the same limits every run and with limits that
 *     change every run (every limit file rewritten);
 *  2. the same with pooling off: mkdir + setup + rmdir every run;
 *  3. the move itself: a process writing "0" into the cgroup.procs of every hierarchy it
 *     joins, back to back and spaced out (cgroup migration takes cgroup_threadgroup_rwsem,
 *     a percpu rwsem whose writer side waits for an RCU grace period unless a writer was
 *     there recently; see kernel/cgroup/cgroup.c and the favordynmods mount option).
 * Warm-up first, then medians and p99 over many runs, as bench/run.ts does for the sandbox.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { type CgroupLayout, describeLayout, detectCgroups } from '../src/cgroup/detect.js';
import { layoutHierarchies } from '../src/cgroup/gc.js';
import { CgroupManager } from '../src/cgroup/manager.js';
import type { CgroupLimits } from '../src/cgroup/types.js';

export interface Quantiles {
  p50: number;
  p99: number;
  max: number;
  n: number;
}

export interface CgroupBenchResult {
  layout: CgroupLayout['mode'];
  hierarchies: number;
  pooledSameLimitsMs: Quantiles;
  pooledChangingLimitsMs: Quantiles;
  createRemoveMs: Quantiles;
  /** One process moving itself into all hierarchies (one "0" write per hierarchy), ms per move. */
  moveBackToBackMs: Quantiles | null;
  moveSpacedMs: Quantiles | null;
  /** v2: creating the child in its cgroup vs moving it there; null where not measurable. */
  cloneInto: CloneIntoResult | null;
}

export interface CgroupBenchOptions {
  /** Acquire/release iterations per variant. @default 1000 */
  iterations?: number;
  /** Where lines go. @default console.log */
  log?: (line: string) => void;
}

function quantiles(samples: number[]): Quantiles {
  const s = [...samples].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN;
  return { p50: at(0.5), p99: at(0.99), max: s[s.length - 1] ?? NaN, n: s.length };
}

const fmt = (q: Quantiles | null) =>
  q
    ? `p50 ${q.p50.toFixed(3)} ms  p99 ${q.p99.toFixed(3)} ms  max ${q.max.toFixed(3)} ms  (n=${q.n})`
    : 'n/a';

async function timeAcquireRelease(
  manager: CgroupManager,
  limitsFor: (i: number) => CgroupLimits,
  iterations: number,
): Promise<Quantiles> {
  for (let i = 0; i < 50; i++) await manager.acquire(limitsFor(i))?.release(); // warm-up
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    const cg = manager.acquire(limitsFor(i));
    await cg?.release();
    samples.push(performance.now() - t0);
  }
  return quantiles(samples);
}

/**
 * A Node child that moves itself between two sandbox cgroup sets through inherited fds
 * (3.. for set A, then set B) and reports the time of each move, in ms, on stdout.
 */
const MOVER = `
const fs = require('node:fs');
const [n, k, spacing] = process.argv.slice(1).map(Number);
const a = Array.from({ length: k }, (_, i) => 3 + i), b = a.map((fd) => fd + k);
const out = [];
const sleeper = new Int32Array(new SharedArrayBuffer(4));
for (let i = 0; i < n; i++) {
  if (spacing) Atomics.wait(sleeper, 0, 0, spacing);
  const fds = i % 2 ? b : a;
  const t0 = process.hrtime.bigint();
  for (const fd of fds) fs.writeSync(fd, '0');
  out.push(Number(process.hrtime.bigint() - t0) / 1e6);
}
process.stdout.write(JSON.stringify(out));
`;

async function timeMoves(manager: CgroupManager, n: number, spacingMs: number): Promise<Quantiles | null> {
  const a = manager.acquire({});
  const b = manager.acquire({});
  if (!a || !b) return null;
  try {
    const fds = [...a.joinFds, ...b.joinFds];
    const child = spawn(
      process.execPath,
      ['-e', MOVER, String(n), String(a.joinFds.length), String(spacingMs)],
      {
        stdio: ['ignore', 'pipe', 'inherit', ...fds],
      },
    );
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise((resolve, reject) => {
      child.on('error', reject);
      child.on('close', resolve);
    });
    const samples = JSON.parse(out) as number[];
    return quantiles(samples.slice(Math.min(10, samples.length / 2)));
  } finally {
    await a.release();
    await b.release();
  }
}

/**
 * One child per iteration, three ways: clone3(CLONE_INTO_CGROUP) into the v2 cgroup on fd 3;
 * fork, then the child writes "0" into the cgroup.procs on fd 4; plain fork. Prints the ms of
 * each (fork to reaped) as three lines of numbers.
 */
const CLONE_INTO_BENCH_C = `#define _GNU_SOURCE
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e3 + t.tv_nsec / 1e6; }
int main(int argc, char **argv) {
  int n = atoi(argv[1]), spacing = atoi(argv[2]);
  for (int m = 0; m < 3; m++) {
    for (int i = 0; i < n; i++) {
      usleep(spacing * 1000);
      double t0 = now();
      long pid;
      if (m == 0) {
        struct clone_args a;
        memset(&a, 0, sizeof a);
        a.flags = CLONE_INTO_CGROUP;
        a.exit_signal = SIGCHLD;
        a.cgroup = 3;
        pid = syscall(SYS_clone3, &a, sizeof a);
        if (pid == 0) _exit(0);
      } else {
        pid = fork();
        if (pid == 0) _exit(m == 1 && write(4, "0", 1) != 1);
      }
      if (pid < 0) { perror("clone"); return 1; }
      int st;
      waitpid((pid_t)pid, &st, 0);
      if (!WIFEXITED(st) || WEXITSTATUS(st)) { fprintf(stderr, "child failed\\n"); return 1; }
      printf("%.4f ", now() - t0);
    }
    printf("\\n");
  }
  return 0;
}
`;

export interface CloneIntoResult {
  cloneIntoMs: Quantiles;
  forkThenJoinMs: Quantiles;
  forkOnlyMs: Quantiles;
}

/**
 * clone3(CLONE_INTO_CGROUP) against fork + "0" write, children 50 ms apart, in the cgroup2
 * mount (core files suffice, so it runs on this hybrid machine too). Null without a writable
 * cgroup2 mount or a C compiler.
 */
async function timeCloneInto(
  layout: CgroupLayout,
  parent: string,
  n: number,
): Promise<CloneIntoResult | null> {
  const unified = layout.unified;
  if (!unified || unified.readOnly) return null;
  const dir = mkdtempSync(join(tmpdir(), 'capsule-bench-clone3-'));
  const manager = new CgroupManager({
    layout: { mode: 'v2', unified, v1: [], controllers: { cpuacct: unified }, disabled: [] },
    parent,
    poolSize: 2,
  });
  try {
    writeFileSync(join(dir, 'b.c'), CLONE_INTO_BENCH_C);
    try {
      execFileSync('cc', ['-O2', '-o', join(dir, 'b'), join(dir, 'b.c')], { stdio: 'ignore' });
    } catch {
      return null;
    }
    const into = manager.acquire({});
    const other = manager.acquire({});
    if (!into?.cloneInto || !other) return null;
    const out = execFileSync(join(dir, 'b'), [String(n), '50'], {
      stdio: ['ignore', 'pipe', 'inherit', into.cloneInto.dirFd, other.joinFds[0]!],
    }).toString();
    await into.release();
    await other.release();
    const [a = [], b = [], c = []] = out
      .trim()
      .split('\n')
      .map((line) => line.trim().split(/\s+/).map(Number));
    return { cloneIntoMs: quantiles(a), forkThenJoinMs: quantiles(b), forkOnlyMs: quantiles(c) };
  } finally {
    manager.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchCgroups(opts: CgroupBenchOptions = {}): Promise<CgroupBenchResult> {
  const log = opts.log ?? console.log;
  const iterations = opts.iterations ?? 1000;
  const layout = detectCgroups();
  const parent = `capsule-bench-${process.pid}`;
  const pooled = new CgroupManager({ layout, parent, poolSize: 4 });
  const fresh = new CgroupManager({ layout, parent, poolSize: 0 });
  try {
    const probe = pooled.acquire({});
    const hierarchies = probe?.joinFds.length ?? 0;
    await probe?.release();
    log(`cgroup per-run cost, ${iterations} runs each; ${describeLayout(layout).replace(/\n/g, '\n  ')}`);
    log(`  sandbox joins ${hierarchies} hierarchies: ${probe?.controllers.join(', ') ?? 'none'}`);
    const same: CgroupLimits = { memoryLimitBytes: 256 << 20, pidsLimit: 64, cpus: 1 };
    const pooledSameLimitsMs = await timeAcquireRelease(pooled, () => same, iterations);
    log(`  pool, same limits:       ${fmt(pooledSameLimitsMs)}`);
    const changing = (i: number): CgroupLimits => ({
      memoryLimitBytes: (i % 2 ? 256 : 128) << 20,
      pidsLimit: 64 + (i % 2),
      cpus: i % 2 ? 1 : 1.5,
    });
    const pooledChangingLimitsMs = await timeAcquireRelease(pooled, changing, iterations);
    log(`  pool, changing limits:   ${fmt(pooledChangingLimitsMs)}`);
    const createRemoveMs = await timeAcquireRelease(fresh, () => same, iterations);
    log(`  create + remove per run: ${fmt(createRemoveMs)}`);
    const moveBackToBackMs = await timeMoves(pooled, 1000, 0);
    log(`  move into ${hierarchies} hierarchies ("0" writes), back to back: ${fmt(moveBackToBackMs)}`);
    const moveSpacedMs = await timeMoves(pooled, 60, 50);
    log(`  move into ${hierarchies} hierarchies, one every 50 ms:          ${fmt(moveSpacedMs)}`);
    log(
      '  (a move after an idle spell pays one RCU grace period in its first write, for\n' +
        '   cgroup_threadgroup_rwsem; mounting with favordynmods, or clone3(CLONE_INTO_CGROUP) on v2, avoids it)',
    );
    const cloneInto = await timeCloneInto(layout, parent, 40);
    if (cloneInto) {
      log(`  v2, a child every 50 ms, fork to reaped:`);
      log(`    clone3(CLONE_INTO_CGROUP): ${fmt(cloneInto.cloneIntoMs)}`);
      log(`    fork + "0" write:          ${fmt(cloneInto.forkThenJoinMs)}`);
      log(`    fork, no cgroup change:    ${fmt(cloneInto.forkOnlyMs)}`);
    } else {
      log('  clone3(CLONE_INTO_CGROUP): not measured (no writable cgroup2 mount or no cc)');
    }
    return {
      layout: layout.mode,
      hierarchies,
      pooledSameLimitsMs,
      pooledChangingLimitsMs,
      createRemoveMs,
      moveBackToBackMs,
      moveSpacedMs,
      cloneInto,
    };
  } finally {
    pooled.close();
    fresh.close();
    for (const h of layoutHierarchies(layout)) {
      const dir = join(h.mountPoint, parent);
      if (existsSync(dir)) rmdirSync(dir);
    }
  }
}
