/**
 * CgroupManager: gives each sandbox its own cgroup(s), from a pool.
 *
 * Why a pool: creating and removing a sandbox's cgroups (4 v1 hierarchies here) costs
 * 0.7–1.2 ms per run at p50 and 5–17 ms at p99 (bench/cgroup.ts), mostly mkdir and rmdir
 * under cgroup_mutex and memcg setup and teardown (a removed memory cgroup lingers as a
 * "dying" memcg until its last page is uncharged); taking a pooled one costs ~0.035 ms at p50.
 * A cgroup that has served a run is emptied, checked, and kept; the next run with the same
 * shape resets its counters and rewrites only the limits that differ. What makes that safe, counter by counter, is written
 * next to each counter in v1.ts and v2.ts: resettable counters are reset (v1 max_usage, failcnt,
 * cpuacct.usage; v2 memory.peak per fd on 6.12+), the others get a baseline subtracted
 * (oom_kill, pids.events, v2 cpu.stat and memory.events), and a cgroup whose peak cannot be
 * reset, or that is left charged with more than maxLeftoverBytes of memory (page cache the run
 * was first to read: v1.ts recyclable), is removed instead of reused.
 *
 * Cooling: most of what a small run leaves charged is kernel memory freed a few milliseconds
 * after its processes are gone (its mounts, proc inodes and dentries, freed after an RCU grace
 * period). Read at release, a run of /bin/true had 1.03-1.45 MiB charged in 16% of runs, and
 * 0.15-0.48 MiB 10-30 ms later (measured, v1, 2026-11-30). So a cgroup over the threshold only
 * by its charge waits aside (`cooling`) for up to coolingMs instead of being removed, and is
 * reused once recyclable() says yes: the same threshold, checked when it is taken again. One
 * that never cools is removed then. Until then removing it and making another cost the run a
 * rmdir and a mkdir in every hierarchy, ~0.35 ms of its latency at p50.
 *
 * Layout: `<mount point>/<parent>/<pid>-<starttime>-<n>` in each hierarchy the sandbox needs,
 * the same name in each (names.ts). Nothing outside `<parent>` is ever written, except
 * `+controller` in the v2 root's cgroup.subtree_control, which v2 requires (v2.ts).
 */
import { availableParallelism } from 'node:os';
import { type CgroupController, type CgroupHierarchy, type CgroupLayout, detectCgroups } from './detect.js';
import { ConfigError } from '../errors.js';
import { CgroupError, isCgroupError } from './errors.js';
import { closeOnExit, forgetOnExit } from './exit.js';
import { gcCgroups, type GcResult } from './gc.js';
import { nextCgroupName } from './names.js';
import { type SandboxCgroup, SandboxHandle, type Slot } from './sandbox.js';
import type { CgroupLimits, DeviceProgramSetter, HierarchyCgroup } from './types.js';
import { ensureV1Parent, V1Cgroup } from './v1.js';
import { ensureV2Parent, V2Cgroup, type V2Parent } from './v2.js';
import { removeDirWithRetry, sleep } from './wait.js';
import { missingControllerError, requiredControllers, validateLimits } from './limits.js';

export interface CgroupManagerOptions {
  /** Where the controllers live. @default detectCgroups() */
  layout?: CgroupLayout;
  /**
   * Parent cgroup of every sandbox cgroup, relative to each hierarchy's mount point; created
   * on first use (several levels allowed: `capsule/ci`). @default 'capsule'
   */
  parent?: string;
  /** Free cgroups kept for reuse per shape (set of hierarchies); 0 disables pooling. @default 2 × CPUs */
  poolSize?: number;
  /** Memory still charged after a run above which a cgroup is removed, not reused, in bytes (v1.ts). @default 1 MiB */
  maxLeftoverBytes?: number;
  /**
   * How a `devices` limit is enforced on cgroup v2, which has no devices controller: a
   * function that attaches a BPF device program (types.ts DeviceProgramSetter; run() passes
   * the addon's). Without it a devices limit on v2 fails. v1 uses its devices controller.
   */
  setDeviceProgram?: DeviceProgramSetter;
  /** How long release() waits for killed processes to leave the cgroup, in ms. @default 2000 */
  drainTimeoutMs?: number;
  /**
   * How long a cgroup left charged above maxLeftoverBytes waits for the charge to be freed
   * before it is removed, in ms (see Cooling above). @default 1000
   */
  coolingMs?: number;
  /**
   * Remove every cgroup of this manager when the Node process ends: on 'exit', and on SIGINT,
   * SIGTERM or SIGHUP when nothing else listens for them (then the signal is re-raised, see
   * exit.ts). A SIGKILL leaves them for `capsule gc`. @default true
   */
  cleanupOnExit?: boolean;
}

