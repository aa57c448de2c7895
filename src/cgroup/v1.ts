/**
 * cgroup v1 writers: one directory per hierarchy, each serving the controllers mounted there
 * (`cpu` and `cpuacct` may share one directory or live in two).
 *
 * Files used, as Documentation/admin-guide/cgroup-v1/ describes them:
 *  - memory.txt: memory.limit_in_bytes, memory.memsw.limit_in_bytes (memory+swap; present only
 *    with swap accounting), memory.max_usage_in_bytes and memory.failcnt ("can be reset by
 *    writing 0"; §5.3 says max_usage reset sets it to the current usage), memory.oom_control
 *    (`oom_kill N` since 4.13, never reset), memory.usage_in_bytes (what a reused cgroup
 *    would start with, see recyclable);
 *  - cpuacct.txt: cpuacct.usage ("writing 0 resets" every per-CPU counter, user and system
 *    included), cpuacct.usage_all (per-CPU user/system ns);
 *  - sched-bwc.txt: cpu.cfs_quota_us / cpu.cfs_period_us, cpu.stat throttled_time;
 *  - pids.txt: pids.max, pids.events (`max N`, never reset);
 *  - cpusets.txt: a new cpuset has empty cpuset.cpus and cpuset.mems, and a task cannot join
 *    until both are set, so they are copied from the parent at creation;
 *  - devices.txt: devices.deny `a` (deny all, no exceptions), then devices.allow lines, one
 *    rule per write; see prepareDevices.
 */
import { closeSync, openSync, rmdirSync, constants } from 'node:fs';
import { join } from 'node:path';
import type { CgroupController, CgroupHierarchy } from './detect.js';
import { CgroupError, cgroupFsError, isCgroupError } from './errors.js';
import {
  CgroupFileIO,
  delta,
  makeCgroupDir,
  parseFlatKeyed,
  parseSingle,
  readCgroupFile,
  readPidsOf,
  splitCpuTime,
  writeCgroupFile,
} from './files.js';
import { killPids } from './kill.js';
import type { CgroupDeviceRule, CgroupLimits, CgroupUsage, HierarchyCgroup } from './types.js';

/** The CFS period capsule uses, in µs: the kernel default (sched-bwc.txt), so quota = cpus × 100 ms. */
export const CFS_PERIOD_US = 100_000;

/** Create `parent` (a relative path such as `capsule`) under a v1 hierarchy, level by level. */
export function ensureV1Parent(hierarchy: CgroupHierarchy, parent: string): string {
  const cpuset = hierarchy.controllers.includes('cpuset');
  let dir = hierarchy.mountPoint;
  for (const part of parent.split('/').filter(Boolean)) {
    const next = join(dir, part);
    if (makeCgroupDir(next, hierarchy.controllers.join(','), true) && cpuset) copyCpuset(dir, next);
    dir = next;
  }
  return dir;
}

/** cpusets.txt §1.9: cpus and mems must be non-empty before a task can join; inherit the parent's. */
function copyCpuset(from: string, to: string): void {
  for (const file of ['cpuset.cpus', 'cpuset.mems']) {
    if (readCgroupFile(join(to, file), 'cpuset').trim() !== '') continue;
    writeCgroupFile(join(to, file), readCgroupFile(join(from, file), 'cpuset').trim(), 'cpuset');
  }
}

export interface V1Options {
  /**
   * A cgroup still charged with more than this many bytes after a run is removed rather than
   * reused. See recyclable() for why. @default 1 MiB
   */
  maxLeftoverBytes?: number;
}

/**
 * Why leftover charge retires a cgroup instead of being reclaimed. After a run, what stays
 * charged is page cache of files the run was the first to read (a fresh rootfs binary, an
 * interpreter's library) and kernel objects (dentries, inodes): a few hundred KiB for a
 * small run, measured here. In a reused cgroup it would count in the next run's peak
 * (max_usage resets to the current usage, not 0) and against its limit. Reclaiming it
 * (memory.force_empty, v2 memory.reclaim) would evict that cache from memory, so the next
 * run of the same program would read it from disk again. Removing the cgroup instead keeps
 * the pages cached (they stay charged to the removed memcg until evicted) and costs one
 * mkdir/rmdir, ~1 ms, on the runs that cached something new, which paid for disk reads
 * anyway. Later runs of the same program find those pages cached and charged elsewhere, as
 * they would in a fresh cgroup, so they leave little behind and stay on the pooled path.
 */
