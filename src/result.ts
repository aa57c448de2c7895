/**
 * The result of a sandbox's run, as run() and spawn() resolve with it: the RunResult
 * type, and the decoding of how its PID 1 ended (capsule-init's report, or its own wait
 * status when it was killed before it could report).
 */
import { constants as osConstants } from 'node:os';

import type { CgroupUsage } from './cgroup/index.js';
import type { ExplainStep } from './explain.js';
import type { Limits } from './limits.js';
import type { NativeExit } from './native.js';
import type { Violation } from './seccomp/verdict.js';
import type { Mechanism, Verdict } from './verdict.js';

export interface RunResult<Output extends string | Buffer = string> {
  /** How the run ended, for a judge: see {@link Verdict}. */
  verdict: Verdict;
  /** What ended it: see {@link Mechanism}. */
  mechanism: Mechanism;
  /**
   * For a SECURITY_VIOLATION verdict, the system call the seccomp profile stopped
   * (`{ syscall: 'socket', number: 41, abi: 'x86_64' }`); otherwise null.
   */
  violation: Violation | null;
  /** For a TIME_LIMIT verdict, which limit was passed; otherwise null. */
  timeLimit: 'cpu' | 'wall' | null;
  /** The program's exit code, or null when it was killed by a signal. */
  exitCode: number | null;
  /** The signal that killed the program (`'SIGSEGV'`), or null when it exited. */
  signal: NodeJS.Signals | null;
  /**
   * Captured standard output, up to outputLimitBytes ('' or an empty Buffer when not
   * captured; always '' from spawn(), whose stdout stream delivered it instead).
   */
  stdout: Output;
  /** Captured standard error, up to outputLimitBytes. */
  stderr: Output;
  /** stdout passed outputLimitBytes and was cut there (spawn(): its stream ended there). */
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  /** From just before clone to the moment the sandbox was reaped, in milliseconds. */
  wallTimeMs: number;
  /**
   * User + system CPU time of every process of the sandbox, in ms: from the cgroup's
   * CPU accounting when the sandbox had a cgroup, else from capsule-init's rusage, a
   * lower bound (see {@link RunResult.accounting}).
   */
  cpuTimeMs: number;
  userCpuTimeMs: number;
  systemCpuTimeMs: number;
  /**
   * Peak memory of the whole sandbox in bytes, from its cgroup (v2 memory.peak, v1
   * memory.max_usage_in_bytes: page cache and tmpfs included); null without a memory cgroup.
   */
  peakMemoryBytes: number | null;
  /**
   * Peak resident set size of the largest single process of the sandbox, in bytes
   * (getrusage(2) ru_maxrss); null when capsule-init was killed before it could report it.
   * Always a lower bound, never used for a verdict: a process reaped by the kernel itself
   * (its parent ignores SIGCHLD) is not counted. {@link RunResult.peakMemoryBytes} is the figure.
   */
  maxRssBytes: number | null;
  /**
   * Where cpuTimeMs, userCpuTimeMs and systemCpuTimeMs come from. `'cgroup'`: the
   * sandbox's cgroup counted every process it ever had. `'rusage-lower-bound'`: there was
   * no cgroup CPU accounting (`cgroups: false` and no limit that needs one), so they come
   * from getrusage(2), which misses processes the kernel reaped itself (SIGCHLD ignored or
   * SA_NOCLDWAIT): a program can hide CPU time there. Verdicts never rest on rusage.
   */
  accounting: 'cgroup' | 'rusage-lower-bound';
  /** The cgroup's OOM killer killed a process of the sandbox. */
  oomKilled: boolean;
  /** A fork or clone failed at pidsLimit. */
  pidsLimitHit: boolean;
  /** True when `signal` (the AbortSignal option) ended the run. */
  aborted: boolean;
  /** The limits the run had, as resolved (null where none). */
  limits: Limits;
  /** The host PID the sandbox's PID 1 had. */
  pid: number;
  /** With the `explain` option: every step of the sandbox's construction, timed. */
  explain?: ExplainStep[];
}

/**
 * Each signal number by the name `kill -l` gives it. os.constants.signals also lists
 * aliases (SIGIOT for 6, SIGPOLL for 29; SIGCLD, SIGUNUSED elsewhere), and a map built
 * from it would keep whichever came last: the aliases never name a number.
 */
const SIGNAL_ALIASES = new Set(['SIGIOT', 'SIGPOLL', 'SIGCLD', 'SIGUNUSED', 'SIGINFO', 'SIGLOST']);
const signalNames = new Map<number, NodeJS.Signals>(
  Object.entries(osConstants.signals)
    .filter(([name]) => !SIGNAL_ALIASES.has(name))
    .map(([name, n]) => [n, name as NodeJS.Signals]),
);

export function decodeExit(e: NativeExit, usage: CgroupUsage | null) {
  let exitCode: number | null = null;
  let signal: NodeJS.Signals | null = null;
  let userUs: number;
  let systemUs: number;
  let maxRssBytes: number | null = null;
  if (e.report) {
    const ws = e.report.waitStatus;
    if ((ws & 0x7f) === 0) exitCode = (ws >> 8) & 0xff;
    else signal = signalNames.get(ws & 0x7f) ?? null;
    userUs = e.report.userCpuUs;
    systemUs = e.report.systemCpuUs;
    maxRssBytes = e.report.maxRssKiB * 1024;
  } else {
    /* capsule-init itself was killed: what it reaped is lost with it, so count its own time. */
    if (e.initCode === 'exited') exitCode = e.initStatus;
    else signal = signalNames.get(e.initStatus) ?? null;
    userUs = e.initUserCpuUs;
    systemUs = e.initSystemCpuUs;
  }
  /* The cgroup counts every process, even ones killed before capsule-init could reap them. */
  if (usage !== null && usage.cpuTimeMs !== null) {
    return {
      exitCode,
      signal,
      cpuTimeMs: usage.cpuTimeMs,
      userCpuTimeMs: usage.userCpuMs ?? userUs / 1000,
      systemCpuTimeMs: usage.systemCpuMs ?? systemUs / 1000,
      maxRssBytes,
      accounting: 'cgroup' as const,
    };
  }
  return {
    exitCode,
    signal,
    cpuTimeMs: (userUs + systemUs) / 1000,
    userCpuTimeMs: userUs / 1000,
    systemCpuTimeMs: systemUs / 1000,
    maxRssBytes,
    accounting: 'rusage-lower-bound' as const,
  };
}
