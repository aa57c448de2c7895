/**
 * cgroup v2 writers (Documentation/admin-guide/cgroup-v2.rst). One directory per sandbox in
 * the unified hierarchy.
 *
 * Resetting between pooled runs, file by file (docs/cgroups.md has the kernel table; what a
 * kernel offers is read from the files a cgroup has, detectV2Features, never from a version):
 *  - memory.peak: since 6.12 "a write of any non-empty string resets it to the current
 *    memory usage for subsequent reads through the same file descriptor". So the fd is
 *    opened and reset at prepare() and read at collect(). 5.19 to 6.11 make the file
 *    read-only: the peak is then the cgroup's all-time peak, right for a fresh cgroup only,
 *    so such a cgroup is used once and removed (recyclable() says no) rather than pooled.
 *    Before 5.19 there is no memory.peak: the peak is unknown (null), and nothing stops reuse.
 *  - memory.events, cpu.stat, pids.events: monotonic counters without a reset; a baseline is
 *    read at prepare() and subtracted at collect(). The baseline is exact because the cgroup
 *    is empty in between (nothing can add to the counters).
 *  - limits (memory.max, memory.swap.max, pids.max, cpu.max, cpuset.cpus): rewritten at
 *    every prepare() unless unchanged since the last one (capsule is the only writer).
 */
