/**
 * Loads the addon (build/Release/capsule.node) and seals capsule-init into it.
 * Like node-pty's loader, a failure lists every path that was tried.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { CapsuleError } from './errors.js';

/** The options object the addon takes: validated and complete (see options.ts). */
export interface NativeOptions {
  rootfs: string;
  /** capsule-init's argv: `['capsule-init', program, ...args]`. */
  argv: string[];
  env: string[];
  cwd: string;
  hostname: string;
  uid: number;
  gid: number;
  /** The host ids uid and gid map to in a user namespace of the sandbox's own (src/ids.ts); absent: none. */
  hostUid?: number;
  hostGid?: number;
  /** With hostUid: a user namespace already made for it (src/ids.ts), so make_userns is skipped. */
  usernsFd?: number;
  writableRoot: boolean;
  /** The root as an overlay with a writable tmpfs upper layer of overlaySizeBytes. */
  overlay?: boolean;
  overlaySizeBytes?: number;
  /** A tmpfs owned by the sandbox's uid and gid at this path; '' or absent: none. */
  box?: string;
  boxSizeBytes?: number;
  /** Mount points the rootfs lacks, parents first: made in an overlay of the root, or in the box. */
  mountPoints?: { path: string; dir: boolean }[];
  tmpSizeBytes: number;
  devPts: boolean;
  devShm: boolean;
  tmpNoexec: boolean;
  sys: boolean;
  devShmSizeBytes: number;
  devNodes: { path: string; major: number; minor: number; mode: number }[];
  /**
   * Host devices to mknod after devNodes (native/devices.cc); mode: permission bits. Rootless,
   * the node at hostPath is bound in instead (a user namespace cannot mknod).
   */
  devices: {
    target: string;
    type: 'c' | 'b';
    major: number;
    minor: number;
    mode: number;
    hostPath?: string;
  }[];
  /** option: where the bind came from (`binds[0]`), for errors. */
  binds: { source: string; target: string; readOnly: boolean; option?: string }[];
  cgroupFds: number[];
  /** A cgroup v2 directory to be born in (clone3 CLONE_INTO_CGROUP); -1 or absent: none. */
  cgroupDirFd?: number;
  rlimits: { resource: number; soft: number; hard: number }[];
  /** Parent fds for the child's 0, 1, 2; -1 asks the addon for a pipe. */
  stdio: [number, number, number];
  /** Sealed memfd of the compiled seccomp filter (shared by every run with that profile), -1 for none. */
  seccompFd: number;
  /** Made ahead of time: capsule-init waits for its run (sendRun); argv, env and stdio are not used (src/ahead.ts). */
  prepared?: boolean;
  /** Record each child step's time (--explain). */
  trace: boolean;
  /**
   * A terminal of the program's own (native/tty.cc): stdio is a pty slave from the private
   * devpts (devPts must be true), argv carries '--tty' after 'capsule-init'; rows and cols
   * are its first window size (0: unset). Absent: none.
   */
  terminal?: { rows: number; cols: number };
  /**
   * A session's command (src/session.ts): join the box whose PID 1 is the spawn `{ pid, id }`
   * (its namespaces, and its user namespace when `userns`) instead of building a sandbox.
   */
  join?: BoxTarget & { userns: boolean };
  /** The exit watcher does not keep the event loop alive (a session's box, which only waits). */
  unref?: boolean;
  /** No CAP_SYS_ADMIN: clone makes a user namespace with the others, mapping uid and gid to the caller's (src/rootless.ts). */
  rootless?: boolean;
  /**
   * Rootless with a subordinate id range: newuidmap/newgidmap (their absolute paths) write
   * these maps for the child instead of its own single-id ones (native/rootless.cc).
   */
  idMap?: NativeIdMap;
  /** OCI runtime mode: see NativeOci. */
  oci?: NativeOci;
}

/** One line of a uid_map or gid_map: ids inside..inside+count-1 are outside..outside+count-1 on the host. */
export interface NativeIdRange {
  inside: number;
  outside: number;
  count: number;
}

/** The maps of a rootless sandbox with a subordinate range, and the setuid tools that write them. */
export interface NativeIdMap {
  newuidmap: string;
  newgidmap: string;
  uids: NativeIdRange[];
  gids: NativeIdRange[];
}

