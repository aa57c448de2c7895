/**
 * runInteractive(): an interactive problem's solution and interactor, each in its own
 * sandbox, talking over two kernel pipes, judged as one run (docs/interactive.md).
 *
 *   validate           both sides' options, as run() would (ConfigError, nothing started)
 *   pipes              two close-on-exec pipe2(2) pipes: solution -> interactor, interactor -> solution
 *   start              run() for each side, the pipe ends passed as stdin/stdout descriptors
 *   close              the parent's four ends, once both sandboxes hold their copies
 *   watch              the first side to end starts the other's grace timer
 *   decide             one verdict for the judge (decideInteractive), both RunResults kept
 *
 * Nothing passes through Node: the programs read and write the pipes themselves, so
 * back-pressure is the kernel's (a writer blocks on a full pipe, 64 KiB by default,
 * pipe(7)), and a program that floods the other grows no memory here. End of file
 * reaches a reader only when every write end is closed (pipe(7)): the parent closes its
 * ends as soon as both sandboxes started (or one failed to), so the only writer each
 * side has is the other side's program.
 */
import { closeSync } from 'node:fs';

import { errnoName } from './diagnose.js';
import { ConfigError, SetupError } from './errors.js';
import { native } from './native.js';
import { resolveOptions, type RunOptions, type Sandbox } from './options.js';
import { run, type RunResult } from './run.js';

/** One side's options: a run()'s, less what runInteractive owns (its stdin and stdout are the pipes). */
export type InteractiveSide = Omit<RunOptions, 'stdin' | 'stdout' | 'signal' | 'encoding'>;

/**
 * What the interactor's exit code means. `'testlib'` (Codeforces, Polygon, ejudge): 0
 * accepted, 1 wrong answer, 2 presentation error (judged as a wrong answer), anything
 * else (3 is testlib's FAIL) a judge error. `'kattis'` (Kattis, DOMjudge, ICPC problem
 * package format): 42 accepted, 43 wrong answer, anything else a judge error.
 */
export type InteractorExitCodes =
  'testlib' | 'kattis' | { accepted: readonly number[]; wrongAnswer: readonly number[] };

export interface InteractiveOptions {
  /** The contestant's program: its stdout goes to the interactor's stdin and back. */
  solution: InteractiveSide;
  /** The judge's program; its stderr (captured by default) is its message to the judge. */
  interactor: InteractiveSide;
  /** @default 'testlib' */
  exitCodes?: InteractorExitCodes;
  /**
   * How long the solution may go on after the interactor ended before it is killed, in
   * ms: a solution that reads nothing more and exits promptly is not cut short, one that
   * ignores end of file does not run to its own wall limit. @default 1000
   */
  solutionGraceMs?: number;
  /**
   * How long the interactor may go on after the solution ended (it has seen end of file
   * and only has to give its verdict), in ms; past it, it is killed and the run is a
   * JUDGE_ERROR. @default 5000
   */
  interactorGraceMs?: number;
  /**
   * Aborting ends both sides. Already aborted, or aborted before both sandboxes are
   * cloned, runInteractive() rejects with the signal's reason (a side already started is
   * killed and reaped first); after, it resolves with verdict ABORTED once both are reaped.
   */
  signal?: AbortSignal;
}

export type InteractiveVerdict =
  /** The interactor accepted and the solution exited with status 0 within its limits. */
  | 'ACCEPTED'
  /** The interactor rejected the exchange (also when the solution stopped early: it saw end of file). */
  | 'WRONG_ANSWER'
  /** The solution passed its CPU or wall time limit, or did not exit within solutionGraceMs after an accepting interactor. */
  | 'TIME_LIMIT'
  /** The solution was killed at its memory limit. */
  | 'MEMORY_LIMIT'
  /** The solution passed outputLimitBytes on stderr, or fileSizeLimitBytes. */
  | 'OUTPUT_LIMIT'
  /** The solution crashed (a signal of its own), or exited non-zero after an accepting interactor. */
  | 'RUNTIME_ERROR'
  /** The solution made a system call its seccomp profile kills for. */
  | 'SECURITY_VIOLATION'
  /** The interactor failed: crashed, hit one of its own limits, or exited with a code that is no verdict. */
  | 'JUDGE_ERROR'
  /** The caller's AbortSignal ended the run. */
  | 'ABORTED';