export interface AcquireOptions {
  /**
   * Also join the controllers that only measure (memory for peak and OOM, cpuacct/cpu.stat for
   * CPU time, pids, cpu) where they are available, even if no limit needs them. Missing ones
   * are skipped silently; only controllers a limit needs are required. @default true
   */
  accounting?: boolean;
}

/**
 * Controllers joined for measurement when available. cpuset only when pinning is asked:
 * joining a cpuset rewrites the task's allowed CPUs and memory nodes (cpuset_attach), work
 * not worth a hierarchy's migration when nothing is pinned.
 */
const ACCOUNTING: readonly CgroupController[] = ['memory', 'cpuacct', 'cpu', 'pids'];

export interface ManagerStats {
  created: number;
  reused: number;
  removed: number;
  free: number;
  inUse: number;
  /** Released, waiting for zombies to be reaped before reuse. */
  draining: number;
  /** Released, waiting for leftover memory charge to be freed before reuse (see Cooling). */
  cooling: number;
}

export class CgroupManager {
  readonly layout: CgroupLayout;
  readonly parent: string;
  private readonly poolSize: number;
  private readonly maxLeftoverBytes: number | undefined;
  private readonly setDeviceProgram: DeviceProgramSetter | undefined;
  private readonly drainTimeoutMs: number;
  private readonly coolingMs: number;
  private readonly parents = new Map<CgroupHierarchy, { dir: string; v2?: V2Parent } | CgroupError>();
  private readonly free = new Map<string, Slot[]>();
  private readonly inUse = new Map<Slot, SandboxHandle>();
  /** Slots that could not be emptied or removed; retried by close(). */
  private readonly stuck = new Set<Slot>();
  /** Released slots with only unreaped zombies left; reused once empty (takeFree). */
  private readonly draining = new Set<Slot>();
  /** Released slots over maxLeftoverBytes only by charge the kernel frees soon, with when they were released. */
  private readonly cooling = new Map<Slot, number>();
  private coolingTimer: NodeJS.Timeout | undefined;
  private readonly counts = { created: 0, reused: 0, removed: 0 };
  private closed = false;

  constructor(opts: CgroupManagerOptions = {}) {
    this.layout = opts.layout ?? detectCgroups();
    this.parent = opts.parent ?? 'capsule';
    if (this.parent.split('/').some((p) => p === '..' || p === '.') || this.parent.startsWith('/')) {
      throw new ConfigError(
        `cgroup parent ${JSON.stringify(this.parent)} must be a relative path without . or ..`,
        'parent',
      );
    }
    this.poolSize = opts.poolSize ?? 2 * availableParallelism();
    this.maxLeftoverBytes = opts.maxLeftoverBytes;
    this.setDeviceProgram = opts.setDeviceProgram;
    this.drainTimeoutMs = opts.drainTimeoutMs ?? 2000;
    this.coolingMs = opts.coolingMs ?? 1000;
    if (opts.cleanupOnExit !== false) closeOnExit(this);
  }