/**
 * OCI runtime mode (src/oci): a container as an OCI bundle's config.json describes it, in
 * place of capsule's own sandbox layout. With `oci`, NativeOptions' own mount fields
 * (writableRoot, overlay, box, mountPoints, tmp*, dev*, sys, binds) are not used: the mounts
 * are exactly `mounts`, in order. argv is `['capsule-oci', program, ...args]`; a program
 * without a '/' is looked up in the PATH of `env` inside the container, before create
 * returns (ENOENT fails create, as runc's does). uid/gid are process.user's.
 *
 * spawn() resolves once the container is created: every step done, capsule-init waiting
 * for startSignal before it forks the program (`start`); any other signal from outside ends
 * it then (exit code 128 + signal), SIGKILL as always. The container outlives the calling process: no parent-death
 * signal, no status pipe read; capsule-init's exit code is the program's (128 + signal).
 */
export interface NativeOci {
  /**
   * capsule-init waits, before it forks the program, for Addon.startSignal sent from outside the
   * container (`start`: pidfd_send_signal to its PID 1); false: start at once (`run`).
   */
  waitForStart: boolean;
  /**
   * The namespaces the container gets: a new one (fd -1) or one to join (an open descriptor of
   * a namespace file, e.g. /proc/PID/ns/net or a bind-mounted one: pods share a network
   * namespace so). A type not listed is the caller's own (the host's).
   */
  namespaces: { type: 'pid' | 'network' | 'mount' | 'ipc' | 'uts' | 'cgroup' | 'user'; fd: number }[];
  /** With a new user namespace: linux.uidMappings / gidMappings. */
  uidMappings: { containerID: number; hostID: number; size: number }[];
  gidMappings: { containerID: number; hostID: number; size: number }[];
  /** root.readonly */
  rootReadonly: boolean;
  /** linux.rootfsPropagation as MS_* flags (MS_PRIVATE | MS_REC by default, as runc). */
  rootPropagation: number;
  /** mounts, in order, each resolved inside the rootfs (symlinks stay inside it), missing mount points made. */
  mounts: NativeOciMount[];
  /** linux.maskedPaths: /dev/null over a file, an empty read-only tmpfs over a directory; absent paths skipped. */
  maskedPaths: string[];
  /** linux.readonlyPaths: a read-only bind of themselves; absent paths skipped. */
  readonlyPaths: string[];
  /** linux.sysctl, written under /proc/sys in the container's namespaces. */
  sysctl: { key: string; value: string }[];
  /** linux.devices: made with mknod in the container's /dev (after the mounts). type 'u' is 'c'. */
  devices: {
    path: string;
    type: 'c' | 'b' | 'u' | 'p';
    major: number;
    minor: number;
    fileMode: number;
    uid: number;
    gid: number;
  }[];
  /** process.user.additionalGids; umask: -1 for the default (0022). */
  additionalGids: number[];
  umask: number;
  /** process.capabilities as capability numbers; ambient must be in permitted and inheritable. */
  capabilities: {
    bounding: number[];
    effective: number[];
    permitted: number[];
    inheritable: number[];
    ambient: number[];
  };
  noNewPrivileges: boolean;
  /** Set the hostname (only with a new UTS namespace); '' leaves it. */
  hostname: string;
  /**
   * No mount namespace in `namespaces`: the container's mounts are made in the caller's (the
   * host's), under a private bind of the rootfs that `delete` detaches (Addon.detachMount), and
   * its root is a chroot, not pivot_root. The addon refuses a config without a mount namespace
   * unless this is true.
   */
  hostMounts?: boolean;
  /** exec into a hostMounts container: an open descriptor of its root (/proc/PID/root), chrooted into. */
  joinRootFd?: number;
  /**
   * The hook point before pivot_root (native/oci.cc oci_hooks): the child writes its host pid
   * and a newline on writeFd, then reads from readFd a 4-byte length (host order) and that
   * many bytes of state JSON, which createContainerHooks get on stdin; end of file there stops
   * create (a prestart or createRuntime hook failed). closeFds: the caller's ends of those
   * pipes, which the child closes first so that the caller's close is what it sees.
   */
  hookSync?: { readFd: number; writeFd: number; closeFds: number[] };
  /** hooks.createContainer, run by the child at the hook point; timeout in seconds, 0 for none. */
  createContainerHooks?: { path: string; args: string[]; env: string[]; timeout: number }[];
}
/*
 * `exec` into a container: NativeOptions.join names the container's PID 1 (a checked pidfd)
 * and `oci` is given as for create, with waitForStart false and namespaces, mounts, maskedPaths,
 * readonlyPaths, sysctl and devices empty (the container's are used as they are). argv is
 * `['capsule-oci-join', program, ...args]`; capsule-oci-join forwards every signal sent to it
 * to the program and exits with its code: the pid engines wait on (`exec --pid-file`).
 */