export interface InteractiveResult {
  verdict: InteractiveVerdict;
  /** Whose doing the verdict is: null for ACCEPTED and ABORTED. */
  blame: 'solution' | 'interactor' | null;
  /** One line saying why, in capsule's words. */
  reason: string;
  /** The interactor's stderr, its own message for the judge (testlib's "wrong answer ..."), trimmed. */
  message: string;
  /** The solution's run as run() reports it (stdout is '': it went to the interactor). */
  solution: RunResult;
  /** The interactor's run as run() reports it. */
  interactor: RunResult;
  /** The solution was killed solutionGraceMs after the interactor ended. */
  solutionKilledAfterGrace: boolean;
  /** The interactor was killed interactorGraceMs after the solution ended. */
  interactorKilledAfterGrace: boolean;
  /** The caller's AbortSignal ended the run. */
  aborted: boolean;
}

const SIDES = ['solution', 'interactor'] as const;
type Side = (typeof SIDES)[number];
const OWNED = ['stdin', 'stdout', 'signal', 'encoding'] as const;
const EXIT_CODES = {
  testlib: { accepted: [0], wrongAnswer: [1, 2] },
  kattis: { accepted: [42], wrongAnswer: [43] },
} as const;

interface Resolved {
  codes: { accepted: readonly number[]; wrongAnswer: readonly number[] };
  solutionGraceMs: number;
  interactorGraceMs: number;
}

function fail(option: string, message: string): never {
  throw new ConfigError(message, option);
}

function graceMs(option: string, v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 2 ** 31 - 1)
    fail(option, `${option} must be a whole number of milliseconds from 0 to 2147483647, got ${String(v)}`);
  return v;
}

function codeList(option: string, v: unknown): readonly number[] {
  if (!Array.isArray(v) || v.some((c) => !Number.isInteger(c) || c < 0 || c > 255))
    fail(option, `${option} must be an array of exit codes (integers 0-255)`);
  return v as number[];
}

/** Validates everything runInteractive owns, then each side as run() would: nothing is started on bad input. */
function resolveInteractive(o: InteractiveOptions): Resolved {
  if (typeof o !== 'object' || o === null) fail('options', 'runInteractive takes { solution, interactor }');
  for (const key of Object.keys(o)) {
    if (
      !['solution', 'interactor', 'exitCodes', 'solutionGraceMs', 'interactorGraceMs', 'signal'].includes(key)
    )
      fail(key, `unknown option ${key} of runInteractive (see InteractiveOptions, src/interactive.ts)`);
  }
  for (const side of SIDES) {
    const s = o[side] as unknown;
    if (typeof s !== 'object' || s === null)
      fail(side, `${side} must be the options of a run ({ rootfs, argv, ... })`);
    for (const key of OWNED) {
      if ((s as Record<string, unknown>)[key] !== undefined) {
        const why =
          key === 'signal'
            ? 'pass signal to runInteractive itself: it ends both sides'
            : key === 'encoding'
              ? "stderr is returned as a string ('utf8')"
              : 'runInteractive wires it to the other side';
        fail(`${side}.${key}`, `${side}.${key} cannot be set: ${why}`);
      }
    }
    try {
      resolveOptions({ ...(s as InteractiveSide), stdin: 'ignore', stdout: 'ignore' });
    } catch (e) {
      throw prefixed(e, side);
    }
  }
  let codes: Resolved['codes'];
  const c = o.exitCodes ?? 'testlib';
  if (c === 'testlib' || c === 'kattis') codes = EXIT_CODES[c];
  else if (typeof c === 'object' && c !== null) {
    codes = {
      accepted: codeList('exitCodes.accepted', c.accepted),
      wrongAnswer: codeList('exitCodes.wrongAnswer', c.wrongAnswer),
    };
    if (codes.accepted.some((x) => codes.wrongAnswer.includes(x)))
      fail('exitCodes', 'exitCodes.accepted and exitCodes.wrongAnswer must not share a code');
  } else fail('exitCodes', `exitCodes must be 'testlib', 'kattis' or { accepted, wrongAnswer }`);
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal))
    fail('signal', 'signal must be an AbortSignal');
  return {
    codes,
    solutionGraceMs: graceMs('solutionGraceMs', o.solutionGraceMs, 1000),
    interactorGraceMs: graceMs('interactorGraceMs', o.interactorGraceMs, 5000),
  };
}

