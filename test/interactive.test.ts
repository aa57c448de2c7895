/**
 * runInteractive(): a guessing game between two sandboxes (test/interactive/guess.c), its
 * verdicts, both sides' limits, and nothing left behind on any path.
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  constants,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';

import {
  ConfigError,
  decideInteractive,
  type InteractiveOptions,
  type InteractiveResult,
  runInteractive,
  SetupError,
} from '../src/index.js';
import { hostIdPoolFds } from '../src/ids.js';
import { native } from '../src/native.js';
import { mountCount, processesWith, zombieChildren } from './helpers/host.js';
import { makeBusyboxRootfs } from './helpers/rootfs.js';

let dir: string;
let rootfs: string;
/** A word on every test's command lines, so the leak check finds any process of ours still alive. */
const marker = `capsule-interactive-${process.pid}`;
let seed = 1;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'capsule-interactive-'));
  rootfs = join(dir, 'rootfs');
  makeBusyboxRootfs(rootfs, inject('probe'));
  execFileSync('cc', [
    '-static',
    '-O2',
    '-Wall',
    '-Werror',
    '-o',
    join(rootfs, 'guess'),
    join(import.meta.dirname, 'interactive/guess.c'),
  ]);
  chmodSync(join(rootfs, 'guess'), 0o755);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * What this process has open, less what capsule's pools keep between runs and swap from
 * run to run (pooled cgroups' files, prepared network namespaces).
 */
function ownDescriptors(): string[] {
  /* Not the host-id leases and user namespaces made ahead (native/userns_pool.cc): they come and go. */
  const pooled = new Set(hostIdPoolFds().map(String));
  return readdirSync('/proc/self/fd')
    .filter((fd) => !pooled.has(fd))
    .map((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return '';
      }
    })
    .filter((l) => l !== '' && !l.startsWith('/sys/fs/cgroup/') && !l.startsWith('net:['))
    .map((l) => l.replace(/\[\d+\]$/, '[]'))
    .sort();
}

/** This process's open pipes (the cgroup pool keeps files open, never pipes). */
function openPipes(): string[] {
  return readdirSync('/proc/self/fd')
    .map((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return '';
      }
    })
    .filter((l) => l.startsWith('pipe:'))
    .sort();
}

let mountsBefore = 0;
let pipesBefore: string[] = [];
beforeEach(() => {
  mountsBefore = mountCount();
  pipesBefore = openPipes();
});
/* Every path: both sandboxes reaped, no zombie, no mount, no pipe end left open here. */
afterEach(async () => {
  expect(processesWith(marker)).toEqual([]);
  expect(zombieChildren()).toEqual([]);
  expect(mountCount()).toBe(mountsBefore);
  /* Captured stderr's socket closes on the tick after 'close'. */
  await new Promise((r) => setTimeout(r, 20));
  expect(openPipes()).toEqual(pipesBefore);
});

function game(
  opts: {
    games?: number;
    solutionMode?: string;
    interactorMode?: string;
    solution?: Partial<InteractiveOptions['solution']>;
    interactor?: Partial<InteractiveOptions['interactor']>;
  } & Omit<Partial<InteractiveOptions>, 'solution' | 'interactor'> = {},
): Promise<InteractiveResult> {
  const { games = 3, solutionMode = 'search', interactorMode = 'play', ...rest } = opts;
  return runInteractive({
    ...rest,
    solution: {
      rootfs,
      argv: ['/guess', 'solution', solutionMode, marker],
      wallTimeLimitMs: 10_000,
      ...opts.solution,
    },
    interactor: {
      rootfs,
      argv: ['/guess', 'interactor', String(games), String(seed++), interactorMode, marker],
      wallTimeLimitMs: 20_000,
      ...opts.interactor,
    },
  });
}