/** One entry of config.json's mounts, as native/oci.cc takes it. */
export interface NativeOciMount {
  destination: string;
  /** 'bind' (with `source` a host path, absolute), or a filesystem type: proc, tmpfs, devpts, mqueue, sysfs, cgroup, ... */
  type: string;
  source: string;
  /** rbind */
  recursive: boolean;
  /** MOUNT_ATTR_* to set (ro, nosuid, nodev, noexec, noatime, ...), applied before the mount is attached. */
  attrs: number;
  /** MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE (| MS_REC), 0 for none: applied once attached. */
  propagation: number;
  /** The filesystem's options as fsconfig(2) key/value pairs (value null: a flag). Not for 'bind'. */
  data: [string, string | null][];
}

/**
 * A session's box, by its PID 1: a spawn of this process (`{ pid, id }`, as kill() takes),
 * or a pidfd the caller opened and checked, for a box another process owns.
 */
export type BoxTarget = { pid: number; id: number } | { pid: number; pidfd: number };

/** One operation of the mount phase, as native/mounts.cc planned it. */
export interface NativeOp {
  step: string;
  kind:
    | 'mount'
    | 'mkfile'
    | 'mkdir'
    | 'symlink'
    | 'setattr'
    | 'mknod'
    | 'umask'
    | 'bind'
    | 'fsmount'
    | 'overlay'
    | 'mkpoint';
  source: string | null;
  target: string | null;
  fstype: string | null;
  data: string | null;
  flags: number;
  attrSet: number;
  recursive: boolean;
}

/** The child's step times (CLOCK_MONOTONIC ns, the clock of process.hrtime). */
export interface NativeTrace {
  cloneStartNs: number;
  cloneEndNs: number;
  /** Around make_userns (CLOCK_MONOTONIC ns); 0 when the sandbox had no user namespace. */
  usernsStartNs?: number;
  usernsEndNs?: number;
  /** What check_parent polled: the cloning thread's pidfd (PIDFD_THREAD, Linux 6.9+) or the process's. */
  parentPidfd?: 'thread' | 'process';
  /** op: index into plan()'s operations, or -1 for a step that is not one. */
  events: { step: string; op: number; ns: number }[];
}

export interface NativeStepError {
  step: string;
  syscall: string;
  errno: number;
  detail: string;
  /** With trace: true, the child's steps as far as it got. */
  trace?: NativeTrace;
}

export interface NativeExit {
  /** How capsule-init ended: `exited` with initStatus as its code, or `killed` by signal initStatus. */
  initCode: 'exited' | 'killed';
  initStatus: number;
  /** capsule-init's report; null when it was killed before it could write one. */
  report: {
    waitStatus: number;
    userCpuUs: number;
    systemCpuUs: number;
    maxRssKiB: number;
    /** A call the seccomp filter kills for, as the kernel reported it to capsule-init; null when none. */
    violation: NativeViolation | null;
    /** CLOCK_MONOTONIC ns when capsule-init began and when it forked the program. */
    startedNs: number;
    forkedNs: number;
  } | null;
  initUserCpuUs: number;
  initSystemCpuUs: number;
  /** A sandbox made ahead: capsule-init read its run (before forking the program). */
  received: boolean;
  /** A step that failed after capsule-init started (fork_program, load_seccomp, exec). */
  error: NativeStepError | null;
}

/** A forbidden system call: its number and AUDIT_ARCH_* ABI, named by libseccomp ('' when unknown). */
export interface NativeViolation {
  number: number;
  arch: number;
  syscall: string;
}

/** The profile as native/seccomp.cc takes it: see src/seccomp/profile.ts. */
export interface NativeSeccompProfile {
  defaultAction: NativeSeccompAction;
  badArchAction: NativeSeccompAction;
  rules: {
    syscall: string;
    action: NativeSeccompAction;
    args: { index: number; op: string; value: bigint; valueTwo: bigint }[];
  }[];
  /**
   * The names the profile's rules call, for runc's ENOSYS stub: a call whose
   * number is above every one of them on this ABI gets ENOSYS. Empty: no stub.
   */
  enosysAfter: string[];
  /** Also return libseccomp's pseudo-filter-code text. */
  pfc: boolean;
}

export interface NativeSeccompAction {
  kind: 'allow' | 'errno' | 'kill_process' | 'kill_thread' | 'trap' | 'trace' | 'log' | 'notify';
  value: number;
}