/**
 * A side's error, saying which side: a ConfigError's option as the caller wrote it
 * (`solution.memoryLimitBytes`), a SetupError's message starting with the side.
 */
function prefixed(e: unknown, side: Side): unknown {
  let err: Error;
  if (e instanceof ConfigError)
    err = new ConfigError(`${side}: ${e.message}`, e.option === undefined ? side : `${side}.${e.option}`);
  else if (e instanceof SetupError) {
    const s = new SetupError(`${side}: ${e.message}`, e);
    s.explain = e.explain;
    err = s;
  } else return e;
  err.cause = e;
  return err;
}

/** The reason runInteractive aborts a side with; never surfaces to the caller. */
class SideStopped extends Error {}

export async function runInteractive(options: InteractiveOptions): Promise<InteractiveResult> {
  const o = resolveInteractive(options);
  const signal = options.signal;
  if (signal?.aborted)
    throw signal.reason instanceof Error ? signal.reason : new Error('runInteractive() aborted before start');

  /*
   * The parent's ends: toInteractor carries the solution's stdout, toSolution the
   * interactor's. Close-on-exec, so no other child of this process inherits one.
   */
  const addon = native();
  const ends: number[] = [];
  try {
    ends.push(...addon.pipe(), ...addon.pipe());
  } catch (e) {
    for (const fd of ends) closeSync(fd);
    const err = e as Error & { errno?: number };
    const errno = err.errno ?? 0;
    const hint = 'close descriptors, or raise RLIMIT_NOFILE (`ulimit -n`) or fs.file-max';
    throw new SetupError(
      `runInteractive could not make the pipes between the two sandboxes (${err.message}): ${hint}`,
      { step: 'prepare', syscall: 'pipe2', errno, code: errnoName(errno), path: '', hint },
    );
  }
  const [toInteractorRead, toInteractorWrite, toSolutionRead, toSolutionWrite] = ends as [
    number,
    number,
    number,
    number,
  ];

  /*
   * Close the parent's ends once each side is past its clone (it holds its copies, or
   * will never need them). Not earlier: run() opens the descriptor we pass while it
   * prepares the clone, and a number closed under it could be reused by an unrelated
   * open and handed to the sandbox.
   */
  let endsOpen = true;
  const closeEnds = () => {
    if (!endsOpen) return;
    endsOpen = false;
    for (const fd of ends) closeSync(fd);
  };
  const past = { solution: false, interactor: false };
  const spawned = { solution: false, interactor: false };
  const passed = (side: Side) => {
    past[side] = true;
    if (past.solution && past.interactor) closeEnds();
  };

  /* Each side is ended through its own AbortSignal: run()'s terminate path, which still reports its usage. */
  const stop = { solution: new AbortController(), interactor: new AbortController() };
  let aborted = false;
  const killedAfterGrace = { solution: false, interactor: false };
  const ended = { solution: false, interactor: false };
  const graceTimers: NodeJS.Timeout[] = [];
  const onAbort = () => {
    /* Both already ended on their own (the abort came while their results were read): not aborted. */
    if (ended.solution && ended.interactor) return;
    aborted = true;
    for (const side of SIDES) stop[side].abort(new SideStopped('aborted'));
  };
  signal?.addEventListener('abort', onAbort, { once: true });

  const other = (side: Side): Side => (side === 'solution' ? 'interactor' : 'solution');
  const pendingGrace = { solution: false, interactor: false };
  /** `side` ended: the other side gets its grace, counted from its start if it has not started yet. */
  const startGrace = (side: Side) => {
    if (!spawned[side]) {
      pendingGrace[side] = true;
      return;
    }
    if (ended[side]) return;
    const ms = side === 'solution' ? o.solutionGraceMs : o.interactorGraceMs;
    const timer = setTimeout(() => {
      if (ended[side]) return;
      killedAfterGrace[side] = true;
      stop[side].abort(new SideStopped('grace'));
    }, ms);
    timer.unref();
    graceTimers.push(timer);
  };

  const start = (side: Side, stdin: number, stdout: number): Promise<RunResult> => {
    const s = options[side];
    const onSpawn = (sandbox: Sandbox) => {
      spawned[side] = true;
      passed(side);
      if (pendingGrace[side]) startGrace(side);
      s.onSpawn?.(sandbox);
    };
    return run({ ...s, stdin, stdout, encoding: 'utf8', signal: stop[side].signal, onSpawn }).finally(() => {
      ended[side] = true;
      passed(side);
      startGrace(other(side));
    });
  };

  const runs = [
    start('solution', toSolutionRead, toInteractorWrite),
    start('interactor', toInteractorRead, toSolutionWrite),
  ] as const;
  /* A side that fails (a setup step, a bad option, its onSpawn throwing) ends the other: nothing is left running. */
  runs.forEach((p, i) =>
    p.catch(() => {
      passed(SIDES[i]!);
      stop[other(SIDES[i]!)].abort(new SideStopped('other side failed'));
    }),
  );
  const settled = await Promise.allSettled(runs);
  closeEnds();
  for (const t of graceTimers) clearTimeout(t);
  signal?.removeEventListener('abort', onAbort);

  const failures = settled.flatMap((r, i) =>
    r.status === 'rejected' ? [{ side: SIDES[i]!, error: r.reason as unknown }] : [],
  );
  if (failures.length > 0) {
    /* The side that failed first, not the other one we stopped because of it. */
    const real = failures.find((f) => !(f.error instanceof SideStopped)) ?? failures[0]!;
    if (real.error instanceof SideStopped) {
      throw signal?.reason instanceof Error
        ? signal.reason
        : new Error('runInteractive() aborted before start');
    }
    throw prefixed(real.error, real.side);
  }
  const [solution, interactor] = settled.map((r) => (r as PromiseFulfilledResult<RunResult>).value) as [
    RunResult,
    RunResult,
  ];
  const decided = decideInteractive({
    solution,
    interactor,
    codes: o.codes,
    solutionKilledAfterGrace: killedAfterGrace.solution,
    interactorKilledAfterGrace: killedAfterGrace.interactor,
    aborted,
    solutionGraceMs: o.solutionGraceMs,
    interactorGraceMs: o.interactorGraceMs,
  });
  return {
    ...decided,
    message: interactor.stderr.trim(),
    solution,
    interactor,
    solutionKilledAfterGrace: killedAfterGrace.solution,
    interactorKilledAfterGrace: killedAfterGrace.interactor,
    aborted,
  };
}