import {
  closeSync,
  constants,
  existsSync,
  openSync,
  readSync,
  rmdirSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { CgroupController, CgroupHierarchy } from './detect.js';
import { CgroupError, cgroupFsError } from './errors.js';
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
import type {
  CgroupDeviceRule,
  CgroupLimits,
  CgroupUsage,
  DeviceProgramSetter,
  HierarchyCgroup,
} from './types.js';

/** cpu.max period in µs: the kernel default ("max 100000"). */
export const CPU_MAX_PERIOD_US = 100_000;

/** The v2 controllers capsule enables for its sandboxes (cpuacct has no v2 controller). */
const V2_CONTROLLERS = ['memory', 'pids', 'cpu', 'cpuset'] as const;

export interface V2Parent {
  /** Absolute path of the parent cgroup. */
  dir: string;
  /** Controllers enabled in the parent's cgroup.subtree_control, hence usable by sandboxes. */
  enabled: ReadonlySet<string>;
  /** Why a controller listed by the root could not be enabled, per controller. */
  failures: ReadonlyMap<string, CgroupError>;
}

function enabledIn(dir: string): Set<string> {
  return new Set(readCgroupFile(join(dir, 'cgroup.subtree_control'), null).split(/\s+/).filter(Boolean));
}

/**
 * Create `parent` (relative, e.g. `capsule`) under the unified hierarchy and enable every
 * controller capsule uses along the way. cgroup-v2.rst "Top-down Constraint": a controller
 * can be enabled in a cgroup's subtree_control only if its parent enabled it; "No Internal
 * Process Constraint": a non-root cgroup that distributes resources to children cannot hold
 * processes itself, which holds here since nothing ever joins the parent directly.
 * Enabling at the hierarchy root makes the controller's files appear in every top-level
 * cgroup; systemd machines have them enabled already, so this writes nothing there.
 */
export function ensureV2Parent(hierarchy: CgroupHierarchy, parent: string): V2Parent {
  const wanted = V2_CONTROLLERS.filter((c) => hierarchy.controllers.includes(c));
  const failures = new Map<string, CgroupError>();
  let usable = new Set<string>(wanted);
  let dir = hierarchy.mountPoint;
  const levels = parent.split('/').filter(Boolean);
  for (let i = 0; ; i++) {
    const on = enabledIn(dir);
    for (const c of usable) {
      if (on.has(c)) continue;
      try {
        // One write per controller: a refusal of one (e.g. cpu with realtime tasks around)
        // must not cost the others.
        writeCgroupFile(join(dir, 'cgroup.subtree_control'), `+${c}`, c);
      } catch (cause) {
        failures.set(c, cause as CgroupError);
      }
    }
    usable = new Set([...usable].filter((c) => !failures.has(c)));
    const part = levels[i];
    if (part === undefined) break;
    const next = join(dir, part);
    makeCgroupDir(next, null, true);
    dir = next;
  }
  return { dir, enabled: usable, failures };
}

/**
 * What the kernel offers in a v2 cgroup, from the files it has (kernfs creates them at mkdir):
 * fixture directories stand for each kernel in the tests.
 */
export interface V2Features {
  /**
   * memory.peak: `resettable` where the file is writable (6.12+), `fixed` where it is
   * read-only (5.19 to 6.11: the cgroup's all-time peak), `absent` before 5.19 or without the
   * memory controller.
   */
  peak: 'resettable' | 'fixed' | 'absent';
  /** cgroup.kill (5.14+): one write kills the whole cgroup; else SIGKILL by pid, in a loop. */
  kill: boolean;
  /** memory.swap.max (swap accounting compiled in and on). */
  swapMax: boolean;
  /** memory.oom.group (4.19+). */
  oomGroup: boolean;
}

/**
 * Read the features of the v2 cgroup `dir`. memory.peak's write permission is its mode:
 * kernfs gives a file S_IWUSR only when it has a write handler, and refuses an open for
 * writing without one (EACCES, whoever asks), so root's DAC override does not blur the test.
 */
export function detectV2Features(dir: string): V2Features {
  let peak: V2Features['peak'] = 'absent';
  try {
    peak = (statSync(join(dir, 'memory.peak')).mode & 0o222) !== 0 ? 'resettable' : 'fixed';
  } catch {
    // ENOENT: before 5.19, or no memory controller here.
  }
  return {
    peak,
    kill: existsSync(join(dir, 'cgroup.kill')),
    swapMax: existsSync(join(dir, 'memory.swap.max')),
    oomGroup: existsSync(join(dir, 'memory.oom.group')),
  };
}

export interface V2Options {
  /** See V1Options.maxLeftoverBytes (memory.current here). @default 1 MiB */
  maxLeftoverBytes?: number;
  /** How `devices` limits are enforced: see DeviceProgramSetter. @default none (a devices limit fails) */
  setDeviceProgram?: DeviceProgramSetter;
}

/** One sandbox cgroup in the unified hierarchy. */
export class V2Cgroup implements HierarchyCgroup {
  readonly path: string;
  joinFd = -1;
  dirFd = -1;
  private io: CgroupFileIO;
  private readonly has: ReadonlySet<CgroupController>;
  private readonly maxLeftoverBytes: number;
  /** What this kernel offers here; read at init(). */
  features: V2Features = { peak: 'absent', kill: false, swapMax: false, oomGroup: false };
  private peakFd = -1;
  private memMax = -1;
  private pidsMax = -1;
  private quotaUs = -1;
  private cpus = '';
  /** The device rules the attached program allows, as a key; 'a' with none; null when unknown. */
  private deviceRules: string | null = null;
  private readonly setDeviceProgram: DeviceProgramSetter | undefined;
  private memoryEventsBase: Record<string, number> = {};
  private cpuStatBase: Record<string, number> = {};
  private pidsEventsBase: Record<string, number> = {};

  constructor(
    readonly hierarchy: CgroupHierarchy,
    parentDir: string,
    name: string,
    /** Controllers enabled for it; `cpuacct` means cpu.stat, which every v2 cgroup has. */
    readonly controllers: readonly CgroupController[],
    opts: V2Options = {},
  ) {
    this.path = join(parentDir, name);
    this.io = new CgroupFileIO(this.path);
    this.has = new Set(controllers);
    this.maxLeftoverBytes = opts.maxLeftoverBytes ?? 1024 * 1024;
    this.setDeviceProgram = opts.setDeviceProgram;
  }

  private file(name: string): string {
    return join(this.path, name);
  }

  create(): void {
    makeCgroupDir(this.path, null, false);
    this.init();
  }

  /**
   * One-time setup of a freshly made directory, then open joinFd. Separate from create() so
   * fixture tests can run it on a directory they populated (kernfs creates the files at mkdir).
   */
  init(): void {
    this.io = new CgroupFileIO(this.path);
    try {
      this.features = detectV2Features(this.path);
      if (!this.has.has('memory')) this.features = { ...this.features, peak: 'absent' };
      // An OOM kill takes the whole sandbox, not one process of it: a half-killed sandbox
      // (a worker gone, its parent waiting forever) is worse than a clean OOM verdict.
      if (this.has.has('memory') && this.features.oomGroup) this.io.write('memory.oom.group', '1', 'memory');
      this.joinFd = openSync(this.file('cgroup.procs'), constants.O_WRONLY);
      // clone3(2) CLONE_INTO_CGROUP takes "a file descriptor that refers to a directory in
      // the cgroup v2 hierarchy" and starts the child there, with no migration afterwards.
      this.dirFd = openSync(this.path, constants.O_RDONLY | constants.O_DIRECTORY);
    } catch (cause) {
      try {
        rmdirSync(this.path);
      } catch {
        // Empty directory left for gc.
      }
      throw cause instanceof CgroupError
        ? cause
        : cgroupFsError('open', this.file('cgroup.procs'), null, cause);
    }
  }

  prepare(limits: CgroupLimits): void {
    if (this.has.has('memory')) this.prepareMemory(limits.memoryLimitBytes ?? -1);
    if (this.has.has('cpu')) {
      const quota = limits.cpus === undefined ? -1 : Math.round(limits.cpus * CPU_MAX_PERIOD_US);
      if (quota !== this.quotaUs) {
        this.io.write('cpu.max', `${quota < 0 ? 'max' : quota} ${CPU_MAX_PERIOD_US}`, 'cpu');
        this.quotaUs = quota;
      }
    }
    if (this.has.has('cpu') || this.has.has('cpuacct')) {
      this.cpuStatBase = parseFlatKeyed(this.io.read('cpu.stat', 'cpu'));
    }
    if (this.has.has('pids')) {
      const max = limits.pidsLimit ?? -1;
      if (max !== this.pidsMax) {
        this.io.write('pids.max', max < 0 ? 'max' : String(max), 'pids');
        this.pidsMax = max;
      }
      this.pidsEventsBase = parseFlatKeyed(this.io.read('pids.events', 'pids'));
    }
    if (this.has.has('devices')) this.prepareDevices(limits.devices);
    if (this.has.has('cpuset')) {
      // An empty cpuset.cpus means "the parent's" (cgroup-v2.rst, Cpuset Interface Files).
      const cpus = limits.cpusetCpus ?? '';
      if (cpus !== this.cpus) {
        this.io.write('cpuset.cpus', cpus === '' ? '\n' : cpus, 'cpuset');
        this.cpus = cpus;
      }
    }
  }

  /**
   * cgroup-v2.rst, "Device controller": no interface files, a BPF_PROG_TYPE_CGROUP_DEVICE
   * program attached to the cgroup decides each open(2) and mknod(2) of a device node. The
   * setter attaches one allowing exactly the rules, replacing the last run's (a pooled cgroup
   * never keeps another run's list), or detaches it when there are none. A failure leaves the
   * state unknown, and the manager removes this cgroup.
   */
  private prepareDevices(rules: readonly CgroupDeviceRule[] | undefined): void {
    const key = rules?.map((r) => `${r.type} ${r.major}:${r.minor} ${r.access}`).join('\n') ?? 'a';
    if (key === this.deviceRules) return;
    if (!this.setDeviceProgram) {
      throw new CgroupError(
        'cgroup devices: cgroup v2 has no devices controller, and no BPF device program setter was given (CgroupManagerOptions.setDeviceProgram)',
        { step: 'write', controller: 'devices', path: this.path },
      );
    }
    this.deviceRules = null;
    try {
      this.setDeviceProgram(this.dirFd, rules ?? null);
    } catch (cause) {
      const errno = (cause as { errno?: number }).errno;
      throw new CgroupError(
        `cgroup devices: cannot gate devices in ${this.path}: ${(cause as Error).message}`,
        {
          step: 'write',
          controller: 'devices',
          path: this.path,
          errno: typeof errno === 'number' ? -errno : null,
          cause,
        },
      );
    }
    this.deviceRules = key;
  }

  private prepareMemory(limit: number): void {
    if (limit !== this.memMax) {
      this.io.write('memory.max', limit < 0 ? 'max' : String(limit), 'memory');
      // No swap for a limited sandbox: memory.max alone lets anonymous memory spill to swap.
      if (this.features.swapMax) this.io.write('memory.swap.max', limit < 0 ? 'max' : '0', 'memory');
      this.memMax = limit;
    }
    this.closePeak();
    if (this.features.peak === 'resettable') {
      try {
        this.peakFd = openSync(this.file('memory.peak'), constants.O_RDWR);
        writeSync(this.peakFd, 'reset\n');
      } catch {
        // Writable by its mode but refused: read it as the all-time peak, and use the cgroup once.
        this.closePeak();
        this.features = { ...this.features, peak: 'fixed' };
      }
    }
    this.memoryEventsBase = parseFlatKeyed(this.io.read('memory.events', 'memory'));
  }

  private closePeak(): void {
    if (this.peakFd >= 0) closeSync(this.peakFd);
    this.peakFd = -1;
  }

  private readPeak(): number | null {
    if (this.features.peak === 'absent') return null;
    if (this.peakFd >= 0) {
      const buf = Buffer.alloc(32);
      // pread at offset 0: kernfs regenerates the value on every read from the start.
      const n = readSync(this.peakFd, buf, 0, buf.length, 0);
      return parseSingle(buf.subarray(0, n).toString());
    }
    const text = this.io.readOptional('memory.peak');
    return text === null ? null : parseSingle(text);
  }

  collect(into: CgroupUsage): void {
    if (this.has.has('memory')) {
      into.peakMemoryBytes = this.readPeak();
      const events = delta(parseFlatKeyed(this.io.read('memory.events', 'memory')), this.memoryEventsBase);
      into.memoryEvents = events;
      into.memoryLimitHit = (events.max ?? 0) > 0;
      into.oomKillCount = events.oom_kill ?? 0;
      into.oomKilled = into.oomKillCount > 0;
    }
    if (this.has.has('cpu') || this.has.has('cpuacct')) {
      const stat = delta(parseFlatKeyed(this.io.read('cpu.stat', 'cpu')), this.cpuStatBase);
      // user_usec and system_usec are already scaled to usage_usec by the kernel
      // (cputime_adjust in cgroup_base_stat_cputime_show) but each is rounded down to a µs
      // apart: splitting the exact total by their ratio keeps user + system == total.
      const split = splitCpuTime((stat.usage_usec ?? 0) / 1000, stat.user_usec ?? 0, stat.system_usec ?? 0);
      into.cpuTimeMs = (stat.usage_usec ?? 0) / 1000;
      into.userCpuMs = split.user;
      into.systemCpuMs = split.system;
      if (this.has.has('cpu')) into.cpuThrottledMs = (stat.throttled_usec ?? 0) / 1000;
    }
    if (this.has.has('pids')) {
      const events = delta(parseFlatKeyed(this.io.read('pids.events', 'pids')), this.pidsEventsBase);
      into.pidsLimitHit = (events.max ?? 0) > 0;
    }
  }

  cpuTimeMs(): number | null {
    if (!this.has.has('cpu') && !this.has.has('cpuacct')) return null;
    const now = parseFlatKeyed(this.io.read('cpu.stat', 'cpu')).usage_usec ?? 0;
    return Math.max(0, now - (this.cpuStatBase.usage_usec ?? 0)) / 1000;
  }

  pids(): number[] {
    return readPidsOf(this.path, null);
  }

  isEmpty(): boolean {
    // cgroup-v2.rst "cgroup.events": populated is 1 while the cgroup or a descendant has live
    // processes. A process stops counting there when it exits (cgroup_exit), but its pids
    // charge stays until it is reaped (release_task): a zombie not yet reaped by its new
    // parent would lend its count to the next run's pids.max, so both must say empty.
    if (parseFlatKeyed(this.io.read('cgroup.events', null)).populated !== 0) return false;
    return !this.has.has('pids') || parseSingle(this.io.read('pids.current', 'pids')) === 0;
  }

  kill(): boolean {
    const pids = this.pids();
    if (pids.length === 0) return false;
    // cgroup.kill (5.14+) kills every process of the cgroup and its descendants at once, so
    // a fork racing with the kill cannot slip through as it could with a pid list.
    if (this.features.kill) {
      this.io.write('cgroup.kill', '1', null);
      this.killedByFile = true;
    } else killPids(pids);
    return true;
  }

  /*
   * Written to cgroup.kill once: never a clone3 target again. Since Linux 6.14 a write there
   * bumps the cgroup's kill_seq, and clone3 with CLONE_INTO_CGROUP compares the target's
   * kill_seq with one read from the parent's own cgroup (cgroup_css_set_fork reads
   * kargs->cgrp before setting it), so every child born into a cgroup killed before is
   * SIGKILLed at once (kernel/cgroup/cgroup.c, cgroup_post_fork; seen on 6.18.44 with a
   * session's commands after one left a daemon behind). Retiring the cgroup costs a mkdir.
   */
  private killedByFile = false;

  recyclable(): boolean {
    if (this.killedByFile) return false;
    if (!this.has.has('memory')) return true;
    if (this.features.peak === 'fixed') return false;
    // Leftover charge retires the cgroup rather than being reclaimed: see V1's recyclable().
    return parseSingle(this.io.read('memory.current', 'memory')) <= this.maxLeftoverBytes;
  }

  mayRecycleLater(): boolean {
    return !this.killedByFile && this.has.has('memory') && this.features.peak !== 'fixed';
  }

  /** Close the fds this object holds; remove() does it too. */
  closeFds(): void {
    this.io.close();
    this.closePeak();
    if (this.joinFd >= 0) closeSync(this.joinFd);
    if (this.dirFd >= 0) closeSync(this.dirFd);
    this.joinFd = -1;
    this.dirFd = -1;
  }

  remove(): void {
    this.closeFds();
    try {
      rmdirSync(this.path);
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw cgroupFsError('rmdir', this.path, null, cause, `remove ${this.path}`);
    }
  }
}