  /**
   * A cgroup (set) for one sandbox, with `limits` written and counters reset.
   * Returns null when no limit was asked and no cgroup is usable at all (or accounting is off):
   * the run proceeds without one.
   * @throws ConfigError for an invalid limit; CgroupError when a limit's controller is missing,
   *   disabled, read-only or cannot be set up.
   */
  acquire(limits: CgroupLimits = {}, opts: AcquireOptions = {}): SandboxCgroup | null {
    if (this.closed) throw new Error('CgroupManager.acquire() after close()');
    validateLimits(limits);
    const groups = this.resolve(limits, opts.accounting ?? true);
    if (groups.length === 0) return null;
    const key = keyOf(groups);
    let slot = this.takeFree(key);
    if (slot) this.counts.reused++;
    else {
      const made = this.createSlot(key, groups, limits);
      if (made === 'retry') return this.acquire(limits, opts);
      slot = made;
    }
    try {
      for (const dir of slot.dirs) dir.prepare(limits);
    } catch (cause) {
      const reused = slot.uses > 0;
      this.destroySync(slot);
      // A reused cgroup can refuse what a fresh one takes (v1: a memory limit below what is
      // still charged fails with EBUSY): try once more with a fresh one before failing.
      if (reused) return this.acquire(limits, opts);
      throw cause;
    }
    slot.uses++;
    const handle = new SandboxHandle(slot, (s) => this.release(s), limits);
    this.inUse.set(slot, handle);
    return handle;
  }

  /**
   * Create up to `count` cgroups of the shape `limits` and `opts` give (which hierarchies; the
   * limit values do not matter) and pool them, so that the first runs do not pay for mkdir.
   * Bounded by poolSize. Returns how many were made. @throws like acquire()
   */
  prewarm(count: number = this.poolSize, limits: CgroupLimits = {}, opts: AcquireOptions = {}): number {
    validateLimits(limits);
    const groups = this.resolve(limits, opts.accounting ?? true);
    if (groups.length === 0) return 0;
    const key = keyOf(groups);
    const list = this.free.get(key) ?? [];
    this.free.set(key, list);
    let made = 0;
    while (list.length < Math.min(count, this.poolSize)) {
      const slot = this.createSlot(key, groups, limits);
      if (slot === 'retry') return made + this.prewarm(count, limits, opts);
      list.push(slot);
      made++;
    }
    return made;
  }

  /** Which hierarchies, with which controllers, this acquire needs; throws for a missing required one. */
  private resolve(limits: CgroupLimits, accounting: boolean): Group[] {
    const required = requiredControllers(limits);
    const wanted = accounting ? [...new Set([...required, ...ACCOUNTING])] : required;
    const groups = new Map<CgroupHierarchy, CgroupController[]>();
    for (const c of wanted) {
      const isRequired = required.includes(c);
      const hierarchy = this.layout.controllers[c];
      if (!hierarchy) {
        if (isRequired) throw missingControllerError(c, this.layout);
        continue;
      }
      const problem = this.problemWith(hierarchy, c);
      if (problem) {
        if (isRequired) throw problem;
        continue;
      }
      groups.set(hierarchy, [...(groups.get(hierarchy) ?? []), c]);
    }
    // Sorted, so that the pool key (and the fd order) does not depend on which limits were
    // asked; the witness (see isWitness) first, so that it is joined first.
    const rank = (h: CgroupHierarchy, cs: CgroupController[]) =>
      (isWitness(h, cs) ? '0' : '1') + h.mountPoint;
    return [...groups]
      .map(([hierarchy, controllers]) => ({ hierarchy, controllers: controllers.sort() }))
      .sort((a, b) => (rank(a.hierarchy, a.controllers) < rank(b.hierarchy, b.controllers) ? -1 : 1));
  }