describe('the guessing game', () => {
  it('accepts a binary search', async () => {
    const r = await game({ games: 20 });
    expect(r.verdict).toBe('ACCEPTED');
    expect(r.blame).toBeNull();
    expect(r.message).toMatch(/^ok 20 games, \d+ rounds$/);
    expect(r.solution.verdict).toBe('OK');
    expect(r.interactor.verdict).toBe('OK');
    expect(r.solution.stdout).toBe('');
    expect(r.solutionKilledAfterGrace).toBe(false);
  });

  it('is a wrong answer when the solution guesses too many times', async () => {
    const r = await game({ solutionMode: 'wrong' });
    expect(r.verdict).toBe('WRONG_ANSWER');
    expect(r.blame).toBe('solution');
    expect(r.message).toMatch(/more than 30 guesses/);
    /* It was blocked on its next answer: end of file (status 2), or SIGPIPE on its next guess. */
    expect(r.solution.exitCode === 2 || r.solution.signal === 'SIGPIPE').toBe(true);
  });

  it("takes the kattis exit codes, and calls any other code the judge's error", async () => {
    const r = await game({ exitCodes: 'kattis' });
    expect(r.verdict).toBe('JUDGE_ERROR');
    expect(r.blame).toBe('interactor');
    expect(r.reason).toMatch(/exited with 0, which is neither accepted \(42\)/);
    const custom = await game({ exitCodes: { accepted: [0], wrongAnswer: [7] } });
    expect(custom.verdict).toBe('ACCEPTED');
  });
});

describe('the wiring, seen from inside', () => {
  /** `guess fds`'s lines: descriptor number to what it points at. */
  const fds = (stderr: string) =>
    Object.fromEntries([...stderr.matchAll(/^(\d+) -> (.*)$/gm)].map((m) => [Number(m[1]), m[2]!]));

  /** <asm-generic/fcntl.h>: Node's fs.constants has no O_CLOEXEC. */
  const O_CLOEXEC = 0o2000000;

  it('makes its pipes close-on-exec, so no other child of this process holds an end', () => {
    const ends = native().pipe();
    try {
      for (const fd of ends) {
        const flags = parseInt(
          /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1]!,
          8,
        );
        expect(flags & O_CLOEXEC).toBe(O_CLOEXEC);
        expect(flags & constants.O_NONBLOCK).toBe(0);
      }
    } finally {
      for (const fd of ends) closeSync(fd);
    }
  });

  it("each side's stdout is the other's stdin, a pipe, and it has nothing else open", async () => {
    const ls = ['/guess', 'fds', marker];
    const r = await runInteractive({
      solution: { rootfs, argv: ls, wallTimeLimitMs: 10_000 },
      interactor: { rootfs, argv: ls, wallTimeLimitMs: 10_000 },
    });
    expect(r.verdict).toBe('ACCEPTED');
    const sol = fds(r.solution.stderr);
    const int = fds(r.interactor.stderr);
    expect(sol[0]).toMatch(/^pipe:\[\d+\]$/);
    expect(sol[1]).toMatch(/^pipe:\[\d+\]$/);
    expect(sol[1]).toBe(int[0]);
    expect(int[1]).toBe(sol[0]);
    expect(sol[0]).not.toBe(sol[1]);
    /* 0, 1, 2 only: no end of either pipe beyond its own two, nothing else of the host's. */
    expect(Object.keys(sol).map(Number)).toEqual([0, 1, 2]);
    expect(Object.keys(int).map(Number)).toEqual([0, 1, 2]);
    expect(sol[2]).not.toBe(int[2]);
  });
});

describe('one side hangs', () => {
  it('a solution that stops reading is TIME_LIMIT, the interactor not blamed, both reaped', async () => {
    const r = await game({ solutionMode: 'hang', solution: { wallTimeLimitMs: 500 } });
    expect(r.verdict).toBe('TIME_LIMIT');
    expect(r.blame).toBe('solution');
    expect(r.solution.timeLimit).toBe('wall');
    /* The interactor saw end of file once the solution was killed, and said so itself. */
    expect(r.interactor.exitCode).toBe(1);
    expect(r.message).toMatch(/unexpected end of file/);
  });

  it('a solution that burns CPU is TIME_LIMIT on its CPU limit', async () => {
    const r = await game({ solutionMode: 'spin', solution: { cpuTimeLimitMs: 300 } });
    expect(r.verdict).toBe('TIME_LIMIT');
    expect(r.solution.timeLimit).toBe('cpu');
    expect(r.interactor.verdict).toBe('RUNTIME_ERROR');
  });

  it("an interactor that spins is the judge's error, not the solution's", async () => {
    const r = await game({ interactorMode: 'spin', interactor: { cpuTimeLimitMs: 300 } });
    expect(r.verdict).toBe('JUDGE_ERROR');
    expect(r.blame).toBe('interactor');
    expect(r.interactor.timeLimit).toBe('cpu');
    expect(r.reason).toMatch(/interactor passed its CPU time limit/);
  });

  it('an interactor that sleeps past its wall limit, with a solution within its own, is a judge error', async () => {
    const r = await game({
      interactorMode: 'sleep',
      interactor: { wallTimeLimitMs: 500 },
      solution: { wallTimeLimitMs: 10_000 },
    });
    expect(r.verdict).toBe('JUDGE_ERROR');
    expect(r.interactor.timeLimit).toBe('wall');
    /* Its interactor gone, the solution read end of file and exited, long before its own limit. */
    expect(r.solution.verdict).toBe('RUNTIME_ERROR');
    expect(r.solution.exitCode).toBe(2);
  });

  it('an interactor that does not exit after the solution ended is killed after interactorGraceMs', async () => {
    const s = await game({
      solutionMode: 'search',
      interactorMode: 'sleep',
      interactorGraceMs: 200,
      solution: { wallTimeLimitMs: 500 },
      interactor: { wallTimeLimitMs: 60_000 },
    });
    expect(s.interactorKilledAfterGrace).toBe(true);
    expect(s.verdict).toBe('JUDGE_ERROR');
    expect(s.reason).toMatch(/interactorGraceMs \(200 ms\)/);
    expect(s.solution.verdict).toBe('TIME_LIMIT');
    expect(s.interactor.aborted).toBe(true);
  });
});

