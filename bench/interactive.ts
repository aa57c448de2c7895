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

async function capsule(rootfs: string, games: number, seed: number): Promise<number> {
  const r = await runInteractive({
    solution: { rootfs, argv: ['/guess', 'solution'], cpuTimeLimitMs: 10_000, wallTimeLimitMs: 20_000 },
    interactor: {
      rootfs,
      argv: ['/guess', 'interactor', String(games), String(seed)],
      cpuTimeLimitMs: 10_000,
      wallTimeLimitMs: 30_000,
    },
  });
  if (r.verdict !== 'ACCEPTED') throw new Error(`interactive bench: ${r.verdict}: ${r.reason} ${r.message}`);
  return rounds(r.message);
}

/** Time `n` runs of `once`, alternating nothing: each sample is ms per run, and the rounds each played. */
async function time(n: number, once: (seed: number) => Promise<number>) {
  const times: number[] = [];
  const perSecond: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const played = await once(i + 1);
    const ms = performance.now() - t0;
    times.push(ms);
    perSecond.push((played * 1000) / ms);
  }
  return { times, roundsPerSecond: summary(perSecond).p50 };
}

export async function benchInteractive({ rootfs, n }: { rootfs: string; n: number }): Promise<void> {
  const prog = join(rootfs, 'guess');
  execFileSync('cc', ['-static', '-O2', '-o', prog, join(packageRoot(), 'test/interactive/guess.c')]);

  const GAMES = 1000;
  const long = Math.max(3, Math.min(n, 15));
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
    const p = await time(runs, (seed) => plain(prog, games, seed));
    const k = await time(runs, (seed) => plainKernelPipes(prog, games, seed));
    const c = await time(runs, (seed) => capsule(rootfs, games, seed));
    rows.push(
      {
        name: `plain pipes, ${label}`,
        times: p.times,
        note: `${p.roundsPerSecond.toFixed(0)} rounds/s (median)`,
      },
      {
        name: `plain, kernel pipes, ${label}`,
        times: k.times,
        note: `${k.roundsPerSecond.toFixed(0)} rounds/s (median)`,
      },
      {
        name: `capsule, ${label}`,
        times: c.times,
        note: `${c.roundsPerSecond.toFixed(0)} rounds/s (median)`,
      },
    );
    ratios.push(
      `${label}: capsule plays ${(c.roundsPerSecond / p.roundsPerSecond).toFixed(2)}x the rounds per second of plain ` +
        `child_process pipes, ${(c.roundsPerSecond / k.roundsPerSecond).toFixed(2)}x those of plain processes over kernel pipes`,
    );
  }
  printTable(
    'Interactive guessing game: runInteractive() against plain child_process pipes (ms per run)',
    rows,
  );
  for (const r of ratios) console.log(r);
}
