/**
 * Judge-grade limits: what each option means, how it is enforced, and its
 * validation. Three mechanisms share the work:
 *
 * - cgroups (src/cgroup/): memory (+swap), pids, CPU quota, cpuset, and the CPU
 *   accounting the CPU-time limit is measured with;
 * - the parent's timers (src/watchdog.ts): wall time, CPU time, output caps;
 * - rlimits, set in the child before exec (getrlimit(2)): file size, open files,
 *   stack, core dumps off, and RLIMIT_CPU as a backstop for the CPU timer.
 */

import type { CgroupLimits } from './cgroup/index.js';
import { ConfigError } from './errors.js';
import { native } from './native.js';

/** The limit options of run(), flat on its options object; each carries its unit in its name. */
export interface LimitOptions {
  /**
   * CPU time (user + system) of every process of the sandbox together, in ms, measured
   * from the cgroup's CPU accounting and enforced by capsule (RLIMIT_CPU as a backstop).
   * Needs the cpuacct (v1) or cpu (v2) controller. @default no limit
   */
  cpuTimeLimitMs?: number;
  /** Wall-clock time from launch, in ms: the whole sandbox is killed when it passes. @default no limit */
  wallTimeLimitMs?: number;
  /**
   * Memory of the whole sandbox in bytes (cgroup memory limit, page cache and tmpfs
   * included; swap capped too where the kernel accounts it). @default no limit
   */
  memoryLimitBytes?: number;
  /**
   * Processes and threads alive at once in the sandbox (cgroup pids limit). capsule-init
   * counts as one, and its seccomp watcher thread as another when a filter is loaded
   * (without room for it, capsule-init watches the filter itself, and a forbidden call a
   * signal withdraws at once can then go unreported). @default no limit
   */
  pidsLimit?: number;
  /**
   * Bytes of stdout and of stderr each that capsule keeps; past it the sandbox is killed,
   * the verdict is OUTPUT_LIMIT, and what was read up to the cap is kept. Applies to
   * captured ('pipe') streams; with spawn(), to what each stream delivers, and only when
   * given (streamed output is not kept, so there is no default cap). At most V8's longest string (about 512 MiB) with encoding
   * 'utf8'. @default 104857600 (100 MiB, DEFAULT_OUTPUT_LIMIT_BYTES in src/options.ts)
   */
  outputLimitBytes?: number;
  /** CPU bandwidth in CPUs (cgroup CPU quota), e.g. 1 or 0.5. @default no quota */
  cpus?: number;
  /** CPUs to pin the sandbox to, in cpuset syntax (`"0"`, `"0-1"`). @default no pinning */
  cpusetCpus?: string;
  /** Largest file the program may write, in bytes (RLIMIT_FSIZE; SIGXFSZ past it). @default the current limit */
  fileSizeLimitBytes?: number;
  /**
   * Open file descriptors per process (RLIMIT_NOFILE, soft and hard). @default 1024, as
   * runc's default spec (or capsule's own hard limit, if that is lower): the sandbox does
   * not inherit the host's often much larger limit
   */
  openFilesLimit?: number;
  /** Stack size per process, in bytes (RLIMIT_STACK). @default the current limit */
  stackLimitBytes?: number;
}

/** The limits as run() echoes them in its result: every field present, null for none. */
export type Limits = { [K in keyof LimitOptions]-?: Exclude<LimitOptions[K], undefined> | null };

/** RLIMIT_* numbers (asm-generic/resource.h; the same on x86_64 and aarch64). */
const RLIMIT = { CPU: 0, FSIZE: 1, STACK: 3, CORE: 4, NOFILE: 7 } as const;
const NAMES: Record<number, string> = {
  [RLIMIT.CPU]: 'Max cpu time',
  [RLIMIT.FSIZE]: 'Max file size',
  [RLIMIT.STACK]: 'Max stack size',
  [RLIMIT.CORE]: 'Max core file size',
  [RLIMIT.NOFILE]: 'Max open files',
};

export interface RlimitOp {
  resource: number;
  soft: number;
  hard: number;
}

/** RLIMIT_NOFILE when openFilesLimit is not given: runc's default spec has 1024. */
export const DEFAULT_OPEN_FILES = 1024;

/** RLIM_INFINITY as the addon's doubles carry it (2^64 - 1 rounds to 2^64, which the kernel reads as all ones). */
const INFINITY = 2 ** 64;

/**
 * This process's hard limit of `resource` (getrlimit(2) through the addon): what a child
 * can still lower to, never raise past. Unknown (the kernel refused) is taken as unlimited,
 * as a missing line of /proc/self/limits was before.
 */
