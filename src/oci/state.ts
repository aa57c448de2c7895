/**
 * The OCI state store: one directory per container under `--root` (default
 * /run/capsule-runc), holding state.json and the container's lock.
 *
 *   <root>/<id>/state.json   the runtime-spec state (ociVersion, id, status, pid, bundle,
 *                            annotations) plus what capsule needs to find the container
 *                            again (its PID 1's start time, cgroup paths, hooks, ...)
 *   <root>/<id>/0            the lock: a file held under flock(2) by the command working on
 *                            this id (see lockContainer)
 *
 * state.json is written to a temporary name and renamed over the old one (rename(2) is
 * atomic within a directory), so a reader sees the old state or the new one, never half.
 *
 * `status` is never trusted from the file alone: created and running hold only while the
 * recorded pid is alive, has the recorded start time (proc(5) /proc/PID/stat field 22: a
 * reused pid has another) and is not a zombie; otherwise the container is stopped.
 */
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

import { CapsuleError } from '../errors.js';
import { native } from '../native.js';
import type { OciHook } from './plan.js';
import type { ExecProcess } from './process.js';

export const DEFAULT_ROOT = '/run/capsule-runc';
/** The runtime-spec version capsule's state and features documents follow. */
export const OCI_VERSION = '1.2.0';

/** The spec's four, and runc's `paused` (a running container whose cgroup is frozen). */
export type OciStatus = 'creating' | 'created' | 'running' | 'stopped' | 'paused';

/** state.json: the spec's state (runtime.md "State") and capsule's own fields after it. */
export interface ContainerState {
  ociVersion: string;
  id: string;
  /** As last written; see liveStatus for the status a command reports. */
  status: OciStatus;
  /** Host pid of the container's PID 1 (capsule-init); 0 while creating. */
  pid: number;
  bundle: string;
  annotations: Record<string, string>;
  /** /proc/PID/stat field 22 of `pid` when it was created: a reused pid has another. */
  pidStartTime: string;
  /** The container's cgroup directories, absolute, one per hierarchy (v1) or one (v2). */
  cgroupPaths: string[];
  /** linux.cgroupsPath as used (relative to each hierarchy's mount point). */
  cgroupsPath: string;
  /** Where the freezer is: a v1 freezer directory, or the v2 directory; '' when none. */
  freezerPath: string;
  freezerVersion: 0 | 1 | 2;
  /** ISO 8601, as runc's `created`. */
  created: string;
  /** The uid of the user who created it (runc's `owner` in list shows the name). */
  owner: number;
  terminal: boolean;
  /** config.json had no `process`: created, but `start` refuses it. */
  noProcess?: boolean;
  hooks: { poststart: OciHook[]; poststop: OciHook[] };
  /**
   * A container without a mount namespace: its mounts are under this bind of the rootfs, in the
   * host's mount namespace (mount id as /proc/self/mountinfo's first field); delete detaches it.
   */
  hostMounts?: { path: string; mntId: number };
  /** What `exec` needs of the container: its process (the base exec's flags change), root and filter. */
  exec: {
    process: ExecProcess;
    rootfs: string;
    /** The container has a user namespace of its own: exec joins it too. */
    userns: boolean;
    /** linux.seccomp, normalized, as encodeProfile wrote it (its bigints as strings); null: none. */
    seccomp: string | null;
    hostUid?: number;
    hostGid?: number;
    rootless?: boolean;
  };
}

/** The state as the runtime spec defines it (what `state ID` prints and hooks read). */
export function specState(s: ContainerState, status: OciStatus): object {
  const out: Record<string, unknown> = { ociVersion: s.ociVersion, id: s.id, status, bundle: s.bundle };
  if (status !== 'stopped') out.pid = s.pid;
  else out.pid = 0;
  out.annotations = s.annotations;
  return out;
}

const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** runc's container id rule; also keeps an id from being a path (no '/', no '..'). */
export function validateId(id: string): void {
  if (!ID.test(id) || id.length > 1024) {
    throw new CapsuleError(
      `invalid container id ${JSON.stringify(id)}: an id starts with a letter or digit and has only letters, digits, '_', '.' and '-'`,
    );
  }
}

export function containerDir(root: string, id: string): string {
  validateId(id);
  return join(root, id);
}

function statePath(root: string, id: string): string {
  return join(containerDir(root, id), 'state.json');
}

