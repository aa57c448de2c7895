/**
 * The OCI container lifecycle (runtime-spec runtime.md "Operations"): create, start,
 * state, kill, delete, and exec, ps, pause/resume, update over one container's state
 * (state.ts) and cgroup (cgroup.ts). The CLI (src/cli/oci.ts) only parses flags into these.
 *
 * A container outlives the command that made it: `create` spawns through the addon with
 * `unref` and no LaunchedSandbox (whose cgroup pool, watchdog and exit handlers belong to
 * the calling process and would end the container with it), writes the state and returns;
 * the process can exit, and the container's PID 1 waits for `start`'s signal. Every later
 * command finds it by pid *and* start time (a reused pid is never taken for it), and works
 * on it under the id's lock.
 */
import { closeSync, constants, existsSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { endianness, constants as osConstants } from 'node:os';
import { basename, isAbsolute, resolve } from 'node:path';

import { detectCgroups } from '../cgroup/detect.js';
import { CapsuleError } from '../errors.js';
import { setupError } from '../diagnose.js';
import { native, type NativeExit, type NativeOptions, type NativeStepError } from '../native.js';
import { compileCached } from '../seccomp/cache.js';
import type { SeccompProfile } from '../seccomp/profile.js';
import {
  cgroupPids,
  containerHierarchies,
  isFrozen,
  makeContainerCgroup,
  normalizeCgroupsPath,
  removeCgroupDirsSync,
  setFrozen,
  updateContainerCgroup,
} from './cgroup.js';
import { runHooks, runHooksWarning } from './hooks.js';
import { type CgroupView, expandCgroupMount } from './mounts.js';
import type { ContainerPlan, OciResources } from './plan.js';
import { type ExecProcess } from './process.js';
import {
  type ContainerLock,
  type ContainerState,
  listIds,
  liveStatus,
  lockContainer,
  lockExisting,
  type OciStatus,
  procStat,
  readState,
  removeContainerDir,
  sameLiveProcess,
  specState,
  writeAtomically,
  writeState,
} from './state.js';

export interface CreateOptions {
  /** --root */
  root: string;
  /** --pid-file: the host pid of the container's PID 1, written atomically once created. */
  pidFile?: string;
  /** --console-socket: where the terminal's master goes (process.terminal). */
  consoleSocket?: string;
  /** --no-pivot: accepted; capsule always uses pivot_root (it works on every root capsule supports). */
  noPivot?: boolean;
  /** `run`: called with the container's exit once it is reaped (run waits in the same process). */
  onExit?: (e: NativeExit) => void;
  /** Warnings (poststart/poststop hook failures): the CLI's log. */
  warn?: (message: string) => void;
}

/** A created container, as create leaves it. */
export interface Created {
  state: ContainerState;
  /** The addon's number for the spawn (kill(pid, id, signal) in this process). */
  spawnId: number;
}

/** linux.seccomp in state.json: JSON has no bigint, so argument values are strings there. */
export function encodeProfile(p: SeccompProfile | null): string | null {
  return p === null
    ? null
    : JSON.stringify(p, (_k, v: unknown) => (typeof v === 'bigint' ? { $bigint: v.toString() } : v));
}

export function decodeProfile(s: string | null): SeccompProfile | null {
  if (s === null) return null;
  return JSON.parse(s, (_k, v: unknown) =>
    typeof v === 'object' && v !== null && '$bigint' in v ? BigInt((v as { $bigint: string }).$bigint) : v,
  ) as SeccompProfile;
}

/** A pid file, as runc writes it: the number, no newline, renamed into place. */
export function writePidFile(path: string, pid: number): void {
  writeAtomically(resolve(path), String(pid));
}

function exitCode(e: NativeExit): number {
  return e.initCode === 'exited' ? e.initStatus : 128 + e.initStatus;
}
export { exitCode as nativeExitCode };

/**
 * create: every setup step done, the program not yet started (runtime.md "create"). On any
 * failure the container is killed and everything made is removed: the id is free again.
 */
export async function createContainer(id: string, plan: ContainerPlan, o: CreateOptions): Promise<Created> {
  if (plan.terminal && !o.consoleSocket) {
    throw new CapsuleError(
      'process.terminal is true but no --console-socket was given: the terminal needs somewhere to go',
    );
  }
  if (o.consoleSocket && !plan.terminal) {
    throw new CapsuleError('--console-socket was given but process.terminal is false in config.json');
  }
  if (plan.hooks.startContainer.length > 0) {
    throw new CapsuleError(
      "hooks.startContainer is not supported by capsule (a hook run by the container's own process at start is not implemented)",
    );
  }
  if (typeof native().startSignal !== 'number') {
    throw new CapsuleError(
      "this build of capsule's addon has no OCI mode (no startSignal): rebuild with `npm run build`",
    );
  }
  for (const w of plan.warnings) o.warn?.(w);
  const lock = await lockContainer(o.root, id, true);
  const cleanup: (() => void)[] = [];
  let cgroupPaths: string[] = [];
  let spawned: { pid: number; id: number } | null = null;
  let containerPid = 0;
  /* Without a mount namespace: the mount root.path is on before create, to tell the bind create makes. */
  const hostMounts = plan.native.oci.hostMounts === true;
  let rootfsMountBefore = -1;
  try {
    if (hostMounts) rootfsMountBefore = mountAt(plan.native.rootfs, 'root.path').mntId;
    const cgroupsPath = normalizeCgroupsPath(plan.cgroupsPath, id);
    const cg = makeContainerCgroup(cgroupsPath, plan.resources);
    cgroupPaths = cg.paths;
    cleanup.push(() => cg.closeFds());

    /* A `cgroup` mount shows the container's own cgroup, which exists only now (src/oci/mounts.ts). */
    const hierarchies = containerHierarchies(detectCgroups());
    const view: CgroupView =
      hierarchies.length === 1 && hierarchies[0]!.version === 2
        ? {
            mode: 'v2',
            dir: cg.paths[0]!,
            cgroupNamespace: plan.native.oci.namespaces.some((n) => n.type === 'cgroup'),
          }
        : {
            mode: 'v1',
            hierarchies: hierarchies.map((h, i) => ({ name: basename(h.mountPoint), dir: cg.paths[i]! })),
          };
    const oci = {
      ...plan.native.oci,
      waitForStart: true,
      namespaces: plan.native.oci.namespaces.map((n) => ({ ...n })),
      mounts: plan.native.oci.mounts.flatMap((m) => (m.type === 'cgroup' ? expandCgroupMount(m, view) : [m])),
    };
    for (const j of plan.joinNamespaces) {
      let fd: number;
      try {
        fd = openSync(j.path, constants.O_RDONLY);
      } catch (e) {
        throw new CapsuleError(
          `linux.namespaces: cannot open the ${j.type} namespace ${j.path}: ${(e as Error).message}`,
        );
      }
      cleanup.push(() => closeSync(fd));
      oci.namespaces[j.index]!.fd = fd;
    }
    /* The cache keeps the sealed memfd for the life of this process: it is not closed here. */
    const seccompFd = plan.seccomp ? compileCached(plan.seccomp, 'linux.seccomp').fd : -1;

    const options: NativeOptions = {
      ...plan.native,
      oci,
      stdio: [0, 1, 2],
      cgroupFds: cg.joinFds,
      cgroupDirFd: cg.dirFd,
      seccompFd,
      unref: true,
      ...(plan.terminal
        ? { terminal: { rows: plan.consoleSize?.height ?? 0, cols: plan.consoleSize?.width ?? 0 } }
        : {}),
    };
    /*
     * runtime.md "Lifecycle" steps 4-6: the prestart (deprecated), createRuntime and
     * createContainer hooks run once the environment is made, before pivot_root. The child
     * stops there (native/oci.cc oci_hooks) and sends its pid; the first two run here, in the
     * runtime's namespaces, and the child runs createContainer in the container's. Their state
     * says "created" (what runtime-tools' hooks_stdin checks, and crun sends).
     */
    const hookPoint =
      plan.hooks.prestart.length + plan.hooks.createRuntime.length + plan.hooks.createContainer.length > 0
        ? openHookPoint(oci, plan, cleanup)
        : null;
    let hookError: unknown = null;
    const spawning = native().spawn(options, (e) => o.onExit?.(e));
    if (hookPoint) {
      hookError = await hookPoint.run(spawning, (pid) =>
        JSON.stringify({
          ociVersion: plan.ociVersion,
          id,
          status: 'created',
          bundle: plan.bundle,
          pid,
          annotations: plan.annotations,
        }),
      );
    }
    const out = await spawning.catch((e: unknown) => {
      if (hookError) throw hookError;
      return rethrowStep(e, plan.native.rootfs, plan.native.argv[1] ?? '');
    });
    spawned = { pid: out.pid, id: out.id };
    /* A joined PID namespace: the container is capsule-init's child, left to our subreaper (init.c). */
    const pid = out.containerPid ?? out.pid;
    if (out.containerPid) containerPid = out.containerPid;
    const st = procStat(pid);
    if (!st) throw new CapsuleError(`the container's PID 1 (${pid}) ended during create`);

    if (out.terminal) {
      const [reader, writer] = out.terminal;
      try {
        native().sendFd(o.consoleSocket!, reader);
      } catch (e) {
        throw new CapsuleError(
          `--console-socket ${o.consoleSocket}: cannot send the terminal: ${(e as Error).message}`,
        );
      } finally {
        closeSync(reader);
        if (writer >= 0) closeSync(writer);
      }
    }
    if (plan.oomScoreAdj !== undefined) {
      try {
        writeFileSync(`/proc/${pid}/oom_score_adj`, String(plan.oomScoreAdj));
      } catch (e) {
        throw new CapsuleError(
          `process.oomScoreAdj: cannot write /proc/${pid}/oom_score_adj: ${(e as Error).message}`,
        );
      }
    }
    const userns = plan.native.oci.namespaces.some((n) => n.type === 'user');
    let hostMountsState: ContainerState['hostMounts'];
    if (hostMounts) {
      const now = mountAt(plan.native.rootfs, 'root.path');
      if (!now.mountRoot || now.mntId === rootfsMountBefore)
        throw new CapsuleError(
          `root.path ${plan.native.rootfs}: the container's bind of it is not there after create (another mount was made over it meanwhile?)`,
        );
      hostMountsState = { path: plan.native.rootfs, mntId: now.mntId };
    }
    const state: ContainerState = {
      ociVersion: plan.ociVersion,
      id,
      status: 'creating',
      pid: pid,
      bundle: plan.bundle,
      annotations: plan.annotations,
      pidStartTime: st.startTime,
      cgroupPaths: cg.paths,
      cgroupsPath,
      freezerPath: cg.freezerPath,
      freezerVersion: cg.freezerVersion,
      created: new Date().toISOString(),
      owner: process.getuid?.() ?? 0,
      ...(plan.hasProcess ? {} : { noProcess: true }),
      terminal: plan.terminal,
      hooks: { poststart: plan.hooks.poststart, poststop: plan.hooks.poststop },
      ...(hostMountsState ? { hostMounts: hostMountsState } : {}),
      exec: {
        process: planProcess(plan),
        rootfs: plan.native.rootfs,
        userns,
        seccomp: encodeProfile(plan.seccomp),
        ...(plan.native.hostUid !== undefined ? { hostUid: plan.native.hostUid } : {}),
        ...(plan.native.hostGid !== undefined ? { hostGid: plan.native.hostGid } : {}),
        ...(plan.native.rootless ? { rootless: true } : {}),
      },
    };
    state.status = 'created';
    writeState(o.root, state);
    if (o.pidFile) writePidFile(o.pidFile, pid);
    for (const f of cleanup.splice(0)) f();
    lock.release();
    return { state, spawnId: out.id };
  } catch (e) {
    if (spawned) native().kill(spawned.pid, spawned.id, 9);
    if (containerPid) {
      try {
        process.kill(
          containerPid,
          'SIGKILL',
        ); /* ours a moment ago, not yet reaped by anyone: create failed after */
      } catch {
        /* gone */
      }
    }
    for (const f of cleanup.splice(0)) {
      try {
        f();
      } catch {
        /* closing what was opened: nothing to report over the first error */
      }
    }
    /* Without a mount namespace the child's mounts are the host's: they go with the child's bind. */
    if (hostMounts && rootfsMountBefore >= 0) await detachRootfsBind(plan.native.rootfs, rootfsMountBefore);
    try {
      removeCgroupDirsSync(cgroupPaths);
    } finally {
      removeContainerDir(o.root, id, lock);
    }
    throw e;
  }
}

/**
 * The caller's side of the hook point (NativeOci.hookSync): two close-on-exec pipes, the
 * child's ends in `oci`, ours closed by `cleanup`. run() waits for the child's pid line (or
 * for the spawn to end first: it failed before the hook point), runs the prestart and
 * createRuntime hooks, and sends the state; on a hook's failure it closes the pipe instead,
 * which stops the child, and returns that failure for create to report.
 */
function openHookPoint(
  oci: NonNullable<NativeOptions['oci']>,
  plan: ContainerPlan,
  cleanup: (() => void)[],
): { run(spawning: Promise<unknown>, state: (pid: number) => string): Promise<unknown> } {
  const [fromChild, childWrites] = native().pipe();
  const [childReads, toChild] = native().pipe();
  let toChildOpen = true;
  let readerMade = false;
  const closeToChild = () => {
    if (toChildOpen) closeSync(toChild);
    toChildOpen = false;
  };
  cleanup.push(() => {
    closeSync(childWrites);
    closeSync(childReads);
    closeToChild();
    if (!readerMade) closeSync(fromChild);
  });
  oci.hookSync = { readFd: childReads, writeFd: childWrites, closeFds: [fromChild, toChild] };
  oci.createContainerHooks = plan.hooks.createContainer.map((h) => ({
    path: h.path,
    args: h.args,
    env: h.env,
    timeout: h.timeout ?? 0,
  }));
  return {
    async run(spawning, state) {
      readerMade = true;
      const reader = new Socket({ fd: fromChild, readable: true, writable: false });
      let line = '';
      const pid = await new Promise<number | null>((resolveLine) => {
        reader.on('data', (d: Buffer) => {
          line += d.toString();
          if (line.includes('\n')) resolveLine(Number(line.slice(0, line.indexOf('\n'))));
        });
        reader.on('error', () => resolveLine(null));
        reader.on('end', () => resolveLine(null));
        spawning.then(
          () => resolveLine(null),
          () => resolveLine(null),
        );
      });
      reader.destroy();
      if (pid === null || !Number.isInteger(pid) || pid <= 0) return null;
      const json = state(pid);
      try {
        await runHooks('prestart', plan.hooks.prestart, json);
        await runHooks('createRuntime', plan.hooks.createRuntime, json);
      } catch (e) {
        closeToChild();
        return e;
      }
      const body = Buffer.from(json);
      const head = Buffer.alloc(4);
      if (endianness() === 'LE') head.writeUInt32LE(body.length);
      else head.writeUInt32BE(body.length);
      try {
        writeSync(toChild, Buffer.concat([head, body]));
      } catch {
        /* the child is gone: the spawn's own error says why */
      }
      closeToChild();
      return null;
    },
  };
}

/** The mount `path` is on, or a CapsuleError naming `field`. */
function mountAt(path: string, field: string): { mntId: number; mountRoot: boolean } {
  try {
    return native().mountAt(path);
  } catch (e) {
    throw new CapsuleError(`${field} ${path}: cannot read which mount it is on: ${(e as Error).message}`);
  }
}

/**
 * After a failed create without a mount namespace: detach the bind of the rootfs the child made
 * (and every mount under it), if it made one: the mount on top of root.path is then another than
 * the one before create. The child is gone (killed, or failed and exited) before this runs.
 */
async function detachRootfsBind(rootfs: string, before: number): Promise<void> {
  try {
    const now = native().mountAt(rootfs);
    if (now.mountRoot && now.mntId !== before) native().detachMount(rootfs, now.mntId);
  } catch {
    /* nothing to detach, or nothing we can: the error that failed create is the one reported */
  }
}

/** The addon rejects with a plain step record ({step, syscall, errno, detail}): made a SetupError with its message. */
async function rethrowStep(e: unknown, rootfs: string, program: string): Promise<never> {
  if (typeof e === 'object' && e !== null && 'step' in e && 'errno' in e && !(e instanceof Error)) {
    throw await setupError(e as NativeStepError, { rootfs, rootfsArg: rootfs, program });
  }
  throw e;
}

/** The container's own process as exec's base (exec's flags change it; --process replaces it). */
function planProcess(plan: ContainerPlan): ExecProcess {
  const n = plan.native;
  return {
    args: n.argv.slice(1),
    env: n.env,
    cwd: n.cwd,
    uid: n.uid,
    gid: n.gid,
    additionalGids: n.oci.additionalGids,
    umask: n.oci.umask,
    terminal: false,
    capabilities: n.oci.capabilities,
    noNewPrivileges: n.oci.noNewPrivileges,
    rlimits: n.rlimits,
  };
}

/**
 * A pidfd for the container's PID 1, checked: opened first, then the start time compared,
 * so the descriptor names the container's process and not a later one with its pid
 * (pidfd_open(2): the pidfd keeps naming that process even after the pid is reused).
 */
export function openContainerPidfd(s: ContainerState): number {
  const fd = native().pidfdOpen(s.pid);
  if (!sameLiveProcess(s.pid, s.pidStartTime)) {
    closeSync(fd);
    throw new CapsuleError(`container ${s.id} is not running (its process ${s.pid} has ended)`);
  }
  return fd;
}

/**
 * Signal the container's PID 1. The addon signals through a pidfd only the processes it
 * spawned in this same process (kill(pid, id, signal)); another command's container gets
 * process.kill after openContainerPidfd checked the pid. The race left: the process dies,
 * is reaped and its pid reused between that check and kill(2), microseconds in a pid space
 * handed out cyclically; pidfd_send_signal(2) on the checked pidfd would close it.
 */
function signalPid1(s: ContainerState, signal: number): void {
  const fd = openContainerPidfd(s);
  try {
    process.kill(s.pid, signal);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH')
      throw new CapsuleError(`container ${s.id} is not running`);
    throw e;
  } finally {
    closeSync(fd);
  }
}

/** The status, with runc's `paused` for a running container whose cgroup is frozen. */
export function currentStatus(s: ContainerState): OciStatus {
  const st = liveStatus(s);
  if (st === 'running' && isFrozen(s.freezerPath, s.freezerVersion)) return 'paused';
  return st;
}

/** start: release a created container (runtime.md "start"), then its poststart hooks. */
export async function startContainer(
  root: string,
  id: string,
  warn: (m: string) => void = () => {},
): Promise<void> {
  const { lock, state } = await lockExisting(root, id);
  try {
    const status = currentStatus(state);
    if (status !== 'created')
      throw new CapsuleError(`cannot start a container that is ${status}: only a created one starts`);
    if (state.noProcess)
      throw new CapsuleError(
        `cannot start container ${id}: its config.json has no process (REQUIRED for start, runtime-spec config.md): delete it and create it again with one`,
      );
    signalPid1(state, native().startSignal);
    state.status = 'running';
    writeState(root, state);
    await runHooksWarning(
      'poststart',
      state.hooks.poststart,
      JSON.stringify(specState(state, 'running')),
      warn,
    );
  } finally {
    lock.release();
  }
}

/** state: the runtime-spec state JSON. */
export async function containerState(root: string, id: string): Promise<object> {
  const { lock, state } = await lockExisting(root, id);
  try {
    /* runc's state adds rootfs, created and owner to the spec's fields. */
    return {
      ...specState(state, currentStatus(state)),
      rootfs: state.exec.rootfs,
      created: state.created,
      owner: String(state.owner),
    };
  } finally {
    lock.release();
  }
}

/** kill: a signal to PID 1, or with `all` to every process of the container's cgroup. */
export async function killContainer(root: string, id: string, signal: number, all: boolean): Promise<void> {
  const { lock, state } = await lockExisting(root, id);
  try {
    const status = currentStatus(state);
    if (status === 'stopped') {
      /* runc: `kill --all` on a stopped container kills what may be left in its cgroup; without it, an error. */
      if (!all) throw new CapsuleError(`container ${id} is not running`);
    }
    if (all) {
      for (const pid of cgroupPids(state.cgroupPaths)) {
        try {
          process.kill(pid, signal);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
        }
      }
      /* A frozen cgroup holds its signals until thawed: SIGKILL must still end it. */
      if (signal === 9 && status === 'paused')
        await setFrozen(state.freezerPath, state.freezerVersion, false);
    } else signalPid1(state, signal);
  } finally {
    lock.release();
  }
}

/**
 * delete: a stopped (or created) container's resources go: its cgroup, its state; then the
 * poststop hooks. A running one needs `force` (SIGKILL to everything, then the same).
 */
export async function deleteContainer(
  root: string,
  id: string,
  force: boolean,
  warn: (m: string) => void = () => {},
): Promise<void> {
  let held: { lock: ContainerLock; state: ContainerState };
  try {
    held = await lockExisting(root, id);
  } catch (e) {
    /* runc: `delete --force` of an id that does not exist is success. */
    if (force && (e as Error).message === `container ${id} does not exist`) return;
    throw e;
  }
  const { lock, state } = held;
  try {
    const status = currentStatus(state);
    if ((status === 'running' || status === 'paused') && !force) {
      throw new CapsuleError(
        `cannot delete container ${id} that is ${status}: stop it first, or use --force`,
      );
    }
    if (status !== 'stopped') {
      try {
        signalPid1(state, 9);
      } catch {
        /* it ended meanwhile */
      }
    }
    /* Kills whatever is left (a thawed freezer first), waits until each directory is empty, rmdir. */
    removeCgroupDirsSync(state.cgroupPaths);
    await waitGone(state);
    if (state.hostMounts) {
      /* The container's mounts in the host's mount namespace: its bind of the rootfs, and all under it. */
      const { path, mntId } = state.hostMounts;
      let what: string;
      try {
        what = native().detachMount(path, mntId);
      } catch (e) {
        throw new CapsuleError(
          `cannot delete container ${id}: unmounting its root ${path}: ${(e as Error).message}; the container stays, run delete again once that is fixed`,
        );
      }
      if (what === 'covered')
        throw new CapsuleError(
          `cannot delete container ${id}: its mounts under ${path} are covered by another mount on ${path}: unmount that one first, then run delete again`,
        );
    }
    await runHooksWarning(
      'poststop',
      state.hooks.poststop,
      JSON.stringify(specState(state, 'stopped')),
      warn,
    );
    removeContainerDir(root, id, lock);
  } finally {
    lock.release();
  }
}

/** Wait until the container's PID 1 is no longer alive (dead or a zombie its new parent has yet to reap). */
async function waitGone(s: ContainerState, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (sameLiveProcess(s.pid, s.pidStartTime)) {
    if (Date.now() > deadline)
      throw new CapsuleError(
        `container ${s.id}'s process ${s.pid} did not end within ${timeoutMs / 1000} s of SIGKILL`,
      );
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** ps: the pids of the container's cgroup. */
export async function containerPids(root: string, id: string): Promise<number[]> {
  const { lock, state } = await lockExisting(root, id);
  try {
    return cgroupPids(state.cgroupPaths);
  } finally {
    lock.release();
  }
}

export interface ListEntry {
  ociVersion: string;
  id: string;
  pid: number;
  status: OciStatus;
  bundle: string;
  rootfs: string;
  created: string;
  owner: string;
  annotations: Record<string, string>;
}

/** list: every container under root (no lock: a snapshot, as runc's). */
export function listContainers(root: string): ListEntry[] {
  const out: ListEntry[] = [];
  for (const id of listIds(root)) {
    let s: ContainerState | null;
    try {
      s = readState(root, id);
    } catch {
      continue;
    }
    if (!s) continue;
    const status = currentStatus(s);
    out.push({
      ociVersion: s.ociVersion,
      id,
      pid: status === 'stopped' ? 0 : s.pid,
      status,
      bundle: s.bundle,
      rootfs: s.exec.rootfs,
      created: s.created,
      owner: String(s.owner),
      annotations: s.annotations,
    });
  }
  return out;
}

/** pause / resume: the freezer. */
export async function pauseContainer(root: string, id: string, frozen: boolean): Promise<void> {
  const { lock, state } = await lockExisting(root, id);
  try {
    const status = currentStatus(state);
    if (frozen && status !== 'running')
      throw new CapsuleError(`cannot pause container ${id} that is ${status}`);
    if (!frozen && status !== 'paused')
      throw new CapsuleError(`cannot resume container ${id} that is ${status}: it is not paused`);
    await setFrozen(state.freezerPath, state.freezerVersion, frozen);
  } finally {
    lock.release();
  }
}

/** update: new linux.resources for a created, running or paused container. */
export async function updateContainer(root: string, id: string, r: OciResources): Promise<void> {
  const { lock, state } = await lockExisting(root, id);
  try {
    if (currentStatus(state) === 'stopped')
      throw new CapsuleError(`cannot update container ${id} that is stopped`);
    updateContainerCgroup(state.cgroupPaths, r);
  } finally {
    lock.release();
  }
}

export interface ExecOptions {
  root: string;
  detach?: boolean;
  pidFile?: string;
  consoleSocket?: string;
}

/**
 * exec: a new process in a running (or created) container's namespaces and cgroup (the
 * addon's join; src/native.ts says what it takes). Resolves with the process's exit code,
 * or with null at once under `detach` (the process outlives this command).
 */
export async function execContainer(id: string, p: ExecProcess, o: ExecOptions): Promise<number | null> {
  if (p.terminal && !o.consoleSocket)
    throw new CapsuleError('exec --tty needs --console-socket: the terminal needs somewhere to go');
  const { lock, state } = await lockExisting(o.root, id);
  const fds: number[] = [];
  let exited: Promise<NativeExit>;
  let spawned: { pid: number; id: number } | null = null;
  try {
    const status = currentStatus(state);
    if (status !== 'running' && status !== 'created')
      throw new CapsuleError(`cannot exec in container ${id} that is ${status}`);
    const pidfd = openContainerPidfd(state);
    fds.push(pidfd);
    /*
     * A container without a mount namespace shares ours, and joining it lands at the host's
     * root: the child chroots into the container's (native/oci.cc), opened here through its
     * PID 1, which must still be that process once it is open.
     */
    let joinRootFd = -1;
    if (state.hostMounts) {
      joinRootFd = openSync(`/proc/${state.pid}/root`, constants.O_RDONLY | constants.O_DIRECTORY);
      fds.push(joinRootFd);
      if (!sameLiveProcess(state.pid, state.pidStartTime))
        throw new CapsuleError(`container ${id} is not running (its process ${state.pid} has ended)`);
    }
    const cgroupFds: number[] = [];
    let cgroupDirFd = -1;
    for (const dir of state.cgroupPaths) {
      /* Only a v2 directory has cgroup.controllers: it is joined at clone (CLONE_INTO_CGROUP), v1 by cgroup.procs. */
      if (existsSync(`${dir}/cgroup.controllers`)) {
        cgroupDirFd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
        fds.push(cgroupDirFd);
      } else {
        const fd = openSync(`${dir}/cgroup.procs`, constants.O_WRONLY);
        fds.push(fd);
        cgroupFds.push(fd);
      }
    }
    const seccomp = decodeProfile(state.exec.seccomp);
    const seccompFd = seccomp ? compileCached(seccomp, 'linux.seccomp').fd : -1;
    const options: NativeOptions = {
      rootfs: state.exec.rootfs,
      argv: ['capsule-oci-join', ...p.args],
      env: p.env,
      cwd: p.cwd,
      hostname: '',
      uid: p.uid,
      gid: p.gid,
      ...(state.exec.hostUid !== undefined ? { hostUid: state.exec.hostUid } : {}),
      ...(state.exec.hostGid !== undefined ? { hostGid: state.exec.hostGid } : {}),
      ...(state.exec.rootless ? { rootless: true } : {}),
      writableRoot: false,
      tmpSizeBytes: 0,
      devPts: p.terminal,
      devShm: false,
      tmpNoexec: false,
      sys: false,
      devShmSizeBytes: 0,
      devNodes: [],
      devices: [],
      binds: [],
      cgroupFds,
      cgroupDirFd,
      rlimits: p.rlimits,
      stdio: [0, 1, 2],
      seccompFd,
      trace: false,
      join: { pid: state.pid, pidfd, userns: state.exec.userns },
      unref: o.detach === true,
      ...(p.terminal
        ? { terminal: { rows: p.consoleSize?.height ?? 0, cols: p.consoleSize?.width ?? 0 } }
        : {}),
      oci: {
        waitForStart: false,
        namespaces: [],
        uidMappings: [],
        gidMappings: [],
        rootReadonly: false,
        rootPropagation: 0,
        mounts: [],
        maskedPaths: [],
        readonlyPaths: [],
        sysctl: [],
        devices: [],
        additionalGids: p.additionalGids,
        umask: p.umask,
        capabilities: p.capabilities,
        noNewPrivileges: p.noNewPrivileges,
        hostname: '',
        ...(joinRootFd >= 0 ? { joinRootFd } : {}),
      },
    };
    let onExit!: (e: NativeExit) => void;
    exited = new Promise<NativeExit>((r) => (onExit = r));
    const out = await native()
      .spawn(options, onExit)
      .catch((e: unknown) => rethrowStep(e, state.exec.rootfs, p.args[0] ?? ''));
    spawned = { pid: out.pid, id: out.id };
    if (out.terminal) {
      const [reader, writer] = out.terminal;
      try {
        native().sendFd(o.consoleSocket!, reader);
      } finally {
        closeSync(reader);
        if (writer >= 0) closeSync(writer);
      }
    }
    if (o.pidFile) writePidFile(o.pidFile, out.pid);
  } catch (e) {
    /* The process runs but its terminal or pid file could not be handed over: it must not stay. */
    if (spawned) native().kill(spawned.pid, spawned.id, 9);
    lock.release();
    throw e;
  } finally {
    for (const fd of fds) closeSync(fd);
  }
  lock.release();
  if (o.detach) return null;
  return exitCode(await exited);
}

/**
 * run: create, start, wait (foreground), then delete, as `runc run` without --detach. The
 * container is this process's child: its exit comes from the addon, and signals this
 * process gets go to it (`forward`).
 */
export async function runContainer(
  id: string,
  plan: ContainerPlan,
  o: CreateOptions & { detach?: boolean },
): Promise<number> {
  let onExit!: (e: NativeExit) => void;
  const exited = new Promise<NativeExit>((r) => (onExit = r));
  /* Keeps the event loop alive while the container runs (the addon's watcher is unref'd). */
  const keepAlive = o.detach ? undefined : setInterval(() => {}, 1 << 30);
  const created = await createContainer(id, plan, { ...o, onExit }).catch((e: unknown) => {
    clearInterval(keepAlive);
    throw e;
  });
  const forward = (sig: NodeJS.Signals) => native().kill(created.state.pid, created.spawnId, osSignal(sig));
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];
  try {
    await startContainer(o.root, id, o.warn);
    if (o.detach) return 0;
    for (const s of signals) process.on(s, forward);
    const e = await exited;
    return exitCode(e);
  } finally {
    for (const s of signals) process.off(s, forward);
    clearInterval(keepAlive);
    if (!o.detach) await deleteContainer(o.root, id, true, o.warn);
  }
}

function osSignal(sig: NodeJS.Signals): number {
  return (osConstants.signals as Record<string, number>)[sig] ?? 15;
}

/** The bundle directory of `--bundle` (default: the current directory), absolute. */
export function bundleDir(b: string | undefined): string {
  const dir = b ?? process.cwd();
  return isAbsolute(dir) ? dir : resolve(dir);
}

/** Read a file named on the command line, '-' for stdin. */
export function readInput(path: string): string {
  return readFileSync(path === '-' ? 0 : path, 'utf8');
}