export interface Addon {
  configure(o: { initPath: string }): void;
  /**
   * Start the network-namespace pool's thread now instead of at the first spawn
   * (native/netns_pool.h): the first sandbox of a process can then join a namespace made
   * while its launch was prepared. Does nothing when the pool is off or already started.
   */
  startNetnsPool(): void;
  /** Rejects with a NativeStepError when a step before exec_init fails. */
  spawn(
    o: NativeOptions,
    onExit: (e: NativeExit) => void,
  ): Promise<{
    pid: number;
    id: number;
    /**
     * OCI with a PID namespace joined by path: the container's process, which capsule-init
     * (`pid`, exiting at once) forked into that namespace and left to the caller's subreaper.
     */
    containerPid?: number;
    stdio: [number, number, number];
    /** With `prepared`: capsule's end of the socketpair the run is sent on (sendRun). */
    go?: number;
    /** With `terminal`: two descriptors of the pty's master (close-on-exec), to read and to write; the writer is -1 if it could not be duplicated. */
    terminal?: [number, number];
    trace?: NativeTrace;
  }>;
  /** TIOCSWINSZ on a terminal's master; throws an Error with `errno`. */
  setWindowSize(fd: number, rows: number, cols: number): void;
  /** TIOCGWINSZ: the window size of the terminal on `fd`, null when it is not one. */
  windowSize(fd: number): { rows: number; cols: number } | null;
  /** The terminal on `fd` in raw mode (cfmakeraw(3)); returns its former settings. Throws with `errno`. */
  makeRaw(fd: number): Buffer;
  /** Put back what makeRaw returned (tcsetattr TCSADRAIN). Throws with `errno`. */
  restoreMode(fd: number, saved: Buffer): void;
  /** The mount phase's operations for these options, without running anything. */
  plan(o: NativeOptions): NativeOp[];
  /**
   * Signal the run spawn() numbered `id` (its PID 1 is `pid`) through its own pidfd; false
   * once that run was reaped, even when its PID now belongs to another sandbox.
   */
  kill(pid: number, id: number, signal: number): boolean;
  /**
   * pipe2(2) with O_CLOEXEC: [read end, write end], blocking, owned by the caller. Throws
   * an Error with `errno` and `syscall`.
   */
  pipe(): [number, number];
  /**
   * Open `path` inside the box `target`, resolved below its root
   * by descriptor with no symlink followed (RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS |
   * RESOLVE_NO_MAGICLINKS). Returns the fd; throws an Error with `errno` and `syscall`.
   */
  openInBox(target: BoxTarget, path: string, flags: number, mode: number): number;
  /**
   * Rootless copyIn: fchown(2) `fd` to `uid` and `gid` as the box `target` sees them, from a
   * child inside the box's user namespace. Throws an Error with `errno` and `syscall`.
   */
  chownInBox(target: BoxTarget, fd: number, uid: number, gid: number): void;
  /** pidfd_open(2) (close-on-exec); throws an Error with `errno`. The caller checks it names the right process. */
  pidfdOpen(pid: number): number;
  /** The process is ending (an 'exit' listener): a sandbox reaped from now on calls no JavaScript. */
  exiting(): void;
  steps(): { name: string; syscall: string; man: string; why: string }[];
  strerror(errno: number): string;
  terminateSignal: number;
  /** The signal that releases a created OCI container (NativeOci.waitForStart). */
  startSignal: number;
  /** Compile with libseccomp into a sealed memfd (owned by the caller); throws with libseccomp's reason. */
  compileSeccomp(p: NativeSeccompProfile): {
    fd: number;
    instructions: number;
    /** Calls of another architecture, not filtered: this one does not have them. */
    ignored: string[];
    /** Names libseccomp does not know, in rules that allow: left out (the default action applies). */
    unknown: string[];
    pfc: string;
  };
  /** A filter compiled earlier (struct sock_filter[] bytes) into a sealed memfd, owned by the caller. */
  sealFilter(bytes: Uint8Array): number;
  /**
   * Send `fd` over the unix socket at `socketPath` (SCM_RIGHTS), as runc hands a terminal's
   * master to `--console-socket`. Throws an Error with `errno` and `syscall`.
   */
  sendFd(socketPath: string, fd: number): void;
  /**
   * Start a sandbox made ahead: the run's message (lifecycle.ts runMessage) and its stdin,
   * stdout and stderr over SCM_RIGHTS on the descriptor spawn() returned as `go`. Throws
   * an Error with `errno` (EPIPE: capsule-init is gone).
   */
  sendRun(goFd: number, message: Buffer, stdio: [number, number, number]): void;
  /** Whether that spawn's exit watcher keeps the event loop alive; false once it is reaped. */
  setRef(pid: number, id: number, ref: boolean): boolean;
  /** The most bytes of argv and env strings a run made ahead can be sent (CAPSULE_GO_MAX). */
  runMessageMax: number;
  /** The mount the directory `path` is on (statx STATX_MNT_ID, no symlink followed); throws with `errno`. */
  mountAt(path: string): { mntId: number; mountRoot: boolean };
  /**
   * umount2(MNT_DETACH) of the mount at `path` if it is mount `mntId` ('detached'); 'gone' when
   * no mount has that id any more; 'covered' when another mount is on top of it (nothing done).
   */
  detachMount(path: string, mntId: number): 'detached' | 'gone' | 'covered';
  /** libseccomp's run-time version, "major.minor.micro". */
  libseccompVersion: string;
  syscallName(nr: number, auditArch: number): string;
  /**
   * Attach a BPF device program allowing exactly `rules` to a cgroup v2 directory (an
   * O_DIRECTORY fd), replacing any; null detaches it. Throws an Error with `errno`.
   */
  /**
   * Lease a host id from [first, first + count), trying from first + start: a file
   * dir/ID held under flock(2) by the returned fd. Throws an Error with `errno` (EAGAIN: all in use).
   */
  claimHostId(dir: string, first: number, count: number, start: number): { id: number; fd: number };
  /** This process's hard limit of an RLIMIT_* resource (getrlimit(2)); 2^64 for unlimited, -1 on error. */
  hardLimit(resource: number): number;
  /** fcntl(fd, F_GETFL): status flags and access mode (O_PATH included), or -1 when fd is not open. */
  fdStatusFlags(fd: number): number;
  /** Unlink dir/ID and close fd: the lease ends. */
  releaseHostId(dir: string, id: number, fd: number): void;
  /**
   * A host id of [first, first + count) leased ahead, with a user namespace made for it that
   * maps `uid` and `gid` to it (native/userns_pool.h), or null: lease and make them inline.
   * The caller owns both descriptors; releaseHostId ends the lease.
   */
  takeHostIds(
    dir: string,
    first: number,
    count: number,
    uid: number,
    gid: number,
  ): { id: number; fd: number; userns: number } | null;
  /** The descriptors the user-namespace pool holds now. */
  hostIdPoolFds(): number[];
  /**
   * End what the user-namespace pool holds; `stop`: make no more (the process is exiting),
   * else nothing until the next lease (a run ran out of descriptors).
   */
  drainHostIdPool(stop: boolean): void;
  /** Remove the lease files no live lease holds (their process died). */
  sweepHostIds(dir: string): void;
  setDeviceProgram(
    cgroupDirFd: number,
    rules: { type: 'c' | 'b'; major: number; minor: number; access: string }[] | null,
  ): void;
}