/** One sandbox cgroup in one v1 hierarchy. */
export class V1Cgroup implements HierarchyCgroup {
  readonly path: string;
  joinFd = -1;
  /** v1 has no CLONE_INTO_CGROUP. */
  readonly dirFd = -1;
  private io: CgroupFileIO;
  private readonly has: ReadonlySet<CgroupController>;
  private readonly maxLeftoverBytes: number;
  private memsw = false;
  private parentCpus = '';
  // What is written now, so an unchanged limit costs nothing on reuse. -1 = unlimited.
  private memLimit = -1;
  private pidsMax = -1;
  private quotaUs = -1;
  private cpusetCpus = '';
  /** The device rules in force, as written; null until prepare wrote them (a new cgroup copies its parent's). */
  private deviceRules: string | null = null;
  // Baselines of the counters v1 cannot reset.
  private oomKillBase = 0;
  private pidsEventsBase = 0;
  private throttledBase: Record<string, number> = {};

  constructor(
    readonly hierarchy: CgroupHierarchy,
    parentDir: string,
    name: string,
    readonly controllers: readonly CgroupController[],
    opts: V1Options = {},
  ) {
    this.path = join(parentDir, name);
    this.io = new CgroupFileIO(this.path);
    this.has = new Set(controllers);
    this.maxLeftoverBytes = opts.maxLeftoverBytes ?? 1024 * 1024;
  }

  private file(name: string): string {
    return join(this.path, name);
  }

  create(): void {
    makeCgroupDir(this.path, this.controllers.join(','), false);
    this.init();
  }

  /**
   * One-time setup of a freshly made directory, then open joinFd. Separate from create() so
   * fixture tests can run it on a directory they populated (kernfs creates the files at mkdir).
   */
  init(): void {
    this.io = new CgroupFileIO(this.path);
    try {
      if (this.has.has('cpuset')) {
        copyCpuset(join(this.path, '..'), this.path);
        this.parentCpus = this.cpusetCpus = this.io.read('cpuset.cpus', 'cpuset').trim();
      }
      if (this.has.has('memory')) {
        this.memsw = this.io.exists('memory.memsw.limit_in_bytes');
        // Without swap accounting (swapaccount=0) memsw cannot cap swap; memory.txt §5.3:
        // "limit reclaim enforces that 0 swappiness really prevents from any swapping", so
        // the sandbox's anonymous memory cannot spill into swap when it hits its limit.
        if (!this.memsw && this.io.exists('memory.swappiness'))
          this.io.write('memory.swappiness', '0', 'memory');
      }
      if (this.has.has('cpu')) {
        // A quota is relative to the period; pin the period so `cpus` means what it says.
        const period = parseSingle(this.io.read('cpu.cfs_period_us', 'cpu'));
        if (period !== CFS_PERIOD_US) this.io.write('cpu.cfs_period_us', String(CFS_PERIOD_US), 'cpu');
      }
      // libuv opens every file O_CLOEXEC: the fd reaches the sandbox's child through
      // clone() but never the untrusted program's exec.
      this.joinFd = openSync(this.file('cgroup.procs'), constants.O_WRONLY);
    } catch (cause) {
      try {
        rmdirSync(this.path);
      } catch {
        // Nothing can be inside yet; a failure here leaves an empty directory for gc.
      }
      throw isCgroupError(cause)
        ? cause
        : cgroupFsError('open', this.file('cgroup.procs'), this.controllers.join(','), cause);
    }
  }

  prepare(limits: CgroupLimits): void {
    if (this.has.has('memory')) this.prepareMemory(limits.memoryLimitBytes ?? -1);
    if (this.has.has('cpuacct')) {
      this.io.write('cpuacct.usage', '0', 'cpuacct');
    }
    if (this.has.has('cpu')) {
      const quota = limits.cpus === undefined ? -1 : Math.round(limits.cpus * CFS_PERIOD_US);
      if (quota !== this.quotaUs) {
        this.io.write('cpu.cfs_quota_us', String(quota), 'cpu');
        this.quotaUs = quota;
      }
      this.throttledBase = quota > 0 ? parseFlatKeyed(this.io.read('cpu.stat', 'cpu')) : {};
    }
    if (this.has.has('pids')) {
      const max = limits.pidsLimit ?? -1;
      if (max !== this.pidsMax) {
        this.io.write('pids.max', max < 0 ? 'max' : String(max), 'pids');
        this.pidsMax = max;
      }
      this.pidsEventsBase = this.pidsMaxEvents();
    }
    if (this.has.has('devices')) this.prepareDevices(limits.devices);
    if (this.has.has('cpuset')) {
      const cpus = limits.cpusetCpus ?? this.parentCpus;
      if (cpus !== this.cpusetCpus) {
        this.io.write('cpuset.cpus', cpus, 'cpuset');
        this.cpusetCpus = cpus;
      }
    }
  }