export interface InteractiveVerdictInput {
  solution: Pick<RunResult, 'verdict' | 'timeLimit' | 'exitCode' | 'signal' | 'violation'>;
  interactor: Pick<RunResult, 'verdict' | 'timeLimit' | 'exitCode' | 'signal' | 'violation'>;
  codes: { accepted: readonly number[]; wrongAnswer: readonly number[] };
  solutionKilledAfterGrace: boolean;
  interactorKilledAfterGrace: boolean;
  aborted: boolean;
  solutionGraceMs: number;
  interactorGraceMs: number;
}

/**
 * One verdict from both sides, the first rule that applies winning (docs/interactive.md):
 *
 *  1. the caller aborted: ABORTED.
 *  2. the interactor failed on its own account (a seccomp kill, a crash other than SIGPIPE, its memory,
 *     output or CPU limit, or still running interactorGraceMs after the solution ended):
 *     JUDGE_ERROR, whatever the solution did. Its wall limit is not its own account
 *     (it waits on the solution): that is rule 5.
 *  3. the solution made a forbidden system call: SECURITY_VIOLATION.
 *  4. the solution passed one of its own limits: TIME_LIMIT, MEMORY_LIMIT, OUTPUT_LIMIT
 *     (a solution that stops answering sits idle until its wall limit).
 *  5. the interactor passed its wall limit while the solution kept within its own:
 *     JUDGE_ERROR (give the interactor a wall limit above the solution's).
 *  6. the interactor's exit code says wrong answer, or it died of SIGPIPE (it wrote to
 *     a solution that had closed its stdin, usually by exiting early): WRONG_ANSWER, unless the solution
 *     crashed with a signal of its own (not SIGPIPE, which is what writing to an
 *     interactor that has given up gives): RUNTIME_ERROR. A solution that exits, with any
 *     status, or is killed after the grace, once the interactor rejected, is judged by
 *     the interactor: it usually just saw end of file.
 *  7. the interactor's exit code says accepted: the solution must also have ended well:
 *     TIME_LIMIT if it was still running solutionGraceMs later, RUNTIME_ERROR if it
 *     exited non-zero or died of a signal (SIGPIPE included: it wrote past the end),
 *     else ACCEPTED.
 *  8. any other exit code of the interactor (testlib's FAIL is 3): JUDGE_ERROR.
 */
