/** The handle one run holds on its cgroup(s): what the native child joins, and what it measured. */
import { write } from 'node:fs';
import { join } from 'node:path';
import type { CgroupController } from './detect.js';
import { cgroupFsError } from './errors.js';
import { type CgroupLimits, type CgroupUsage, emptyUsage, type HierarchyCgroup } from './types.js';

export interface SandboxCgroup {
  /**
   * Open `O_WRONLY | O_CLOEXEC` fds of the `cgroup.procs` file of each cgroup the sandbox
   * belongs to (v2: one; v1: one per hierarchy). The native child writes the string "0"
   * into each before it execs: pid 0 means "the writing process" (kernel
   * cgroup_procs_write_start), which also works from inside a new PID namespace where the
   * child's own pid means nothing to the parent's view. Write them in array order (the
   * first is the cgroup whose emptiness test release() relies on), all of them before
   * anything else, and _exit if one write fails. Owned by this handle: valid until
   * release(), never to be closed by the caller.
   */
  readonly joinFds: readonly number[];
  /**
   * Where the sandbox has a v2 cgroup: an O_RDONLY|O_DIRECTORY fd of it for clone3(2) with
   * CLONE_INTO_CGROUP (Linux 5.7+), which creates the child inside that cgroup, so it never
   * migrates into it. A migration takes cgroup_threadgroup_rwsem for writing, which costs an
   * RCU grace period (~6 ms here) when no other migration happened recently (docs/cgroups.md);
   * a fork into a cgroup takes only the read side. A child created that way writes "0" into
   * `otherJoinFds` only (the v1 hierarchies of a hybrid layout; none on pure v2). Null where
   * the sandbox has no v2 cgroup; then joinFds is the way in. Owned by this handle.
   */
  readonly cloneInto: { readonly dirFd: number; readonly otherJoinFds: readonly number[] } | null;
  /** The cgroup directories, one per fd in joinFds, for `--explain` and error messages. */
  readonly paths: readonly string[];
  /** Controllers enforcing or measuring this sandbox. */
  readonly controllers: readonly CgroupController[];
  /**
   * Move process `pid` (as this process sees it) into every cgroup of the sandbox, in joinFds
   * order, off the event loop (libuv thread pool). For a parent that moves the child itself
   * while the child goes on with its setup and waits for the move only before exec: the
   * migration's wait for an RCU grace period (docs/cgroups.md) then overlaps with that setup
   * instead of adding to it. Rejects with a CgroupError (ESRCH: the process is gone).
   */
  adopt(pid: number): Promise<void>;
  /**
   * Count from now on: reset (or take new baselines of) every counter usage() reads, the
   * limits unchanged. For a sandbox made ahead of time (src/ahead.ts), whose setup and
   * waiting capsule-init were charged here before its run began. Synchronous.
   */
  rebase(): void;
  /** Counters of this run only; call after the sandbox exits (also valid while it runs). Synchronous. */
  usage(): CgroupUsage;
  /**
   * This run's CPU time in ms (all processes, user + system), from one file read (~2 µs):
   * for polling a CPU-time limit while the sandbox runs. Null without CPU accounting.
   */
  cpuTimeMs(): number | null;
  /** Pids currently in the cgroup (as seen from this pid namespace). */
  pids(): number[];
  /**
   * SIGKILL every process still in the cgroup: v2 cgroup.kill, v1 the pids in cgroup.procs.
   * A safety net for after the sandbox's init has exited; release() does it too.
   */
  killAll(): void;
  /**
   * Kill anything left, wait for the cgroup to empty, then return it to the pool (counters
   * are reset before its next use) or remove it. Closes nothing the caller owns. Idempotent.
   * @throws CgroupError (step `kill`) if processes remain after the manager's drain timeout;
   *   the cgroup is then kept for close() or `capsule gc`.
   */
  release(): Promise<void>;
}

/** A set of same-named cgroups, one per hierarchy, that one sandbox at a time uses. */
export interface Slot {
  readonly name: string;
  /** Pool key: which hierarchies and controllers the slot spans. */
  readonly key: string;
  readonly dirs: readonly HierarchyCgroup[];
  /** dirs[0] when its emptiness test covers the whole sandbox (manager.ts isWitness), else null. */
  readonly witness: HierarchyCgroup | null;
  /** Runs it has served. */
  uses: number;
}

export class SandboxHandle implements SandboxCgroup {
  readonly joinFds: readonly number[];
  readonly paths: readonly string[];
  readonly controllers: readonly CgroupController[];
  readonly cloneInto: { readonly dirFd: number; readonly otherJoinFds: readonly number[] } | null;
  private released = false;

  constructor(
    readonly slot: Slot,
    private readonly onRelease: (slot: Slot) => Promise<void>,
    private readonly limits: CgroupLimits = {},
  ) {
    this.joinFds = slot.dirs.map((d) => d.joinFd);
    this.paths = slot.dirs.map((d) => d.path);
    this.controllers = slot.dirs.flatMap((d) => d.controllers);
    const v2 = slot.dirs.find((d) => d.dirFd >= 0);
    this.cloneInto = v2
      ? { dirFd: v2.dirFd, otherJoinFds: slot.dirs.filter((d) => d !== v2).map((d) => d.joinFd) }
      : null;
  }

  rebase(): void {
    /* prepare() writes only limits that changed (none here) and resets or re-reads each counter. */
    for (const dir of this.slot.dirs) dir.prepare(this.limits);
  }

  usage(): CgroupUsage {
    const usage = emptyUsage();
    for (const dir of this.slot.dirs) dir.collect(usage);
    return usage;
  }

  async adopt(pid: number): Promise<void> {
    if (!Number.isSafeInteger(pid) || pid <= 0) throw new RangeError(`adopt: invalid pid ${pid}`);
    for (const dir of this.slot.dirs) {
      await new Promise<void>((resolve, reject) =>
        write(dir.joinFd, String(pid), (err) =>
          err
            ? reject(
                cgroupFsError(
                  'write',
                  join(dir.path, 'cgroup.procs'),
                  dir.controllers.join(','),
                  err,
                  `move pid ${pid} into ${dir.path}`,
                ),
              )
            : resolve(),
        ),
      );
    }
  }

  cpuTimeMs(): number | null {
    for (const dir of this.slot.dirs) {
      const ms = dir.cpuTimeMs();
      if (ms !== null) return ms;
    }
    return null;
  }

  pids(): number[] {
    const all = new Set<number>();
    for (const dir of this.slot.dirs) for (const pid of dir.pids()) all.add(pid);
    return [...all];
  }

  killAll(): void {
    for (const dir of this.slot.dirs) dir.kill();
  }

  /** Mark released by the manager's close(), so a late release() does nothing. */
  markReleased(): void {
    this.released = true;
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.onRelease(this.slot);
  }
}