let knownRoot: string | undefined;

/**
 * Where the package is, for a copy of this code that cannot tell from its own URL: the
 * CLI's start-up snapshot (src/cli/snapshot.ts), whose code was loaded at build time.
 */
export function setPackageRoot(dir: string): void {
  knownRoot = dir;
}

/** The package root: the nearest directory above this file with capsule's package.json. */
export function packageRoot(): string {
  knownRoot ??= findPackageRoot();
  return knownRoot;
}

function findPackageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'capsule') {
      return dir;
    }
    const up = dirname(dir);
    if (up === dir)
      throw new CapsuleError("cannot find capsule's package.json above " + fileURLToPath(import.meta.url));
    dir = up;
  }
}

let addon: Addon | undefined;

/** The addon, loaded and configured on first use. */
export function native(): Addon {
  if (addon) return addon;
  const root = packageRoot();
  const tried: string[] = [];
  for (const build of ['Release', 'Debug']) {
    const dir = join(root, 'build', build);
    const file = join(dir, 'capsule.node');
    tried.push(file);
    if (!existsSync(file)) continue;
    /* process.dlopen is what require() does for a .node file, without node:module. */
    const mod = { exports: {} as Addon };
    process.dlopen(mod, file);
    const loaded = mod.exports;
    loaded.configure({ initPath: join(dir, 'capsule-init') });
    addon = loaded;
    return loaded;
  }
  throw new CapsuleError(
    `capsule's native addon is not built (tried ${tried.join(', ')}): run \`npm run build\` in ${root}`,
  );
}