describe('one side exits early', () => {
  it('a solution that exits at once: the interactor sees end of file and decides', async () => {
    const r = await game({ solutionMode: 'early' });
    expect(r.verdict).toBe('WRONG_ANSWER');
    expect(r.blame).toBe('solution');
    expect(r.solution.exitCode).toBe(0);
    /*
     * Either the interactor's first line was already in the pipe, and its read of the
     * first guess met end of file, or it wrote after the solution was gone: SIGPIPE, which
     * is the solution's doing, never the judge's error.
     */
    if (r.interactor.signal === 'SIGPIPE') expect(r.reason).toMatch(/stopped reading its input/);
    else expect(r.message).toMatch(/unexpected end of file in game 1/);
  });

  it('a solution that crashes is a runtime error, not the wrong answer its end of file caused', async () => {
    const r = await game({ solutionMode: 'crash' });
    expect(r.verdict).toBe('RUNTIME_ERROR');
    expect(r.solution.signal).toBe('SIGSEGV');
    expect(r.interactor.exitCode).toBe(1);
  });

  it('an interactor that gives up (testlib FAIL) is a judge error; the solution sees end of file', async () => {
    const r = await game({ interactorMode: 'fail' });
    expect(r.verdict).toBe('JUDGE_ERROR');
    expect(r.message).toBe('FAIL: the interactor gave up');
    expect(r.solution.exitCode).toBe(2);
    expect(r.solutionKilledAfterGrace).toBe(false);
  });

  it('an interactor that crashes is a judge error', async () => {
    const r = await game({ interactorMode: 'crash' });
    expect(r.verdict).toBe('JUDGE_ERROR');
    expect(r.interactor.signal).toBe('SIGSEGV');
  });

  it('a solution that ignores end of file is killed solutionGraceMs after the interactor ended', async () => {
    const r = await game({ solutionMode: 'deaf', interactorMode: 'fail', solutionGraceMs: 200 });
    expect(r.solutionKilledAfterGrace).toBe(true);
    expect(r.solution.aborted).toBe(true);
    /* The interactor's own failure still decides. */
    expect(r.verdict).toBe('JUDGE_ERROR');
    const ac = await game({ solutionMode: 'extra', solutionGraceMs: 200 });
    /* Writing on past an accepting interactor: SIGPIPE, its own doing. */
    expect(ac.verdict).toBe('RUNTIME_ERROR');
    expect(ac.solution.signal).toBe('SIGPIPE');
  });
});

