/**
 * The verdict of a run: what a judge shows, and the mechanism that ended it, so
 * it can be explained. Decided in one place, in a fixed order (the first that
 * applies wins), as execa chooses its messages: what capsule itself did to the
 * sandbox first, then what the kernel did, then how the program ended.
 */
import type { CgroupUsage } from './cgroup/index.js';
import type { Limits } from './limits.js';
import type { Violation } from './seccomp/verdict.js';

export type Verdict =
  /** Exited with status 0 within every limit. */
  | 'OK'
  /** Exited with a non-zero status. */
  | 'RUNTIME_ERROR'
  /** Killed by a signal that no limit explains (SIGSEGV, SIGABRT, ...). */
  | 'SIGNALED'
  /** Passed the CPU or wall time limit (`timeLimit` says which). */
  | 'TIME_LIMIT'
  /** Killed by the kernel's OOM killer at the cgroup memory limit. */
  | 'MEMORY_LIMIT'
  /** Wrote more than outputLimitBytes to stdout or stderr, or more than fileSizeLimitBytes to a file. */
  | 'OUTPUT_LIMIT'
  /** Called a system call the seccomp profile kills for; `violation` names it (src/seccomp/verdict.ts). */
  | 'SECURITY_VIOLATION';

/** What ended the run. */
export type Mechanism =
  /** The program exited on its own. */
  | 'exit'
  /** The program died of a signal of its own making. */
  | 'signal'
  /** capsule's CPU-time check found the cgroup's CPU usage past the limit and killed the sandbox. */
  | 'cpu_timer'
  /** capsule's wall-clock timer fired and killed the sandbox. */
  | 'wall_timer'
  /** The kernel's RLIMIT_CPU backstop (SIGXCPU/SIGKILL) ended a process. */
  | 'rlimit_cpu'
  /** The cgroup's OOM killer ended a process (memory.events oom_kill / memory.oom_control). */
  | 'cgroup_oom'
  /** RLIMIT_FSIZE: a write past fileSizeLimitBytes raised SIGXFSZ. */
  | 'rlimit_fsize'
  /** capsule stopped reading at outputLimitBytes and killed the sandbox. */
  | 'output_cap'
  /** The program ended after a fork or clone failed at the cgroup pids limit. */
  | 'pids_limit'
  /** The caller's AbortSignal. */
  | 'aborted'
  /** The seccomp filter stopped a forbidden call and capsule-init ended the sandbox. */
  | 'seccomp';

/** What capsule's own watchdog did, if anything. */
export type Intervention = 'cpu_timer' | 'wall_timer' | 'output_cap' | 'aborted' | null;

export interface VerdictInput {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  intervention: Intervention;
  wallTimeMs: number;
  /**
   * The cgroup's figures: the only CPU time and memory a verdict rests on. getrusage(2)
   * is never used here: children the kernel reaps itself (SIGCHLD ignored, SA_NOCLDWAIT)
   * never reach RUSAGE_CHILDREN, so a program could hide CPU time and memory from it.
   */
  usage: CgroupUsage | null;
  limits: Limits;
  /** The forbidden system call capsule-init reported, if any: see securityViolation(). */
  violation?: Violation | null;
}

export interface VerdictResult {
  verdict: Verdict;
  mechanism: Mechanism;
  /** For TIME_LIMIT: which limit. */
  timeLimit: 'cpu' | 'wall' | null;
}

export function decideVerdict(v: VerdictInput): VerdictResult {
  const { limits } = v;
  /* null: no cgroup counted it, and then no CPU verdict is drawn from elsewhere. */
  const cpuTimeMs = v.usage?.cpuTimeMs ?? null;
  const cpuPast = (strictly: boolean) =>
    limits.cpuTimeLimitMs !== null &&
    cpuTimeMs !== null &&
    (strictly ? cpuTimeMs > limits.cpuTimeLimitMs : cpuTimeMs >= limits.cpuTimeLimitMs);
  const result = (verdict: Verdict, mechanism: Mechanism, timeLimit: 'cpu' | 'wall' | null = null) => ({
    verdict,
    mechanism,
    timeLimit,
  });
  /* A forbidden call ends the sandbox at once, before any limit could; it is what a judge must show. */
  if (v.violation) return result('SECURITY_VIOLATION', 'seccomp');
  /* What capsule did. */
  if (v.intervention === 'output_cap') return result('OUTPUT_LIMIT', 'output_cap');
  if (v.intervention === 'cpu_timer') return result('TIME_LIMIT', 'cpu_timer', 'cpu');
  if (v.intervention === 'wall_timer') return result('TIME_LIMIT', 'wall_timer', 'wall');
  if (v.intervention === 'aborted') return result('SIGNALED', 'aborted');
  /* What the kernel did. */
  if (v.usage?.oomKilled) return result('MEMORY_LIMIT', 'cgroup_oom');
  if (v.signal === 'SIGXCPU' || (v.signal === 'SIGKILL' && cpuPast(false))) {
    return result('TIME_LIMIT', 'rlimit_cpu', 'cpu');
  }
  if (v.signal === 'SIGXFSZ' && limits.fileSizeLimitBytes !== null)
    return result('OUTPUT_LIMIT', 'rlimit_fsize');
  /* A limit passed between two checks, in a program that then finished: still over (isolate does the same). */
  if (cpuPast(true)) return result('TIME_LIMIT', 'exit', 'cpu');
  if (limits.wallTimeLimitMs !== null && v.wallTimeMs > limits.wallTimeLimitMs)
    return result('TIME_LIMIT', 'exit', 'wall');
  /* How the program ended. */
  const ended: Mechanism = v.usage?.pidsLimitHit ? 'pids_limit' : v.signal ? 'signal' : 'exit';
  if (v.signal) return result('SIGNALED', ended);
  if (v.exitCode !== 0) return result('RUNTIME_ERROR', ended);
  return result('OK', ended);
}