  private prepareMemory(limit: number): void {
    if (limit !== this.memLimit) {
      // memory.txt §2.5: memsw.limit_in_bytes must stay >= limit_in_bytes at every moment,
      // so raise memsw first and lower it last. -1 is "unlimited" in both files.
      const raise = limit < 0 || (this.memLimit >= 0 && limit > this.memLimit);
      const mem = (): void => this.io.write('memory.limit_in_bytes', String(limit), 'memory');
      const sw = (): void => {
        if (this.memsw) this.io.write('memory.memsw.limit_in_bytes', String(limit), 'memory');
      };
      if (raise) {
        sw();
        mem();
      } else {
        mem();
        sw();
      }
      this.memLimit = limit;
    }
    // Resettable counters are reset; the max_usage reset sets it to the current usage
    // (the leftover charge, at most maxLeftoverBytes: see recyclable), not to 0.
    this.io.write('memory.max_usage_in_bytes', '0', 'memory');
    this.io.write('memory.failcnt', '0', 'memory');
    if (this.memsw) {
      this.io.write('memory.memsw.max_usage_in_bytes', '0', 'memory');
      this.io.write('memory.memsw.failcnt', '0', 'memory');
    }
    // oom_kill counts for the cgroup's whole life and has no reset: subtract a baseline.
    this.oomKillBase = this.oomKills();
  }

  /**
   * devices.txt §3: writing `a` to devices.deny drops every exception and makes the default
   * deny; each `devices.allow` write then adds one exception (`c 195:0 rwm`). A new cgroup
   * copies its parent's list (capsule's parent allows everything), and so does a pooled one
   * keep the last run's: the whole list is rewritten, deny first, whenever it differs from
   * what this cgroup holds, so one run's devices never reach the next. Without rules the
   * cgroup allows everything again (`a` to devices.allow, which the kernel accepts only under
   * a parent that allows everything), as absent limits mean no limit. A failed write leaves
   * the state unknown (null): the manager then removes this cgroup rather than reuse it.
   */
  private prepareDevices(rules: readonly CgroupDeviceRule[] | undefined): void {
    const lines = rules?.map((r) => `${r.type} ${r.major}:${r.minor} ${r.access}`) ?? null;
    const key = lines === null ? 'a' : lines.join('\n');
    if (key === this.deviceRules) return;
    this.deviceRules = null;
    if (lines === null) {
      this.io.write('devices.allow', 'a', 'devices');
    } else {
      this.io.write('devices.deny', 'a', 'devices');
      for (const line of lines) {
        try {
          this.io.write('devices.allow', line, 'devices');
        } catch (cause) {
          // devices.txt §4: a cgroup can allow only what its parent allows (EPERM otherwise).
          if (!isCgroupError(cause) || cause.code !== 'EPERM') throw cause;
          throw new CgroupError(
            `cgroup devices: ${join(this.path, '..')} does not allow "${line}", so no sandbox under it can have it (EPERM): ` +
              "a device cgroup above capsule's (a container's device list, a systemd unit's DeviceAllow) must allow it",
            {
              step: 'write',
              controller: 'devices',
              path: join(this.path, 'devices.allow'),
              code: 'EPERM',
              cause,
            },
          );
        }
      }
    }
    this.deviceRules = key;
  }

  private oomKills(): number {
    return parseFlatKeyed(this.io.read('memory.oom_control', 'memory')).oom_kill ?? 0;
  }

  private pidsMaxEvents(): number {
    // pids.events exists on v1 since 4.x; without it a hit cannot be told, so report none.
    const text = this.io.readOptional('pids.events');
    return text === null ? 0 : (parseFlatKeyed(text).max ?? 0);
  }