  /** Why `controller` cannot be used in `hierarchy`, or null; creates the parent on first use. */
  private problemWith(hierarchy: CgroupHierarchy, controller: CgroupController): CgroupError | null {
    if (hierarchy.readOnly) {
      return new CgroupError(
        `cgroup ${controller} controller is on a read-only mount (${hierarchy.mountPoint}): mount it read-write or run on the host`,
        { step: 'mkdir', controller, path: hierarchy.mountPoint, code: 'EROFS' },
      );
    }
    let parent = this.parents.get(hierarchy);
    if (!parent) {
      try {
        if (hierarchy.version === 1) {
          parent = { dir: ensureV1Parent(hierarchy, this.parent) };
        } else {
          const v2 = ensureV2Parent(hierarchy, this.parent);
          parent = { dir: v2.dir, v2 };
        }
      } catch (cause) {
        if (!isCgroupError(cause)) throw cause;
        parent = cause;
      }
      this.parents.set(hierarchy, parent);
    }
    if (parent instanceof CgroupError) return withController(parent, controller);
    // cpuacct (cpu.stat) and devices (a BPF program) need nothing enabled in subtree_control.
    const core = controller === 'cpuacct' || controller === 'devices';
    if (parent.v2 && !core && !parent.v2.enabled.has(controller)) {
      const failure = parent.v2.failures.get(controller);
      return withController(
        failure ??
          new CgroupError(`cgroup ${controller} controller is not enabled in ${parent.dir}`, {
            step: 'write',
            controller,
            path: parent.dir,
          }),
        controller,
      );
    }
    return null;
  }

  private createSlot(key: string, groups: Group[], limits: CgroupLimits): Slot | 'retry' {
    const name = nextCgroupName();
    const dirs: HierarchyCgroup[] = [];
    for (const { hierarchy, controllers } of groups) {
      const parent = this.parents.get(hierarchy) as { dir: string };
      const opts = { maxLeftoverBytes: this.maxLeftoverBytes, setDeviceProgram: this.setDeviceProgram };
      const dir =
        hierarchy.version === 1
          ? new V1Cgroup(hierarchy, parent.dir, name, controllers, opts)
          : new V2Cgroup(hierarchy, parent.dir, name, controllers, opts);
      try {
        dir.create();
      } catch (cause) {
        for (const made of dirs) made.remove();
        if (!isCgroupError(cause)) throw cause;
        const required = requiredControllers(limits);
        if (controllers.some((c) => required.includes(c))) throw cause;
        // Only measuring controllers live here: do without this hierarchy from now on.
        this.parents.set(hierarchy, cause);
        return 'retry';
      }
      dirs.push(dir);
    }
    this.counts.created++;
    const first = groups[0];
    const witness = first && isWitness(first.hierarchy, first.controllers) ? (dirs[0] ?? null) : null;
    return { name, key, dirs, witness, uses: 0 };
  }

  /**
   * A pooled slot of this shape, or a drained one whose zombies have been reaped since, or a
   * cooling one whose leftover charge has fallen under maxLeftoverBytes since.
   */
  private takeFree(key: string): Slot | undefined {
    const slot = this.free.get(key)?.pop();
    if (slot) return slot;
    for (const drained of this.draining) {
      if (drained.key !== key || !isSlotEmpty(drained)) continue;
      this.draining.delete(drained);
      if (drained.dirs.every((d) => d.recyclable())) return drained;
      this.retire(drained);
    }
    for (const cooled of this.cooling.keys()) {
      if (cooled.key !== key || !cooled.dirs.every((d) => d.recyclable())) continue;
      this.cooling.delete(cooled);
      return cooled;
    }
    return undefined;
  }

  private async release(slot: Slot): Promise<void> {
    this.inUse.delete(slot);
    try {
      // Fast path: the exact "nothing left" counters (v2 populated, v1 pids.current) say empty.
      if (!isSlotEmpty(slot)) {
        await this.killUntilNoLiveProcess(slot);
        if (!isSlotEmpty(slot)) {
          // Only zombies left: dead, holding no memory, but still counted in pids.current until
          // their parent reaps them (in a PID namespace the sandbox's init does it at once;
          // orphans reparented to a slow host init can take a second here). Reusing the cgroup
          // now would lend their pid count to the next run, so it waits on the side.
          this.draining.add(slot);
          return;
        }
      }
      this.recycle(slot);
    } catch (cause) {
      // A release that failed part-way (EMFILE opening cgroup.events, at RLIMIT_NOFILE) keeps
      // the slot for close() and gc: a slot in no list would be left on the host at exit.
      this.stuck.add(slot);
      throw cause;
    }
  }