describe('flooding and limits', () => {
  it('a solution that floods an interactor that stops reading: blocked by the kernel, ended by its wall limit', async () => {
    const heapBefore = process.memoryUsage().rss;
    const r = await game({
      solutionMode: 'flood',
      interactorMode: 'sleep',
      solution: { wallTimeLimitMs: 1000 },
      interactor: { wallTimeLimitMs: 60_000 },
      interactorGraceMs: 100,
    });
    expect(r.solution.verdict).toBe('TIME_LIMIT');
    expect(r.solution.timeLimit).toBe('wall');
    /* Blocked on a full pipe, it used almost no CPU: nothing read its output. */
    expect(r.solution.cpuTimeMs).toBeLessThan(500);
    expect(process.memoryUsage().rss - heapBefore).toBeLessThan(64 * 1024 * 1024);
  });

  it('a solution that floods an interactor that reads all of it: bytes pass through the kernel, not Node', async () => {
    const rssBefore = process.memoryUsage().rss;
    const r = await game({
      solutionMode: 'flood',
      interactorMode: 'sink',
      solution: { wallTimeLimitMs: 1500 },
      interactor: { wallTimeLimitMs: 60_000 },
    });
    expect(r.solution.verdict).toBe('TIME_LIMIT');
    /* The interactor kept reading what it kept writing: many times what a pipe holds (64 KiB, 32768 lines). */
    const lines = Number(/sink: (\d+) lines/.exec(r.message)?.[1]);
    expect(lines).toBeGreaterThan(10 * 32768);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(64 * 1024 * 1024);
  });

  it("each side has its own limits: the solution's memory limit", async () => {
    const r = await game({
      solutionMode: 'memory',
      solution: { memoryLimitBytes: 32 * 1024 * 1024 },
      interactor: { memoryLimitBytes: 256 * 1024 * 1024 },
    });
    expect(r.verdict).toBe('MEMORY_LIMIT');
    expect(r.solution.limits.memoryLimitBytes).toBe(32 * 1024 * 1024);
    expect(r.interactor.limits.memoryLimitBytes).toBe(256 * 1024 * 1024);
  });

  it('a stderr flood of the solution stops at its outputLimitBytes', async () => {
    const r = await runInteractive({
      solution: {
        rootfs,
        argv: ['/bin/sh', '-c', 'while :; do echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx >&2; done', marker],
        outputLimitBytes: 4096,
        wallTimeLimitMs: 10_000,
      },
      interactor: {
        rootfs,
        argv: ['/guess', 'interactor', '1', '1', 'play', marker],
        wallTimeLimitMs: 20_000,
      },
    });
    expect(r.verdict).toBe('OUTPUT_LIMIT');
    expect(r.solution.stderr.length).toBe(4096);
  });
});

describe('aborts and failures end both sides', () => {
  it('an abort ends both sandboxes', async () => {
    const ac = new AbortController();
    const p = game({ solutionMode: 'hang', interactorMode: 'sleep', signal: ac.signal });
    setTimeout(() => ac.abort(), 200);
    const r = await p;
    expect(r.verdict).toBe('ABORTED');
    expect(r.aborted).toBe(true);
    expect(r.solution.aborted).toBe(true);
    expect(r.interactor.aborted).toBe(true);
  });

  it('an abort before the start rejects and starts nothing', async () => {
    const ac = new AbortController();
    ac.abort(new Error('not now'));
    await expect(game({ signal: ac.signal })).rejects.toThrow('not now');
  });

  it("the interactor's setup failure ends the solution already running", async () => {
    let solutionPid = 0;
    const p = runInteractive({
      solution: {
        rootfs,
        argv: ['/guess', 'solution', 'hang', marker],
        onSpawn: (s) => (solutionPid = s.pid),
      },
      interactor: { rootfs, argv: ['/no-such-interactor', marker] },
    });
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SetupError);
    expect((err as SetupError).message).toMatch(/^interactor: |no-such-interactor/);
    /*
     * The interactor's exec fails inside its sandbox, after its clone: by then the
     * solution, started alongside, has long been cloned. It was ended and reaped.
     */
    expect(solutionPid).toBeGreaterThan(0);
    expect(existsSync(`/proc/${solutionPid}`)).toBe(false);
  });

  it('refuses options it owns, naming the side', async () => {
    const bad = runInteractive({
      solution: { rootfs, argv: ['/guess', 'solution'], stdin: 'x' } as never,
      interactor: { rootfs, argv: ['/guess', 'interactor', '1', '1'] },
    });
    await expect(bad).rejects.toThrow(ConfigError);
    await expect(bad).rejects.toMatchObject({ option: 'solution.stdin' });
    await expect(
      runInteractive({
        solution: { rootfs, argv: ['/guess', 'solution'] },
        interactor: { rootfs, argv: ['/guess', 'interactor', '1', '1'], memoryLimitBytes: -1 },
      }),
    ).rejects.toMatchObject({ option: 'interactor.memoryLimitBytes' });
    await expect(
      runInteractive({
        solution: { rootfs, argv: ['/guess', 'solution'] },
        interactor: { rootfs, argv: ['/guess', 'interactor', '1', '1'] },
        solutionGraceMs: -5,
      }),
    ).rejects.toMatchObject({ option: 'solutionGraceMs' });
  });
});