  collect(into: CgroupUsage): void {
    if (this.has.has('memory')) {
      const peak = parseSingle(this.io.read('memory.max_usage_in_bytes', 'memory'));
      const swPeak = this.memsw ? parseSingle(this.io.read('memory.memsw.max_usage_in_bytes', 'memory')) : 0;
      into.peakMemoryBytes = Math.max(peak, swPeak);
      const failcnt = parseSingle(this.io.read('memory.failcnt', 'memory'));
      const swFailcnt = this.memsw ? parseSingle(this.io.read('memory.memsw.failcnt', 'memory')) : 0;
      into.oomKillCount = Math.max(0, this.oomKills() - this.oomKillBase);
      into.oomKilled = into.oomKillCount > 0;
      // failcnt is not a reliable witness on its own: on 6.18 it stays 0 through an OOM kill
      // (measured), so an OOM kill counts as a hit too.
      into.memoryLimitHit = failcnt + swFailcnt > 0 || into.oomKilled;
    }
    if (this.has.has('cpuacct')) {
      // The total from cpuacct.usage: ns of runtime, charged precisely at every scheduler
      // update. The user/system counters (usage_all, "cpu user system" per CPU, the same
      // numbers as usage_user/usage_sys) are sampled per tick: whole multiples of 1/HZ (4 ms
      // here), so their sum missed the total by up to a few ticks (measured: 24 + 4 ms against
      // 29.32 ms). Only their ratio is used: the exact total is split by it, as the kernel
      // does for /proc/PID/stat, cpuacct.stat and v2's cpu.stat (cputime_adjust in
      // kernel/sched/cputime.c), so user + system == total. cpuacct.stat itself is no use
      // here: it is in 10 ms USER_HZ ticks, and its scaling state survives the reset of
      // cpuacct.usage, which does zero usage_all.
      const total = this.cpuTimeMs() ?? 0;
      let user = 0;
      let system = 0;
      for (const line of this.io.read('cpuacct.usage_all', 'cpuacct').split('\n').slice(1)) {
        const [, u, s] = line.trim().split(/\s+/);
        if (u !== undefined && s !== undefined) {
          user += Number(u);
          system += Number(s);
        }
      }
      const split = splitCpuTime(total, user, system);
      into.cpuTimeMs = total;
      into.userCpuMs = split.user;
      into.systemCpuMs = split.system;
    }
    if (this.has.has('cpu')) {
      into.cpuThrottledMs =
        this.quotaUs > 0
          ? (delta(parseFlatKeyed(this.io.read('cpu.stat', 'cpu')), this.throttledBase).throttled_time ?? 0) /
            1e6
          : 0;
    }
    if (this.has.has('pids')) into.pidsLimitHit = this.pidsMaxEvents() - this.pidsEventsBase > 0;
  }

  cpuTimeMs(): number | null {
    // cpuacct.usage was reset to 0 at prepare(): one number, in ns.
    return this.has.has('cpuacct') ? parseSingle(this.io.read('cpuacct.usage', 'cpuacct')) / 1e6 : null;
  }

  pids(): number[] {
    // Opened afresh every time: v1 builds a pid list at the first read of an open file and
    // serves later reads of that fd from it (cgroup-v1.c cgroup_pidlist_start), so a kept fd
    // would report processes long gone, or miss new ones.
    return readPidsOf(this.path, this.controllers.join(','));
  }

  isEmpty(): boolean {
    // pids.current drops only when a task is reaped: 0 means nothing is left, zombies included.
    if (this.has.has('pids')) return parseSingle(this.io.read('pids.current', 'pids')) === 0;
    return this.pids().length === 0;
  }

  kill(): boolean {
    return killPids(this.pids());
  }

  recyclable(): boolean {
    if (!this.has.has('memory')) return true;
    return parseSingle(this.io.read('memory.usage_in_bytes', 'memory')) <= this.maxLeftoverBytes;
  }

  mayRecycleLater(): boolean {
    /* Leftover charge is the only thing recyclable() weighs. */
    return this.has.has('memory');
  }

  /** Close the fds this object holds; remove() does it too. */
  closeFds(): void {
    this.io.close();
    if (this.joinFd >= 0) closeSync(this.joinFd);
    this.joinFd = -1;
  }

  remove(): void {
    this.closeFds();
    try {
      rmdirSync(this.path);
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw cgroupFsError('rmdir', this.path, this.controllers.join(','), cause, `remove ${this.path}`);
    }
  }
}