  /** SIGKILL until cgroup.procs lists no one, backing off from 1 ms; throws after drainTimeoutMs. */
  private async killUntilNoLiveProcess(slot: Slot): Promise<void> {
    const deadline = Date.now() + this.drainTimeoutMs;
    for (let delay = 1; ; delay = Math.min(delay * 2, 20)) {
      const pids = [...new Set(slot.dirs.flatMap((d) => d.pids()))];
      if (pids.length === 0) return;
      if (Date.now() >= deadline) {
        this.stuck.add(slot);
        throw new CgroupError(
          `cgroup ${slot.dirs[0]?.path}: processes ${pids.join(', ')} still inside ${this.drainTimeoutMs} ms after SIGKILL (uninterruptible sleep?); left for close() or capsule gc`,
          { step: 'kill', path: slot.dirs[0]?.path ?? null },
        );
      }
      for (const d of slot.dirs) d.kill();
      await sleep(delay);
    }
  }

  /** Back to the pool if there is room and every directory can be reused cleanly; else retire it. */
  private recycle(slot: Slot): void {
    if (!this.pool(slot)) this.retire(slot);
  }

  /** Into the free list, if there is room and every directory can be reused cleanly now. */
  private pool(slot: Slot): boolean {
    const list = this.free.get(slot.key) ?? [];
    if (this.closed || list.length >= this.poolSize || !slot.dirs.every((d) => d.recyclable())) return false;
    list.push(slot);
    this.free.set(slot.key, list);
    return true;
  }

  /**
   * A slot that cannot be reused now: cooling, when only leftover charge stands in the way and
   * there is room (free and cooling slots together stay within poolSize); else removed.
   */
  private retire(slot: Slot): void {
    const held = (this.free.get(slot.key)?.length ?? 0) + this.cooling.size;
    if (
      !this.closed &&
      held < this.poolSize &&
      slot.dirs.every((d) => d.recyclable() || d.mayRecycleLater())
    ) {
      this.cooling.set(slot, Date.now());
      this.sweepCoolingLater();
      return;
    }
    this.destroySync(slot);
  }

  /**
   * Now and then, off any run's path: cooled slots back to the pool, those cooling for longer
   * than coolingMs removed. The timer does not keep the process alive (close() removes them).
   */
  private sweepCoolingLater(): void {
    if (this.coolingTimer !== undefined) return;
    const period = Math.max(1, Math.min(50, this.coolingMs));
    this.coolingTimer = setTimeout(() => {
      this.coolingTimer = undefined;
      const now = Date.now();
      for (const [slot, since] of this.cooling) {
        try {
          if (this.pool(slot)) {
            this.cooling.delete(slot);
            continue;
          }
          if (now - since < this.coolingMs) continue;
          this.cooling.delete(slot);
          this.destroySync(slot);
        } catch (e) {
          /* destroySync parked it in `stuck` for close() and `capsule gc`; a failed read does the same. */
          this.cooling.delete(slot);
          this.stuck.add(slot);
          process.emitWarning((e as Error).message, 'CapsuleWarning');
        }
      }
      if (this.cooling.size > 0) this.sweepCoolingLater();
    }, period);
    this.coolingTimer.unref();
  }

  /** Kill, remove each directory (retrying EBUSY), close fds. Failures park the slot in `stuck`. */
  private destroySync(slot: Slot): void {
    try {
      for (const dir of slot.dirs) {
        dir.kill();
        removeDirWithRetry(dir.path, () => dir.kill(), this.drainTimeoutMs);
        dir.remove(); // closes the fds; the directory is gone already (ENOENT is fine)
      }
      this.stuck.delete(slot);
      this.counts.removed++;
    } catch (cause) {
      this.stuck.add(slot);
      throw cause;
    }
  }