/** The container's saved state, or null when the id has no state.json (never created, or creating). */
export function readState(root: string, id: string): ContainerState | null {
  let text: string;
  try {
    text = readFileSync(statePath(root, id), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new CapsuleError(`cannot read the state of container ${id}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as ContainerState;
  } catch (e) {
    throw new CapsuleError(
      `the state of container ${id} (${statePath(root, id)}) is not JSON: ${(e as Error).message}`,
    );
  }
}

/** Write state.json atomically: a temp file in the same directory, fsync'd, renamed over it. */
export function writeState(root: string, s: ContainerState): void {
  const final = statePath(root, s.id);
  writeAtomically(final, JSON.stringify(s) + '\n');
}

/**
 * Write `text` to `path` so that no reader sees part of it: a temp file beside it,
 * then rename(2) (atomic within a filesystem). Used for state.json and --pid-file, which
 * an engine may read the moment it appears.
 */
export function writeAtomically(path: string, text: string, mode = 0o644): void {
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** The ids with a directory under root (some may be creating, without state.json yet). */
export function listIds(root: string): string[] {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new CapsuleError(`cannot list --root ${root}: ${(e as Error).message}`);
  }
  return names.filter((n) => ID.test(n)).sort();
}

/** proc(5) /proc/PID/stat: state (field 3) and start time (field 22), or null when the pid is gone. */
export function procStat(pid: number): { state: string; startTime: string } | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  /* The command name (field 2) is in parentheses and may hold spaces or ')': split after the last ')'. */
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0] ?? '', startTime: fields[19] ?? '' };
}

/** Is `pid` still the process that had `startTime`, and not a zombie (Z) or dead (X)? */
export function sameLiveProcess(pid: number, startTime: string): boolean {
  if (pid <= 0) return false;
  const st = procStat(pid);
  return st !== null && st.startTime === startTime && st.state !== 'Z' && st.state !== 'X';
}

/** The status a command reports: the saved one while the container's PID 1 lives, else stopped. */
export function liveStatus(s: ContainerState): OciStatus {
  if (s.status === 'stopped') return 'stopped';
  if (s.status === 'creating')
    return s.pid > 0 && sameLiveProcess(s.pid, s.pidStartTime) ? 'creating' : 'stopped';
  return sameLiveProcess(s.pid, s.pidStartTime) ? s.status : 'stopped';
}

/** A held lock on one container id; release() ends it (a process that dies drops it too). */
export interface ContainerLock {
  release(): void;
}

/** How long a command waits for another one on the same id to finish, in ms. */
export const LOCK_WAIT_MS = 60_000;

/**
 * Lock the container `id` for one command. The lock is `<root>/<id>/0` held under
 * flock(2), taken with the addon's host-id lease (claimHostId on a range of one): flock is
 * dropped by the kernel when its holder dies, so a crashed command never leaves a stale
 * lock to break, and claimHostId checks that the inode it locked is still the one the path
 * names (a holder that unlinked it meanwhile: delete). Waits while another command holds it.
 *
 * With `create`, the directory is made first (EEXIST: the id is taken); without, a missing
 * directory means no such container.
 */
export async function lockContainer(root: string, id: string, create: boolean): Promise<ContainerLock> {
  const dir = containerDir(root, id);
  if (create) {
    mkdirSync(root, { recursive: true, mode: 0o711 });
    try {
      mkdirSync(dir, { mode: 0o711 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST')
        throw new CapsuleError(`container with id ${id} already exists`);
      throw new CapsuleError(`cannot create the state directory ${dir}: ${(e as Error).message}`);
    }
  }
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    let lease: { id: number; fd: number };
    try {
      lease = native().claimHostId(dir, 0, 1, 0);
    } catch (e) {
      const errno = (e as { errno?: number }).errno;
      if (errno === 2 /* ENOENT: no directory, no container */) throw notFound(id);
      if (errno !== 11 /* EAGAIN: held by another command */) {
        throw new CapsuleError(`cannot lock container ${id} (${dir}/0): ${(e as Error).message}`);
      }
      if (Date.now() >= deadline) {
        throw new CapsuleError(
          `container ${id} is locked by another command for more than ${LOCK_WAIT_MS / 1000} s`,
        );
      }
      await new Promise((r) => setTimeout(r, delay));
      continue;
    }
    let released = false;
    return {
      release() {
        if (released) return;
        released = true;
        /* Unlinked while held (claimHostId's inode check makes that safe), then closed. */
        native().releaseHostId(dir, lease.id, lease.fd);
      },
    };
  }
}

export function notFound(id: string): CapsuleError {
  return new CapsuleError(`container ${id} does not exist`);
}

/**
 * Remove the container's directory, with its lock held by the caller: state.json first (from
 * then on the id does not exist for readers), then the lock file, then the directory. A
 * command waiting for the lock then finds no directory: no such container.
 */
export function removeContainerDir(root: string, id: string, lock: ContainerLock): void {
  const dir = containerDir(root, id);
  rmSync(join(dir, 'state.json'), { force: true });
  for (const n of safeReaddir(dir)) if (n.endsWith('.tmp')) rmSync(join(dir, n), { force: true });
  lock.release();
  try {
    rmdirSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    /* ENOTEMPTY: a waiter made the lock file again between our unlink and rmdir; it sees no state. */
    if (code !== 'ENOENT' && code !== 'ENOTEMPTY') throw e;
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * Lock an existing container and read its state. A directory without state.json is a create
 * that died before writing it, or one that a delete just emptied: it is removed (under the
 * lock) and the id does not exist.
 */
export async function lockExisting(
  root: string,
  id: string,
): Promise<{ lock: ContainerLock; state: ContainerState }> {
  const lock = await lockContainer(root, id, false);
  let state: ContainerState | null;
  try {
    state = readState(root, id);
  } catch (e) {
    lock.release();
    throw e;
  }
  if (!state) {
    removeContainerDir(root, id, lock);
    throw notFound(id);
  }
  return { lock, state };
}
