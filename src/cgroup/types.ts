/** Public types of the cgroup layer, and the interface its v1 and v2 writers share. */
import type { CgroupController, CgroupHierarchy } from './detect.js';

/** Limits one sandbox's cgroup enforces. Each one absent means "no limit" and needs no controller. */
export interface CgroupLimits {
  /**
   * Memory limit in bytes, page cache and kernel memory included. Where the kernel accounts
   * swap (v1 `memory.memsw.*`, v2 `memory.swap.max`), memory+swap is capped at the same
   * value so the program cannot escape into swap. Minimum 1 MiB. @default no limit
   */
  memoryLimitBytes?: number;
  /** Maximum number of tasks (processes and threads) alive at once, >= 1. @default no limit */
  pidsLimit?: number;
  /**
   * CPU bandwidth in CPUs: 1.5 lets the sandbox use 150 ms of CPU time per 100 ms period
   * (v2 `cpu.max "150000 100000"`, v1 `cpu.cfs_quota_us`). At least 0.01. @default no quota
   */
  cpus?: number;
  /** CPUs the sandbox may run on, in cpuset list syntax (`"0-1"`, `"0,2"`). @default all of the parent's */
  cpusetCpus?: string;
  /**
   * The device nodes the sandbox may open (`r`, `w`) or create (`m`), v1 `devices` controller
   * only: everything else is denied (`devices.deny a`, then one `devices.allow` line per rule;
   * devices.txt). The kernel checks them at open(2) and mknod(2), whatever the node's mode.
   * Include every node the sandbox's own setup makes, with `m`: capsule's child makes /dev's
   * nodes with mknod(2) after it joined the cgroup. Needs a v1 `devices` hierarchy: v2 has no
   * devices controller (docs/devices.md). @default no device rules (everything allowed)
   */
  devices?: readonly CgroupDeviceRule[];
}

/**
 * cgroup v2's device gating: attach a BPF_PROG_TYPE_CGROUP_DEVICE program allowing exactly
 * `rules` to the cgroup directory `dirFd`, replacing any; null removes it. Given to the
 * CgroupManager by the caller (capsule's addon: native/devices.cc), since building and loading
 * a BPF program takes the bpf(2) system call. Throws an Error with `errno` on failure.
 */
export type DeviceProgramSetter = (dirFd: number, rules: readonly CgroupDeviceRule[] | null) => void;

/** One `devices.allow` line: `c 1:3 rwm`. */
export interface CgroupDeviceRule {
  /** Character or block device. */
  type: 'c' | 'b';
  /** Major number, or `'*'` for any. */
  major: number | '*';
  /** Minor number, or `'*'` for any. */
  minor: number | '*';
  /** Some of `r` (open for reading), `w` (open for writing), `m` (mknod), in that order. */
  access: string;
}

/** What the sandbox's cgroup measured for this run only (earlier runs in a pooled cgroup never show). */
export interface CgroupUsage {
  /** CPU time (user + system) of every process of the sandbox, in ms; null without CPU accounting. */
  cpuTimeMs: number | null;
  /**
   * User CPU time in ms; null when not reported. userCpuMs + systemCpuMs == cpuTimeMs: the
   * kernel samples the split per tick, so the exact total is split in the sampled ratio.
   */
  userCpuMs: number | null;
  /** System CPU time in ms; null when not reported. */
  systemCpuMs: number | null;
  /**
   * Peak memory charged to the cgroup in bytes (v2 `memory.peak`, v1 the larger of
   * `memory.max_usage_in_bytes` and `memory.memsw.max_usage_in_bytes`), page cache and kernel
   * memory included; null without the memory controller, and on cgroup v2 before Linux 5.19,
   * which has no memory.peak (docs/cgroups.md §6). A reused cgroup starts with at most
   * maxLeftoverBytes (1 MiB) still charged from earlier runs, which this includes (v1.ts
   * recyclable says why that is not reclaimed).
   */
  peakMemoryBytes: number | null;
  /** The memory limit was hit at least once (v1 failcnt > 0, v2 memory.events `max`). */
  memoryLimitHit: boolean;
  /** The kernel's OOM killer killed at least one process of the sandbox (cgroup `oom_kill` counter). */
  oomKilled: boolean;
  /** How many processes the OOM killer killed in this run. */
  oomKillCount: number;
  /** A fork or clone failed because of the pids limit (`pids.events` `max`). */
  pidsLimitHit: boolean;
  /** Time the CPU quota throttled the sandbox, in ms; null when not reported. */
  cpuThrottledMs: number | null;
  /** v2 only: this run's memory.events counters (low, high, max, oom, oom_kill, oom_group_kill). */
  memoryEvents?: Readonly<Record<string, number>>;
}

/** Why an acquire asked for a controller: to enforce a limit (required) or to measure (optional). */
export type ControllerNeed = ReadonlyMap<CgroupController, 'required' | 'optional'>;

/**
 * One sandbox cgroup in one hierarchy: a v1 directory (which may carry several co-mounted
 * controllers) or the v2 directory. A sandbox spans one of these per hierarchy it needs.
 * The methods are called in this order: create once, then per run prepare -> (run) ->
 * usage -> drain; remove at the end.
 */
export interface HierarchyCgroup {
  readonly hierarchy: CgroupHierarchy;
  /** Absolute path of the cgroup directory. */
  readonly path: string;
  /** The controllers this directory serves for the sandbox. */
  readonly controllers: readonly CgroupController[];
  /** Open O_WRONLY fd of `cgroup.procs`; -1 before create. */
  readonly joinFd: number;
  /** v2: O_RDONLY|O_DIRECTORY fd of the cgroup, for clone3(CLONE_INTO_CGROUP); v1: -1. */
  readonly dirFd: number;
  /** mkdir and one-time setup; opens joinFd. */
  create(): void;
  /** Reset counters, read baselines of those that cannot be reset, write limits (only what changed). */
  prepare(limits: CgroupLimits): void;
  /** Merge this directory's counters (minus baselines) into `into`. */
  collect(into: CgroupUsage): void;
  /** This run's CPU time in ms from one file read, or null if this directory does not account CPU. */
  cpuTimeMs(): number | null;
  /** Pids in cgroup.procs, read afresh. */
  pids(): number[];
  /** No process left, by the cheapest exact test the kernel offers (v2 populated, v1 pids.current). */
  isEmpty(): boolean;
  /** Kill everything inside (SIGKILL); returns whether anything was found. */
  kill(): boolean;
  /** After a run, with the cgroup empty: can it be reused without leaking into the next run? */
  recyclable(): boolean;
  /**
   * Not recyclable() now only because of leftover memory charge, which may yet be freed (the
   * kernel frees a run's own objects after an RCU grace period): worth waiting for (manager.ts
   * Cooling). False when something else rules reuse out for good.
   */
  mayRecycleLater(): boolean;
  /** Close the fds this directory holds (joinFd, dirFd, counters); remove() does it too. */
  closeFds(): void;
  /** Close fds and rmdir. Throws CgroupError (EBUSY) while processes remain. */
  remove(): void;
}

export function emptyUsage(): CgroupUsage {
  return {
    cpuTimeMs: null,
    userCpuMs: null,
    systemCpuMs: null,
    peakMemoryBytes: null,
    memoryLimitHit: false,
    oomKilled: false,
    oomKillCount: 0,
    pidsLimitHit: false,
    cpuThrottledMs: null,
  };
}