  /** Remove leftovers of dead capsule processes (see gc.ts); this manager's own are live and kept. */
  gc(): GcResult {
    return gcCgroups(this.layout, { parent: this.parent });
  }

  stats(): ManagerStats {
    let free = 0;
    for (const list of this.free.values()) free += list.length;
    return {
      ...this.counts,
      free,
      inUse: this.inUse.size,
      draining: this.draining.size,
      cooling: this.cooling.size,
    };
  }

  /** Every cgroup directory this manager holds (in use, pooled, draining or stuck), and so keeps open. */
  heldDirs(): string[] {
    const slots = [
      ...[...this.free.values()].flat(),
      ...this.inUse.keys(),
      ...this.draining,
      ...this.cooling.keys(),
      ...this.stuck,
    ];
    return slots.flatMap((s) => s.dirs.map((d) => d.path));
  }

  /**
   * Kill and remove every cgroup this manager made, in use or pooled. Synchronous, so it can
   * run from an 'exit' handler. Returns what could not be removed (also left for gc).
   */
  close(): { failed: { path: string; error: string }[] } {
    this.closed = true;
    forgetOnExit(this);
    clearTimeout(this.coolingTimer);
    this.coolingTimer = undefined;
    const slots = new Set<Slot>([
      ...this.inUse.keys(),
      ...this.stuck,
      ...this.draining,
      ...this.cooling.keys(),
      ...[...this.free.values()].flat(),
    ]);
    this.draining.clear();
    this.cooling.clear();
    for (const handle of this.inUse.values()) handle.markReleased();
    this.inUse.clear();
    this.free.clear();
    /*
     * Every descriptor the slots hold goes first: killing and removing need a few of their
     * own (cgroup.procs is read afresh), and a process at its RLIMIT_NOFILE has none else,
     * so an exit under descriptor pressure left every pooled cgroup behind.
     */
    for (const slot of slots) for (const dir of slot.dirs) dir.closeFds();
    const failed: { path: string; error: string }[] = [];
    for (const slot of slots) {
      try {
        this.destroySync(slot);
      } catch (cause) {
        failed.push({ path: slot.dirs[0]?.path ?? slot.name, error: String((cause as Error).message) });
      }
    }
    return { failed };
  }
}

type Group = { hierarchy: CgroupHierarchy; controllers: CgroupController[] };

/** Pool key: the hierarchies and controllers a slot spans, in join order. */
function keyOf(groups: readonly Group[]): string {
  return groups.map((g) => `${g.hierarchy.mountPoint}:${g.controllers.join(',')}`).join('|');
}

/**
 * The witness of a slot is a directory whose "nothing left" test covers the whole sandbox: the
 * v2 directory (cgroup.events populated) or the v1 pids directory (pids.current, which counts
 * every task until it is reaped). It is joined first (joinFds[0]), so every live process in
 * any of the slot's directories is in the witness too: a process that joined only some before
 * failing is dead, and a sandbox cannot move itself between cgroups. Checking it alone makes
 * release cheap; without one (v1 without pids) every directory is read.
 */
function isWitness(hierarchy: CgroupHierarchy, controllers: readonly CgroupController[]): boolean {
  return hierarchy.version === 2 || controllers.includes('pids');
}

function isSlotEmpty(slot: Slot): boolean {
  return slot.witness ? slot.witness.isEmpty() : slot.dirs.every((d) => d.isEmpty());
}

/** The same error, with the controller named (a parent failure is shared by co-mounted controllers). */
function withController(err: CgroupError, controller: CgroupController): CgroupError {
  if (err.controller === controller) return err;
  return new CgroupError(err.message.replace(/^cgroup( [\w,]+)?:/, `cgroup ${controller}:`), {
    step: err.step,
    controller,
    path: err.path,
    code: err.code,
    errno: err.errno,
    cause: err,
  });
}
