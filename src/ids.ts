/**
 * Host ids for `hostIds: 'unique'`: each concurrent sandbox leases a host uid
 * (used as its gid too) from a range, for the length of its run. The kernel
 * charges per-user limits (inotify instances, pending signals, message-queue
 * bytes, RLIMIT_NPROC) to the host uid, so sandboxes that share one share
 * those limits; with a lease each has its own (native/userns.cc).
 *
 * A lease is a file /run/capsule/ids/ID held under flock(2) by an open
 * descriptor: unique across every capsule process on the machine (and across
 * runs in this one: flock locks belong to the open file, not the process),
 * dropped by the kernel when a process dies, and unlinked when the run ends.
 * A file left by a process that died holds no lease; the first lease of each
 * process removes such files (and /run is a tmpfs, emptied at boot).
 *
 * From a process's second run of one shape on, the lease usually comes made ahead
 * with the sandbox's user namespace, by the addon's pool thread
 * (native/userns_pool.h): the run then skips make_userns. Ids leased ahead are
 * ended when the process exits, and before a run of another shape.
 */
import { closeSync, mkdirSync } from 'node:fs';

import { CapsuleError } from './errors.js';
import { native } from './native.js';

/**
 * The default range: 65,536 ids from 0x70000000 (1879048192). systemd's
 * UIDS-GIDS.md leaves 1879048192-2147352575 unused (above the container
 * ranges of systemd-nspawn, below 2^31, which some tools take for negative),
 * and useradd's subordinate ids (SUB_UID_MAX, 600100000) end far below it.
 */
export const DEFAULT_HOST_ID_RANGE: Readonly<HostIdRange> = Object.freeze({
  first: 0x70000000,
  count: 65536,
});
/** Where the lease files live (root only, 0700). */
export const HOST_ID_LOCK_DIR = '/run/capsule/ids';

export interface HostIdRange {
  /** The first host id of the range. */
  first: number;
  /** How many ids, from `first`. */
  count: number;
}

export interface HostIdLease {
  uid: number;
  gid: number;
  /**
   * A user namespace made ahead for this id (mapping the sandbox's uid and gid to it), or
   * -1: the spawn makes one (make_userns). Closed by dropUserns() or release().
   */
  userns: number;
  /** Close `userns` (the spawn has its own copy once addon.spawn() returned). */
  dropUserns(): void;
  /** End the lease (idempotent): only once every process of the sandbox is gone. */
  release(): void;
}

let dirMade = false;
/*
 * Where the next search starts: past the last id leased, so an id is not reused at once.
 * Drawn on first use, not when the module loads: the CLI's start-up snapshot
 * (src/cli/snapshot.ts) would otherwise give every invocation the same start.
 */
let cursor = -1;

let drainOnExit = false;

/**
 * Lease a host id from `range` for one sandbox whose uid and gid inside are `inside`
 * (with them, a user namespace made ahead may come with it: `userns`).
 */
export function acquireHostIds(range: HostIdRange, inside?: { uid: number; gid: number }): HostIdLease {
  const addon = native();
  if (!dirMade) {
    try {
      mkdirSync(HOST_ID_LOCK_DIR, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new CapsuleError(
        `hostIds: cannot create ${HOST_ID_LOCK_DIR} for the host id leases: ${(e as Error).message} ` +
          `(hostIds: 'shared', --host-ids shared, runs every sandbox as its uid on the host instead)`,
      );
    }
    /* Files a process that died left behind hold no lease: clear them once per process. */
    addon.sweepHostIds(HOST_ID_LOCK_DIR);
    dirMade = true;
  }
  const ahead = inside
    ? addon.takeHostIds(HOST_ID_LOCK_DIR, range.first, range.count, inside.uid, inside.gid)
    : null;
  if (inside && !drainOnExit) {
    /* What the pool holds is ended with the process, not left to the next one's sweep. */
    drainOnExit = true;
    process.once('exit', () => addon.drainHostIdPool(true));
  }
  if (ahead) return lease(addon, ahead.id, ahead.fd, ahead.userns);
  let claim;
  try {
    if (cursor < 0) cursor = Math.floor(Math.random() * 0x10000);
    claim = addon.claimHostId(HOST_ID_LOCK_DIR, range.first, range.count, cursor % range.count);
  } catch (e) {
    const err = e as Error & { errno?: number };
    const last = range.first + range.count - 1;
    throw new CapsuleError(
      err.errno === 11 /* EAGAIN */
        ? `hostIds: every host id of hostIdRange (${range.first}-${last}) is leased by a running sandbox: widen hostIdRange`
        : `hostIds: cannot lease a host id from ${range.first}-${last}: ${err.message}`,
    );
  }
  cursor = claim.id - range.first + 1;
  return lease(addon, claim.id, claim.fd, -1);
}

function lease(addon: ReturnType<typeof native>, id: number, leaseFd: number, userns: number): HostIdLease {
  let fd: number | null = leaseFd;
  const l: HostIdLease = {
    uid: id,
    gid: id,
    userns,
    dropUserns() {
      if (l.userns >= 0) closeSync(l.userns);
      l.userns = -1;
    },
    release() {
      l.dropUserns();
      if (fd === null) return;
      addon.releaseHostId(HOST_ID_LOCK_DIR, id, fd);
      fd = null;
    },
  };
  return l;
}

/** A run ran out of descriptors: what the user-namespace pool holds is given back. */
export function releaseHostIdPool(): void {
  native().drainHostIdPool(false);
}

/** The descriptors the user-namespace pool holds now (test/helpers/host.ts leak checks). */
export function hostIdPoolFds(): number[] {
  return native().hostIdPoolFds();
}