export function decideInteractive(v: InteractiveVerdictInput): {
  verdict: InteractiveVerdict;
  blame: 'solution' | 'interactor' | null;
  reason: string;
} {
  const { solution: s, interactor: i } = v;
  const judge = (reason: string) => ({
    verdict: 'JUDGE_ERROR' as const,
    blame: 'interactor' as const,
    reason,
  });
  const sol = (verdict: InteractiveVerdict, reason: string) => ({
    verdict,
    blame: 'solution' as const,
    reason,
  });
  if (v.aborted) return { verdict: 'ABORTED', blame: null, reason: 'the caller aborted the run' };

  if (i.verdict === 'SECURITY_VIOLATION')
    return judge(`the interactor made a forbidden system call (${i.violation?.syscall ?? 'unknown'})`);
  if (v.interactorKilledAfterGrace)
    return judge(
      `the interactor did not exit within interactorGraceMs (${v.interactorGraceMs} ms) after the solution ended`,
    );
  if (i.verdict === 'MEMORY_LIMIT') return judge('the interactor passed its memory limit');
  if (i.verdict === 'OUTPUT_LIMIT') return judge('the interactor passed its output limit');
  if (i.verdict === 'TIME_LIMIT' && i.timeLimit === 'cpu')
    return judge('the interactor passed its CPU time limit');
  /* SIGPIPE: it wrote to a solution that had closed its stdin, the solution's doing (rule 6). */
  if (i.verdict === 'SIGNALED' && i.signal !== 'SIGPIPE')
    return judge(`the interactor was killed by ${i.signal ?? 'a signal'}`);

  if (s.verdict === 'SECURITY_VIOLATION')
    return sol(
      'SECURITY_VIOLATION',
      `the solution made a forbidden system call (${s.violation?.syscall ?? 'unknown'})`,
    );
  if (s.verdict === 'TIME_LIMIT')
    return sol('TIME_LIMIT', `the solution passed its ${s.timeLimit === 'cpu' ? 'CPU' : 'wall'} time limit`);
  if (s.verdict === 'MEMORY_LIMIT') return sol('MEMORY_LIMIT', 'the solution passed its memory limit');
  if (s.verdict === 'OUTPUT_LIMIT') return sol('OUTPUT_LIMIT', 'the solution passed its output limit');

  if (i.verdict === 'TIME_LIMIT')
    return judge(
      'the interactor passed its wall time limit while the solution kept within its own: give the interactor a longer wallTimeLimitMs than the solution',
    );

  const code = i.exitCode;
  const crashed = !v.solutionKilledAfterGrace && s.verdict === 'SIGNALED' && s.signal !== 'SIGPIPE';
  if (i.signal === 'SIGPIPE') {
    if (crashed) return sol('RUNTIME_ERROR', `the solution was killed by ${s.signal ?? 'a signal'}`);
    return sol(
      'WRONG_ANSWER',
      'the solution stopped reading its input: the interactor was killed by SIGPIPE writing to it',
    );
  }
  if (code !== null && v.codes.wrongAnswer.includes(code)) {
    if (crashed) return sol('RUNTIME_ERROR', `the solution was killed by ${s.signal ?? 'a signal'}`);
    return sol('WRONG_ANSWER', `the interactor exited with ${code} (wrong answer)`);
  }
  if (code !== null && v.codes.accepted.includes(code)) {
    if (v.solutionKilledAfterGrace)
      return sol(
        'TIME_LIMIT',
        `the solution did not exit within solutionGraceMs (${v.solutionGraceMs} ms) after the interactor accepted`,
      );
    if (s.verdict === 'SIGNALED')
      return sol('RUNTIME_ERROR', `the solution was killed by ${s.signal ?? 'a signal'}`);
    if (s.verdict !== 'OK')
      return sol('RUNTIME_ERROR', `the solution exited with status ${String(s.exitCode)}`);
    return { verdict: 'ACCEPTED', blame: null, reason: `the interactor exited with ${code} (accepted)` };
  }
  return judge(
    `the interactor exited with ${String(code)}, which is neither accepted (${v.codes.accepted.join(', ')}) nor wrong answer (${v.codes.wrongAnswer.join(', ')})`,
  );
}