function hardLimit(resource: number): number {
  const hard = native().hardLimit(resource);
  return hard < 0 ? INFINITY : hard;
}

function check(name: string, value: number | undefined, min: number, integer = true): number | null {
  if (value === undefined) return null;
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    (integer && !Number.isSafeInteger(value)) ||
    value < min
  ) {
    throw new ConfigError(
      `${name} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got ${String(value)}`,
      name,
    );
  }
  return value;
}

/** Validate the limit options; every field of the result is a number, a string or null. */
export function resolveLimits(o: LimitOptions): Limits {
  const limits: Limits = {
    cpuTimeLimitMs: check('cpuTimeLimitMs', o.cpuTimeLimitMs, 1),
    wallTimeLimitMs: check('wallTimeLimitMs', o.wallTimeLimitMs, 1),
    memoryLimitBytes: check('memoryLimitBytes', o.memoryLimitBytes, 1024 * 1024),
    pidsLimit: check('pidsLimit', o.pidsLimit, 1),
    outputLimitBytes: check('outputLimitBytes', o.outputLimitBytes, 0),
    cpus: check('cpus', o.cpus, 0.01, false),
    cpusetCpus: null,
    fileSizeLimitBytes: check('fileSizeLimitBytes', o.fileSizeLimitBytes, 0),
    openFilesLimit: check('openFilesLimit', o.openFilesLimit, 4),
    stackLimitBytes: check('stackLimitBytes', o.stackLimitBytes, 64 * 1024),
  };
  if (o.cpusetCpus !== undefined) {
    if (typeof o.cpusetCpus !== 'string' || !/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(o.cpusetCpus)) {
      throw new ConfigError(
        `cpusetCpus must be a cpuset list like "0" or "0-1,3", got ${String(o.cpusetCpus)}`,
        'cpusetCpus',
      );
    }
    limits.cpusetCpus = o.cpusetCpus;
  }
  return limits;
}

/** The limits cgroups enforce. */
export function cgroupLimits(l: Limits): CgroupLimits {
  const c: CgroupLimits = {};
  if (l.memoryLimitBytes !== null) c.memoryLimitBytes = l.memoryLimitBytes;
  if (l.pidsLimit !== null) c.pidsLimit = l.pidsLimit;
  if (l.cpus !== null) c.cpus = l.cpus;
  if (l.cpusetCpus !== null) c.cpusetCpus = l.cpusetCpus;
  return c;
}

/**
 * The rlimits the child sets before exec. A request above this process's hard limit is
 * an error, not a silent clamp: without CAP_SYS_RESOURCE (not in every bounding set) a
 * hard limit can only be lowered.
 */
export function rlimitPlan(l: Limits): RlimitOp[] {
  const ops: RlimitOp[] = [
    { resource: RLIMIT.CORE, soft: 0, hard: 0 } /* no core dumps of untrusted memory */,
  ];
  const exact = (resource: number, value: number | null, option: string) => {
    if (value === null) return;
    const hard = hardLimit(resource);
    if (value > hard) {
      throw new ConfigError(
        `${option} ${value} is above the hard limit ${hard} capsule runs under (${NAMES[resource]}); ` +
          'raising a hard limit needs CAP_SYS_RESOURCE: ask for less, or raise it for capsule itself (ulimit -H)',
        option,
      );
    }
    ops.push({ resource, soft: value, hard: value });
  };
  exact(RLIMIT.FSIZE, l.fileSizeLimitBytes, 'fileSizeLimitBytes');
  if (l.openFilesLimit !== null) exact(RLIMIT.NOFILE, l.openFilesLimit, 'openFilesLimit');
  else {
    const value = Math.min(DEFAULT_OPEN_FILES, hardLimit(RLIMIT.NOFILE));
    ops.push({ resource: RLIMIT.NOFILE, soft: value, hard: value });
  }
  exact(RLIMIT.STACK, l.stackLimitBytes, 'stackLimitBytes');
  if (l.cpuTimeLimitMs !== null) {
    /*
     * The backstop, per process, in whole seconds: a second past the limit SIGXCPU, one
     * more SIGKILL. The parent's timer normally ends the run long before.
     */
    const soft = Math.ceil(l.cpuTimeLimitMs / 1000) + 1;
    const hard = Math.min(soft + 1, hardLimit(RLIMIT.CPU));
    ops.push({ resource: RLIMIT.CPU, soft: Math.min(soft, hard), hard });
  }
  return ops;
}
