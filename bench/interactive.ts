/**
 * Issue (8)'s interactive benchmark: the guessing game of test/interactive/guess.c (the
 * interactor picks a number in [1, 10^9], the solution binary-searches it; one guess and
 * its answer is one round) through runInteractive(), against the same two programs
 * wired with plain child_process pipes, no sandbox: the interactor's stdout stream is
 * passed as the solution's stdin and the other way round, so there too the bytes go
 * from process to process without passing through JavaScript.
 *
 * A third row runs the plain processes over kernel pipes, as capsule wires them: Node's
 * own stdio pipes are socketpairs, and the transport alone makes a difference.
 *
 * - a long session (many games in one run): rounds per second, the cost of the wiring;
 * - one game per run (~30 rounds): the whole run's time, two sandboxes' setup included.
 */
import { execFileSync, spawn } from 'node:child_process';
import { closeSync } from 'node:fs';
import { join } from 'node:path';

import { runInteractive } from '../src/index.js';
import { native, packageRoot } from '../src/native.js';
import { printTable, type Sample, summary } from './stats.js';

/** "ok G games, R rounds" from the interactor's stderr. */
function rounds(message: string): number {
  const m = /ok \d+ games, (\d+) rounds/.exec(message);
  if (!m) throw new Error(`interactive bench: the interactor did not accept: ${JSON.stringify(message)}`);
  return Number(m[1]);
}

function plain(prog: string, games: number, seed: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const interactor = spawn(prog, ['interactor', String(games), String(seed)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const solution = spawn(prog, ['solution'], { stdio: [interactor.stdout, interactor.stdin, 'inherit'] });
    let err = '';
    interactor.stderr.on('data', (d: Buffer) => (err += d.toString()));
    /*
     * 'exit', not 'close': the streams handed to the solution are never read here, so
     * they would never close. Three things to wait for: both exits and the message.
     */
    let left = 3;
    let code = 0;
    const done = (c: number | null) => {
      code ||= c ?? 1;
      if (--left > 0) return;
      interactor.stdout.destroy();
      interactor.stdin.destroy();
      if (code !== 0) reject(new Error(`interactive bench: plain pipes ended with ${code}: ${err}`));
      else resolve(rounds(err));
    };
    interactor.stderr.on('end', () => done(0));
    interactor.on('error', reject).on('exit', done);
    solution.on('error', reject).on('exit', done);
  });
}

/**
 * The same two processes over two kernel pipes (pipe2(2), as runInteractive uses) instead
 * of Node's stdio pipes, which are AF_UNIX socketpairs (libuv's uv_spawn): that part of
 * the difference is the transport, not the sandbox.
 */
function plainKernelPipes(prog: string, games: number, seed: number): Promise<number> {
  const [toInteractorRead, toInteractorWrite] = native().pipe();
  const [toSolutionRead, toSolutionWrite] = native().pipe();
  return new Promise<number>((resolve, reject) => {
    const interactor = spawn(prog, ['interactor', String(games), String(seed)], {
      stdio: [toInteractorRead, toSolutionWrite, 'pipe'],
    });
    const solution = spawn(prog, ['solution'], { stdio: [toSolutionRead, toInteractorWrite, 'inherit'] });
    for (const fd of [toInteractorRead, toInteractorWrite, toSolutionRead, toSolutionWrite]) closeSync(fd);
    let err = '';
    interactor.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    let left = 2;
    let code = 0;
    const done = (c: number | null) => {
      code ||= c ?? 1;
      if (--left > 0) return;
      if (code !== 0) reject(new Error(`interactive bench: kernel pipes ended with ${code}: ${err}`));
      else resolve(rounds(err));
    };
    interactor.on('error', reject).on('close', done);
    solution.on('error', reject).on('close', done);
  });
}

/**
 * cgroups: true is what a judge runs (CPU time limits need the cgroup); false shows what
 * the cgroup does to the figure: with the cpu controller, the scheduler shares CPU time
 * between groups first and a cgroup's tasks compete as one entity (the kernel's
 * Documentation/scheduler/sched-design-CFS.rst, "group scheduler extensions"), so on a
 * loaded machine each sandbox's cgroup of its own favours the pair over plain processes.
 */