describe('no leaks', () => {
  it('runs of every kind, five at once and repeated, keep their own wiring and leave no descriptor behind', async () => {
    const kinds = () => [
      game({ games: 2 }),
      game({ solutionMode: 'early' }),
      game({ solutionMode: 'hang', solution: { wallTimeLimitMs: 100 } }),
      game({ solutionMode: 'deaf', interactorMode: 'fail', solutionGraceMs: 50 }),
      runInteractive({
        solution: { rootfs, argv: ['/guess', 'solution', 'hang', marker] },
        interactor: { rootfs, argv: ['/no-such-interactor', marker] },
      }).catch((e: unknown) => e),
    ];
    /* Each run's verdict is its own: no pipe crossed over to another pair in flight. */
    const verdicts = async () =>
      (await Promise.all(kinds())).map((r) =>
        'verdict' in (r as object) ? (r as InteractiveResult).verdict : r,
      );
    const expected = ['ACCEPTED', 'WRONG_ANSWER', 'TIME_LIMIT', 'JUDGE_ERROR', expect.any(SetupError)];
    /* The first round fills the cgroup pool (one slot, and its files, per run in flight at the peak). */
    expect(await verdicts()).toEqual(expected);
    await new Promise((r) => setTimeout(r, 50));
    const before = ownDescriptors();
    for (let round = 0; round < 3; round++) expect(await verdicts()).toEqual(expected);
    await new Promise((r) => setTimeout(r, 50));
    /* Fifteen more runs: not one descriptor more (pipes, sockets, pidfds, files). */
    expect(ownDescriptors()).toEqual(before);
  });
});

describe('decideInteractive, rule by rule', () => {
  const ok = { verdict: 'OK', timeLimit: null, exitCode: 0, signal: null, violation: null } as const;
  const base = {
    codes: { accepted: [0], wrongAnswer: [1, 2] },
    solutionKilledAfterGrace: false,
    interactorKilledAfterGrace: false,
    aborted: false,
    solutionGraceMs: 1000,
    interactorGraceMs: 5000,
  };
  it('puts the interactor failing before the solution passing a limit', () => {
    const d = decideInteractive({
      ...base,
      solution: { ...ok, verdict: 'TIME_LIMIT', timeLimit: 'wall', exitCode: null, signal: 'SIGKILL' },
      interactor: { ...ok, verdict: 'MEMORY_LIMIT', exitCode: null, signal: 'SIGKILL' },
    });
    expect(d.verdict).toBe('JUDGE_ERROR');
  });
  it("puts the solution's wall limit before the interactor's", () => {
    const d = decideInteractive({
      ...base,
      solution: { ...ok, verdict: 'TIME_LIMIT', timeLimit: 'wall', exitCode: null, signal: 'SIGKILL' },
      interactor: { ...ok, verdict: 'TIME_LIMIT', timeLimit: 'wall', exitCode: null, signal: 'SIGKILL' },
    });
    expect(d.verdict).toBe('TIME_LIMIT');
    expect(d.blame).toBe('solution');
  });
  it('blames the solution, not the judge, for an interactor killed by SIGPIPE', () => {
    const d = decideInteractive({
      ...base,
      solution: ok,
      interactor: { ...ok, verdict: 'SIGNALED', exitCode: null, signal: 'SIGPIPE' },
    });
    expect(d.verdict).toBe('WRONG_ANSWER');
    expect(d.blame).toBe('solution');
  });
  it('judges a solution that died of SIGPIPE after a rejection by the rejection', () => {
    const d = decideInteractive({
      ...base,
      solution: { ...ok, verdict: 'SIGNALED', exitCode: null, signal: 'SIGPIPE' },
      interactor: { ...ok, verdict: 'RUNTIME_ERROR', exitCode: 1 },
    });
    expect(d.verdict).toBe('WRONG_ANSWER');
  });
  it('is TIME_LIMIT when an accepted solution had to be killed after the grace', () => {
    const d = decideInteractive({
      ...base,
      solutionKilledAfterGrace: true,
      solution: { ...ok, verdict: 'SIGNALED', exitCode: null, signal: 'SIGKILL' },
      interactor: ok,
    });
    expect(d.verdict).toBe('TIME_LIMIT');
  });
});