async function capsule(rootfs: string, games: number, seed: number, cgroups = true): Promise<number> {
  const limits = cgroups
    ? { cpuTimeLimitMs: 10_000, wallTimeLimitMs: 20_000 }
    : { cgroups: false, wallTimeLimitMs: 20_000 };
  const r = await runInteractive({
    solution: { rootfs, argv: ['/guess', 'solution'], ...limits },
    interactor: { rootfs, argv: ['/guess', 'interactor', String(games), String(seed)], ...limits },
  });
  if (r.verdict !== 'ACCEPTED') throw new Error(`interactive bench: ${r.verdict}: ${r.reason} ${r.message}`);
  return rounds(r.message);
}

/**
 * `n` runs of each way, interleaved (one of each in turn, the same seed), so a change in
 * the machine's load weighs on all of them alike. Per way: ms per run, and the median of
 * rounds per second.
 */
async function timeInterleaved(n: number, ways: ((seed: number) => Promise<number>)[]) {
  const out = ways.map(() => ({ times: [] as number[], perSecond: [] as number[] }));
  for (let i = 0; i < n; i++) {
    for (const [w, once] of ways.entries()) {
      const t0 = performance.now();
      const played = await once(i + 1);
      const ms = performance.now() - t0;
      out[w]!.times.push(ms);
      out[w]!.perSecond.push((played * 1000) / ms);
    }
  }
  return out.map((o) => ({ times: o.times, roundsPerSecond: summary(o.perSecond).p50 }));
}

type Timed = { times: number[]; roundsPerSecond: number };

export async function benchInteractive({ rootfs, n }: { rootfs: string; n: number }): Promise<void> {
  const prog = join(rootfs, 'guess');
  execFileSync('cc', ['-static', '-O2', '-o', prog, join(packageRoot(), 'test/interactive/guess.c')]);

  const GAMES = 1000;
  const long = Math.max(3, Math.min(n, 25));
  /* Warm-up: the cgroup pool, the page cache, the seccomp filter's compilation. */
  await capsule(rootfs, 10, 0);
  await plain(prog, 10, 0);
  await plainKernelPipes(prog, 10, 0);

  const rows: Sample[] = [];
  const ratios: string[] = [];
  for (const [label, games, runs] of [
    [`${GAMES} games a run`, GAMES, long],
    ['1 game a run', 1, Math.min(n, 200)],
  ] as const) {
    const [p, k, c, n] = (await timeInterleaved(runs, [
      (seed) => plain(prog, games, seed),
      (seed) => plainKernelPipes(prog, games, seed),
      (seed) => capsule(rootfs, games, seed),
      (seed) => capsule(rootfs, games, seed, false),
    ])) as [Timed, Timed, Timed, Timed];
    const row = (name: string, t: Timed): Sample => ({
      name: `${name}, ${label}`,
      times: t.times,
      note: `${t.roundsPerSecond.toFixed(0)} rounds/s (median)`,
    });
    rows.push(
      row('plain child_process pipes', p),
      row('plain, kernel pipes', k),
      row('capsule', c),
      row('capsule, cgroups: false', n),
    );
    ratios.push(
      `${label}: capsule plays ${(c.roundsPerSecond / p.roundsPerSecond).toFixed(2)}x the rounds per second of plain ` +
        `child_process pipes, ${(c.roundsPerSecond / k.roundsPerSecond).toFixed(2)}x those of plain processes over kernel pipes; ` +
        `without its cgroups ${(n.roundsPerSecond / p.roundsPerSecond).toFixed(2)}x and ${(n.roundsPerSecond / k.roundsPerSecond).toFixed(2)}x`,
    );
  }
  printTable(
    'Interactive guessing game: runInteractive() against plain child_process pipes (ms per run)',
    rows,
  );
  for (const r of ratios) console.log(r);
}
