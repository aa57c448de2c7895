/**
 * Sessions: a sandbox that stays up, and many commands run in it one after another.
 *
 *   const box = await create({ rootfs, memoryLimitBytes: 256 << 20 });
 *   await box.exec(['/bin/sh', '-c', 'echo hi > /tmp/x']);
 *   const r = await box.exec(['/bin/cat', '/tmp/x']);        // r.stdout === 'hi\n'
 *   await box.destroy();
 *
 * How it is built (native/child.cc join_box, native/init.c):
 *
 *   create     a sandbox like run()'s, every setup step taken, whose PID 1 is capsule-init in
 *              its "hold" mode: no program, it only reaps. It holds the box's namespaces
 *              (mount, PID, network, IPC, UTS, user), and so its /tmp and any writable dir.
 *   exec       a new native spawn that joins those namespaces through the pidfd of the
 *              box's PID 1 (setns(2), one call), mounts nothing, enters a cgroup of its own
 *              with the box's limits, makes a cgroup namespace rooted there, sets the
 *              rlimits, joins the box's user namespace, drops identity as a fresh sandbox
 *              does and execs capsule-init in its "join" mode, which forks the program into
 *              the box's PID namespace and loads the seccomp filter. So each command has the
 *              isolation the box had (test/session.test.ts compares the probe's view), its
 *              own exit code, output, times and verdict (the RunResult of run()), and its
 *              own cgroup, which gives exact per-command CPU time and memory and is how
 *              whatever it leaves running is killed when it ends.
 *   copyIn/Out files moved by descriptor below the box's root (addon openInBox): no symlink
 *              the program planted is followed.
 *   reset      destroy and create again with the same options: the filesystem is the
 *              rootfs's again (a fresh /tmp), the box's PID and host id are new.
 *   destroy    SIGKILL the box's PID 1 (the kernel then kills every process in it), wait
 *              for it, release its cgroups and its host id.
 *
 * Limits are per command: memoryLimitBytes, pidsLimit and cpus bound each command (and what
 * it starts) in its own cgroup, not the sum of commands run at the same time. Files a
 * command writes to /tmp are charged to that command's cgroup.
 *
 * Without root (src/rootless.ts), the box is a rootless sandbox and a command enters its
 * user namespace first (join_box), maps nothing, and gets a cgroup of its own only where one
 * is delegated to the caller; without one its figures are rusage's (a lower bound) and what
 * it leaves in its own session is killed when it ends (endLeftovers). docs/internals.md,
 * "Sessions without root", has the details.
 *
 * Nothing outlives the Node process: the box's PID 1 is tied to it by PR_SET_PDEATHSIG
 * like every sandbox; on 'exit' every live box is killed and its host id released; and a
 * box whose last reference is dropped is destroyed by a FinalizationRegistry.
 */
import {
  closeSync,
  constants as fsConstants,
  fchownSync,
  fstatSync,
  ftruncateSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { constants as osConstants } from 'node:os';
import { isAbsolute } from 'node:path';

import { type SandboxCgroup } from './cgroup/index.js';
import { setupError } from './diagnose.js';
import { CapsuleError, ConfigError } from './errors.js';
import { acquireHostIds, type HostIdLease } from './ids.js';
import { rlimitPlan } from './limits.js';
import {
  type BoxTarget,
  native,
  type NativeExit,
  type NativeOptions,
  type NativeStepError,
} from './native.js';
import { resolveOptions, type ResolvedOptions, type RunOptions } from './options.js';
import { acquireCgroup, LaunchedSandbox, nativeOptions } from './lifecycle.js';
import { outOfDescriptors } from './out-of-fds.js';
import { checkRootless, delegatedCgroupManager, rootlessCgroupFailed, rootlessMode } from './rootless.js';
import { type RunResult, runResolved } from './run.js';
import { type SpawnedSandbox, type SpawnOptions, streamed } from './spawn.js';
import { childFds } from './stdio.js';

/** Everything run() takes except what belongs to one command. */
export type SessionOptions = Omit<
  RunOptions,
  | 'argv'
  | 'stdin'
  | 'stdout'
  | 'stderr'
  | 'encoding'
  | 'signal'
  | 'onSpawn'
  | 'onOutput'
  | 'explain'
  | 'terminal'
>;

/** What one command of a session may set; the rest is the box's (SessionOptions). */
export type ExecOptions = Pick<
  RunOptions,
  | 'stdin'
  | 'stdout'
  | 'stderr'
  | 'encoding'
  | 'env'
  | 'cwd'
  | 'signal'
  | 'onSpawn'
  | 'onOutput'
  | 'wallTimeLimitMs'
  | 'cpuTimeLimitMs'
  | 'outputLimitBytes'
>;

/**
 * What box.spawn() takes: exec()'s options with spawn()'s stdio (each defaults to 'pipe', a
 * stream), no onOutput or encoding (read the streams).
 */
export type BoxSpawnOptions = Omit<ExecOptions, 'stdin' | 'stdout' | 'stderr' | 'encoding' | 'onOutput'> &
  Pick<SpawnOptions, 'stdin' | 'stdout' | 'stderr'>;

const EXEC_KEYS = new Set<string>([
  'stdin',
  'stdout',
  'stderr',
  'encoding',
  'env',
  'cwd',
  'signal',
  'onSpawn',
  'onOutput',
  'wallTimeLimitMs',
  'cpuTimeLimitMs',
  'outputLimitBytes',
]);
const NOT_SESSION_KEYS = [
  'argv',
  'stdin',
  'stdout',
  'stderr',
  'encoding',
  'signal',
  'onSpawn',
  'onOutput',
  'explain',
];

/** A placeholder program for validating the box's options: the box's PID 1 runs none. */
const HOLD_ARGV = ['/capsule-hold'];

/** How long destroy() waits for the box's PID 1 to be reaped after SIGKILL, in ms. */
const REAP_TIMEOUT_MS = 5000;

/**
 * The state of one box: everything needed to end it, and nothing that refers back to the
 * Box object (the FinalizationRegistry and the exit hook hold this, not the Box).
 */
class BoxState implements JoinTarget {
  pid = -1;
  id = -1;
  /** The box has a user namespace of its own (hostIds 'unique', or rootless): commands join it. */
  userns = false;
  /** Made without root: its user namespace is the caller's, entered first by commands (rootless.ts). */
  rootless = false;
  /** The box's uid and gid as the host sees them, for files copyIn creates. */
  hostUid = 0;
  hostGid = 0;
  /** The box's uid and gid inside it: what copyIn's new files get rootless (chownInBox). */
  boxUid = 0;
  boxGid = 0;
  cgroup: SandboxCgroup | null = null;
  ids: HostIdLease | null = null;
  /** Resolves when the box's PID 1 was reaped. */
  exited: Promise<NativeExit> = Promise.resolve({} as NativeExit);
  gone = false;
  /** Commands running now: their PID 1 (outside the box) and how to kill it. */
  readonly running = new Map<number, (signal: NodeJS.Signals) => boolean>();
  readonly settled = new Set<Promise<unknown>>();

  target(): BoxTarget {
    return { pid: this.pid, id: this.id };
  }

  /** Synchronous part of ending the box: SIGKILL its PID 1 and every command's. */
  kill(): void {
    if (this.pid > 0 && !this.gone) native().kill(this.pid, this.id, osConstants.signals.SIGKILL);
    for (const k of this.running.values()) k('SIGKILL');
  }

  /** Kill, wait for the reap, release the cgroups and the host id. Idempotent. */
  async end(): Promise<void> {
    live.delete(this);
    this.kill();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.exited,
      new Promise((resolve) => {
        timer = setTimeout(resolve, REAP_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    /* Every command's run settles once its capsule-init is reaped (their cgroups are released there). */
    await Promise.allSettled([...this.settled]);
    const cg = this.cgroup;
    this.cgroup = null;
    try {
      await cg?.release();
    } finally {
      this.ids?.release();
      this.ids = null;
    }
  }
}

/** Every box not yet destroyed, for the exit hook. */
const live = new Set<BoxState>();
let exitHookInstalled = false;

/**
 * On process exit nothing asynchronous runs any more: kill every live box's PID 1 and
 * commands, wait (briefly, synchronously) until the kernel has emptied each box, then
 * release the host ids, so the next process never finds a lease of ours. Cgroups are
 * removed by the cgroup manager's own exit hook (src/cgroup/exit.ts).
 */
function onProcessExit(): void {
  if (live.size > 0) native().exiting();
  for (const s of live) {
    s.kill();
    waitZombie([s.pid, ...s.running.keys()]);
    s.ids?.release();
    s.ids = null;
  }
  live.clear();
}

/**
 * Until each process is a zombie or gone: a namespace's init becomes a zombie only once
 * every other process of the namespace has exited (pid_namespaces(7)). At most 1 s.
 */
function waitZombie(pids: number[]): void {
  const until = Date.now() + 1000;
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  for (const pid of pids) {
    while (Date.now() < until) {
      let state = 'Z';
      try {
        state = /\) (\S)/.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1] ?? 'Z';
      } catch {
        /* gone */
      }
      if (state === 'Z' || state === 'X') break;
      Atomics.wait(sleeper, 0, 0, 2);
    }
  }
}

const finalizer = new FinalizationRegistry<BoxState>((s) => {
  void s
    .end()
    .catch((e: Error) => process.emitWarning(`capsule: a dropped box: ${e.message}`, 'CapsuleWarning'));
});

/** A sandbox that stays up between commands. Made by {@link create}. */
export class Box {
  #state: BoxState;
  #options: SessionOptions;
  #resolved: ResolvedOptions;

  /** @internal use create() */
  constructor(options: SessionOptions, resolved: ResolvedOptions, state: BoxState) {
    this.#options = options;
    this.#resolved = resolved;
    this.#state = state;
    finalizer.register(this, state, this);
  }

  /** Host PID of the box's PID 1; it changes on reset(). */
  get pid(): number {
    return this.#state.pid;
  }

  /** The box is up: not destroyed, and its PID 1 has not ended. */
  get alive(): boolean {
    return !this.#state.gone && live.has(this.#state);
  }

  /**
   * Run one command in the box and wait for it: the same result as run() (exit code,
   * output, times, verdict), for this command alone. A limit it passes ends this command
   * only; the box stays usable. Rejects with a ConfigError for bad options, a SetupError
   * when joining failed (the program did not run), a CapsuleError when the box is gone.
   */
  exec(argv: readonly string[], options: ExecOptions & { encoding: 'buffer' }): Promise<RunResult<Buffer>>;
  exec(argv: readonly string[], options?: ExecOptions): Promise<RunResult<string>>;
  async exec(argv: readonly string[], options: ExecOptions = {}): Promise<RunResult<string | Buffer>> {
    const p = this.#exec(argv, options);
    const s = this.#state;
    s.settled.add(p);
    try {
      return await p;
    } catch (e) {
      throw outOfDescriptors(e) ?? e;
    } finally {
      s.settled.delete(p);
    }
  }

  #exec(argv: readonly string[], options: ExecOptions): Promise<RunResult<string | Buffer>> {
    const s = this.#alive('exec');
    return execIn(s, this.#options, argv, options, s.running);
  }

  /**
   * Start one command in the box with Node streams, as spawn() starts a fresh sandbox:
   * stdin, stdout and stderr default to 'pipe' (streams, back-pressure both ways, output
   * not kept), and `result` is the command's result as exec() gives it. Throws a
   * ConfigError for bad options and a CapsuleError when the box is gone; a failed join
   * rejects `result` and `pid` with a SetupError.
   */
  spawn(argv: readonly string[], options: BoxSpawnOptions = {}): SpawnedSandbox {
    const s = this.#alive('spawn');
    const spawned = spawnIn(s, this.#options, argv, options, s.running);
    const settled = spawned.result.catch(() => {});
    s.settled.add(settled);
    void settled.then(() => s.settled.delete(settled));
    return spawned;
  }

  /**
   * Copy a host file into the box. `boxPath` is absolute inside the box and resolved below
   * its root by descriptor: a symlink anywhere on it (the last component included) is
   * refused, never followed, so nothing the program planted sends the write to the host.
   * An existing file is overwritten (refused if it has other hard links); a new one is made
   * with the host file's mode and owned by the box's user.
   */
  async copyIn(hostPath: string, boxPath: string): Promise<void> {
    copyInto(this.#alive('copyIn'), hostPath, boxPath);
  }

  /**
   * Copy a file out of the box to a host path (overwritten if it exists). `boxPath` is
   * resolved below the box's root by descriptor, refusing any symlink on it: a symlink the
   * program planted to a host file, or to /, is never followed.
   */
  async copyOut(boxPath: string, hostPath: string): Promise<void> {
    copyOutOf(this.#alive('copyOut'), boxPath, hostPath);
  }

  /**
   * Back to the rootfs's state: the box is destroyed and made again with the same options
   * (a fresh /tmp, new namespaces, a new PID 1 and host id). Commands still running are
   * killed. The Box object stays the same.
   */
  async reset(): Promise<void> {
    this.#alive('reset');
    const old = this.#state;
    finalizer.unregister(this);
    await old.end();
    old.gone = true;
    this.#state = await startBox(this.#resolved);
    finalizer.register(this, this.#state, this);
  }

  /** Kill everything in the box and release what it held (cgroups, host id). Idempotent. */
  async destroy(): Promise<void> {
    finalizer.unregister(this);
    const s = this.#state;
    await s.end();
    s.gone = true;
  }

  #alive(what: string): BoxState {
    const s = this.#state;
    if (s.gone || !live.has(s)) throw goneError(what);
    return s;
  }
}

function goneError(what: string): CapsuleError {
  return new CapsuleError(
    `${what}: the box has ended (destroyed, or its PID 1 was killed): create() a new one`,
  );
}

function checkBoxPath(what: string, p: string): void {
  if (typeof p !== 'string' || !isAbsolute(p) || p.includes('\0'))
    throw new ConfigError(
      `${what}: the path in the box must be absolute, got ${JSON.stringify(p)}`,
      'boxPath',
    );
}

/** A box to run a command in or copy files through: one of ours, or one attach() checked. */
interface JoinTarget {
  target(): BoxTarget;
  readonly userns: boolean;
  readonly rootless: boolean;
  readonly hostUid: number;
  readonly hostGid: number;
  readonly boxUid: number;
  readonly boxGid: number;
  readonly gone: boolean;
}

const NEEDS_CGROUPS =
  'a session needs cgroups (each command runs in a cgroup of its own, which ends what it leaves ' +
  'behind), and none is usable here: run where cgroups are mounted and writable';

/**
 * Whether setgroups(2) is allowed in a rootless box's user namespace: "deny" after a map of
 * the caller's own ids alone, "allow" after newgidmap mapped a range (user_namespaces(7),
 * /proc/PID/setgroups). A command drops the caller's groups exactly when the box could.
 */
function setgroupsAllowed(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/setgroups`, 'utf8').trim() === 'allow';
  } catch {
    return false;
  }
}

/** A command's options checked against what exec() takes (the rest is the box's). */
function checkExecKeys(what: string, options: object, refused: readonly string[] = []): void {
  if (typeof options !== 'object' || options === null)
    throw new ConfigError(`${what}() takes an options object`);
  for (const key of Object.keys(options)) {
    if (refused.includes(key))
      throw new ConfigError(`${what}(): ${key} is exec()'s: with ${what}(), read the streams`, key);
    if (!EXEC_KEYS.has(key))
      throw new ConfigError(
        `${what}(): ${key} is the box's, set at create() (${what} takes ${[...EXEC_KEYS].filter((k) => !refused.includes(k)).join(', ')})`,
        key,
      );
  }
}

/** How a command joins its box: the addon's options changed just before the clone. */
function joinHooks(s: JoinTarget) {
  return {
    adjust: (n: NativeOptions) => {
      n.argv[0] = 'capsule-join';
      n.join = { ...s.target(), userns: s.userns };
      /*
       * Rootless: the box's maps are written already; the addon reads idMap's presence only
       * as "setgroups is allowed in the box's user namespace" (native/rootless.cc).
       */
      if (s.rootless && !setgroupsAllowed(s.target().pid)) delete n.idMap;
    },
    /*
     * Rootless, a command gets a cgroup of its own where one is delegated to the caller, and
     * none otherwise (as a rootless run(): rusage figures, a lower bound; see create()).
     */
    ...(s.rootless ? { reaped: endLeftovers(s) } : { requireCgroup: NEEDS_CGROUPS }),
  };
}

/**
 * A rootless command without a cgroup (none is delegated to the caller): what it left
 * running cannot be found by cgroup. Its capsule-init led a session of its own (join_box's
 * new_session), which the program and whatever it started without setsid(2) share; so
 * when that capsule-init is reaped, every process of the box's PID namespace whose session
 * is still its pid is SIGKILLed (the session keeps that pid number taken while any member
 * lives, so it names this command's processes and no later process; proc(5), field 6 of
 * /proc/PID/stat). That also ends their hold on the command's stdout and stderr, so the
 * output reaches EOF. A process that left the session (a daemon's setsid) lives on in the
 * box until reset() or destroy(): docs/security.md says so.
 */
function endLeftovers(s: JoinTarget): (pid: number, hadCgroup: boolean) => void {
  return (sid, hadCgroup) => {
    if (hadCgroup) return;
    let boxPidNs: string;
    try {
      boxPidNs = readlinkSync(`/proc/${s.target().pid}/ns/pid`);
    } catch {
      return; /* the box is gone, and everything in it */
    }
    /* A few rounds: a member may fork between the scan and its kill. */
    for (let round = 0; round < 20; round++) {
      let found = 0;
      for (const name of readdirSync('/proc')) {
        if (!/^\d+$/.test(name) || Number(name) === sid) continue;
        try {
          const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
          const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
          if (Number(fields[3]) !== sid || fields[0] === 'Z' || fields[0] === 'X') continue;
          if (readlinkSync(`/proc/${name}/ns/pid`) !== boxPidNs) continue;
          process.kill(Number(name), 'SIGKILL');
          found++;
        } catch {
          /* gone meanwhile, or not ours to read */
        }
      }
      if (found === 0) return;
    }
  };
}

/** Start one command in a box with streams (Box.spawn): spawn()'s machinery over a join. */
function spawnIn(
  s: JoinTarget,
  boxOptions: SessionOptions,
  argv: readonly string[],
  options: BoxSpawnOptions,
  running: Map<number, (signal: NodeJS.Signals) => boolean>,
): SpawnedSandbox {
  checkExecKeys('spawn', options, ['encoding', 'onOutput']);
  const input: RunOptions = {
    ...boxOptions,
    ...options,
    argv,
    stdin: options.stdin ?? 'pipe',
    stdout: options.stdout ?? 'pipe',
    stderr: options.stderr ?? 'pipe',
  };
  const opts = resolveOptions(input);
  opts.cgroups = true; /* as for exec: the command's leftovers end with its cgroup */
  if (options.outputLimitBytes === undefined) opts.limits.outputLimitBytes = null; /* nothing is kept */
  if (s.gone) throw goneError('spawn');
  let pid = 0;
  const launched = LaunchedSandbox.launch(opts, {
    signal: options.signal,
    onSpawn: (sb) => {
      pid = sb.pid;
      running.set(pid, (sig) => sb.kill(sig));
      options.onSpawn?.(sb);
    },
    options: input,
    ...joinHooks(s),
  });
  const spawned = streamed(opts, launched);
  void spawned.result.then(
    () => running.delete(pid),
    () => running.delete(pid),
  );
  return spawned;
}

/** Run one command in a box (Box.exec, AttachedBox.exec). */
async function execIn(
  s: JoinTarget,
  boxOptions: SessionOptions,
  argv: readonly string[],
  options: ExecOptions,
  running: Map<number, (signal: NodeJS.Signals) => boolean>,
): Promise<RunResult<string | Buffer>> {
  checkExecKeys('exec', options);
  const input: RunOptions = { ...boxOptions, ...options, argv };
  const opts = resolveOptions(input);
  /* Every command needs a cgroup of its own: it is how what it leaves running is ended. */
  opts.cgroups = true;
  let pid = 0;
  const onSpawn = options.onSpawn;
  const run: RunOptions = {
    ...input,
    onSpawn: (sb) => {
      pid = sb.pid;
      running.set(pid, (sig) => sb.kill(sig));
      onSpawn?.(sb);
    },
  };
  try {
    if (s.gone) throw goneError('exec');
    /*
     * The command's own cgroup is released when its capsule-init is reaped, which kills
     * whatever the program left (reparented to the box's PID 1, still in that cgroup), so
     * its hold on stdout or stderr ends and the output reaches EOF (src/lifecycle.ts).
     */
    return await runResolved(opts, run, joinHooks(s));
  } finally {
    running.delete(pid);
  }
}

/**
 * Copy a host file into a box: see Box.copyIn. An existing file is overwritten (refused if
 * it has other hard links); a new one gets the host file's mode and the box's owner.
 */
function copyInto(s: JoinTarget, hostPath: string, boxPath: string): void {
  checkBoxPath('copyIn', boxPath);
  let data: Buffer;
  let mode: number;
  try {
    data = readFileSync(hostPath);
    mode = statSync(hostPath).mode & 0o777;
  } catch (e) {
    throw new CapsuleError(`copyIn: cannot read ${hostPath} on the host: ${(e as Error).message}`);
  }
  const { O_WRONLY, O_CREAT, O_EXCL, O_NONBLOCK } = fsConstants;
  let created = true;
  let fd: number;
  try {
    fd = openInBox(s, 'copyIn', boxPath, O_WRONLY | O_CREAT | O_EXCL | O_NONBLOCK, mode);
  } catch (e) {
    if ((e as { code?: string }).code !== 'EEXIST') throw e;
    created = false;
    fd = openInBox(s, 'copyIn', boxPath, O_WRONLY | O_NONBLOCK, 0);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new CapsuleError(`copyIn: ${boxPath} in the box is not a regular file`);
    if (st.nlink > 1)
      throw new CapsuleError(
        `copyIn: ${boxPath} in the box has ${st.nlink} hard links: refused, a write would reach the others`,
      );
    if (created && s.rootless) chownInBox(s, boxPath, fd);
    else if (created) fchownSync(fd, s.hostUid, s.hostGid);
    ftruncateSync(fd, 0);
    for (let off = 0; off < data.length;) off += writeSync(fd, data, off, data.length - off);
  } finally {
    closeSync(fd);
  }
}

/** Copy a file out of a box: see Box.copyOut. */
function copyOutOf(s: JoinTarget, boxPath: string, hostPath: string): void {
  checkBoxPath('copyOut', boxPath);
  const fd = openInBox(s, 'copyOut', boxPath, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK, 0);
  let data: Buffer;
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new CapsuleError(`copyOut: ${boxPath} in the box is not a regular file`);
    const chunks: Buffer[] = [];
    for (;;) {
      const b = Buffer.allocUnsafe(1 << 16);
      const n = readSync(fd, b, 0, b.length, null);
      if (n === 0) break;
      chunks.push(b.subarray(0, n));
    }
    data = Buffer.concat(chunks);
  } finally {
    closeSync(fd);
  }
  writeFileSync(hostPath, data);
}

/**
 * Rootless, a file the caller made in the box is the caller's, which is the box's 0 (with a
 * subordinate range) or its uid (one id mapped); the box's user gets it through the addon's
 * chownInBox, which changes owner from inside the box's user namespace, where the caller may
 * (native/rootless.cc): fchown(2) from here may only give a file to oneself.
 */
function chownInBox(s: JoinTarget, boxPath: string, fd: number): void {
  try {
    native().chownInBox(s.target(), fd, s.boxUid, s.boxGid);
  } catch (e) {
    throw new CapsuleError(
      `copyIn: cannot give ${boxPath} to the box's user (uid ${s.boxUid}, gid ${s.boxGid}): ${(e as Error).message}`,
    );
  }
}

/** The addon's openInBox, its error turned into one that names the path and what to do. */
function openInBox(s: JoinTarget, what: string, boxPath: string, flags: number, mode: number): number {
  try {
    return native().openInBox(s.target(), boxPath, flags, mode);
  } catch (e) {
    const err = e as { errno?: number; syscall?: string; message?: string };
    const code = Object.entries(osConstants.errno).find(([, n]) => n === err.errno)?.[0] ?? 'EIO';
    const hint =
      code === 'ELOOP'
        ? ': a symlink is on the path, and none is followed inside a box'
        : code === 'EXDEV'
          ? ': the path leaves the box'
          : code === 'ESRCH'
            ? ': the box has ended'
            : '';
    const wrapped = new CapsuleError(
      `${what}: cannot open ${boxPath} in the box: ${err.message ?? String(e)}${hint}`,
    );
    (wrapped as CapsuleError & { code: string }).code = code;
    throw wrapped;
  }
}

/**
 * Start a box: its cgroup, host id, and PID 1 in hold mode. Rootless (src/rootless.ts): no
 * host id, a user namespace the caller owns, and a cgroup only where one is delegated.
 */
async function startBox(opts: ResolvedOptions): Promise<BoxState> {
  const addon = native();
  const s = new BoxState();
  const hold: ResolvedOptions = {
    ...opts,
    cgroups: true,
    stdin: 'ignore',
    stdout: 'ignore',
    stderr: 'ignore',
  };
  s.rootless = rootlessMode();
  const delegated = s.rootless ? delegatedCgroupManager(opts.cgroupParent) : null;
  s.cgroup = !s.rootless
    ? await acquireCgroup(hold, null)
    : delegated && (await acquireCgroup(hold, null, delegated).catch(rootlessCgroupFailed(opts, delegated)));
  if (s.cgroup === null && !s.rootless) throw new ConfigError(NEEDS_CGROUPS, 'cgroups');
  const opened: number[] = [];
  try {
    s.ids = opts.hostIds === 'unique' && !s.rootless ? acquireHostIds(opts.hostIdRange) : null;
    s.userns = s.ids !== null || s.rootless;
    s.boxUid = opts.uid;
    s.boxGid = opts.gid;
    s.hostUid = s.ids?.uid ?? (s.rootless ? (process.geteuid?.() ?? opts.uid) : opts.uid);
    s.hostGid = s.ids?.gid ?? (s.rootless ? (process.getegid?.() ?? opts.gid) : opts.gid);
    const into = s.cgroup?.cloneInto ?? null;
    const n = nativeOptions(
      hold,
      childFds(hold, opened),
      into ? into.otherJoinFds : (s.cgroup?.joinFds ?? []),
      rlimitPlan(opts.limits),
    );
    n.argv = ['capsule-hold'];
    n.unref = true;
    n.trace = false;
    if (into) n.cgroupDirFd = into.dirFd;
    if (s.ids) Object.assign(n, { hostUid: s.ids.uid, hostGid: s.ids.gid });
    let exited!: (e: NativeExit) => void;
    s.exited = new Promise<NativeExit>((resolve) => (exited = resolve));
    let spawned;
    try {
      spawned = await addon.spawn(n, (e) => {
        s.gone = true;
        exited(e);
      });
    } catch (e) {
      if (typeof e === 'object' && e !== null && 'step' in e && !(e instanceof Error))
        throw await setupError(e as NativeStepError, {
          rootfs: opts.rootfs,
          rootfsArg: opts.rootfsArg,
          program: 'capsule-hold',
        });
      throw e;
    }
    for (const fd of spawned.stdio) if (fd >= 0) closeSync(fd);
    s.pid = spawned.pid;
    s.id = spawned.id;
  } catch (e) {
    s.ids?.release();
    s.ids = null;
    await s.cgroup?.release().catch(() => {});
    s.cgroup = null;
    throw outOfDescriptors(e) ?? e;
  } finally {
    for (const fd of opened) closeSync(fd);
  }
  live.add(s);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', onProcessExit);
  }
  return s;
}

/**
 * Start a sandbox that stays up, for {@link Box.exec} to run commands in. Takes run()'s
 * options except those of one command (argv, stdio, encoding, signal, callbacks, explain).
 * Validates them as run() does (ConfigError), and fails with a SetupError naming the step
 * if the box cannot be built.
 */
export async function create(options: SessionOptions): Promise<Box> {
  if (typeof options !== 'object' || options === null)
    throw new ConfigError('create() takes an options object');
  if (Object.hasOwn(options, 'terminal'))
    throw new ConfigError(
      "create(): terminal is run()'s (and `capsule run -t`'s): a session's commands get pipes",
      'terminal',
    );
  for (const key of NOT_SESSION_KEYS) {
    if (Object.hasOwn(options, key))
      throw new ConfigError(`create(): ${key} belongs to one command: give it to box.exec()`, key);
  }
  const resolved = resolveOptions({ ...options, argv: HOLD_ARGV });
  /* Without root, what a user namespace cannot do is refused here, as run() refuses it. */
  if (rootlessMode())
    checkRootless(
      { ...options, argv: HOLD_ARGV },
      resolved,
      delegatedCgroupManager(resolved.cgroupParent) !== null,
    );
  const state = await startBox(resolved);
  return new Box({ ...options }, resolved, state);
}

/** Where a box's PID 1 stands in time: field 22 of /proc/PID/stat (clock ticks since boot). */
export function processStartTime(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
}

/** A box another process owns (the CLI's holder), found by its PID 1: see {@link attach}. */
export interface BoxRef {
  /** Host PID of the box's PID 1. */
  pid: number;
  /** That process's start time (processStartTime), taken when the box was made. */
  startTime: string;
  /** The options the box was created with. */
  options: SessionOptions;
}

/**
 * A handle on a box another process owns: run commands in it and copy files, but not
 * reset or destroy it (its owner does). Close it when done (it holds a pidfd).
 */
export class AttachedBox implements JoinTarget {
  readonly userns: boolean;
  readonly rootless: boolean;
  readonly hostUid: number;
  readonly hostGid: number;
  readonly boxUid: number;
  readonly boxGid: number;
  #pidfd: number;
  readonly #running = new Map<number, (signal: NodeJS.Signals) => boolean>();

  /** @internal use attach() */
  constructor(
    readonly pid: number,
    pidfd: number,
    readonly options: SessionOptions,
  ) {
    this.#pidfd = pidfd;
    const resolved = resolveOptions({ ...options, argv: HOLD_ARGV });
    this.rootless = rootlessMode();
    this.userns = resolved.hostIds === 'unique' || this.rootless;
    this.boxUid = resolved.uid;
    this.boxGid = resolved.gid;
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    this.hostUid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
    this.hostGid = Number(/^Gid:\s+(\d+)/m.exec(status)?.[1]);
  }

  get gone(): boolean {
    return this.#pidfd < 0;
  }

  target(): BoxTarget {
    return { pid: this.pid, pidfd: this.#pidfd };
  }

  exec(argv: readonly string[], options: ExecOptions & { encoding: 'buffer' }): Promise<RunResult<Buffer>>;
  exec(argv: readonly string[], options?: ExecOptions): Promise<RunResult<string>>;
  async exec(argv: readonly string[], options: ExecOptions = {}): Promise<RunResult<string | Buffer>> {
    if (this.gone) throw goneError('exec');
    try {
      return await execIn(this, this.options, argv, options, this.#running);
    } catch (e) {
      throw outOfDescriptors(e) ?? e;
    }
  }

  async copyIn(hostPath: string, boxPath: string): Promise<void> {
    if (this.gone) throw goneError('copyIn');
    copyInto(this, hostPath, boxPath);
  }

  async copyOut(boxPath: string, hostPath: string): Promise<void> {
    if (this.gone) throw goneError('copyOut');
    copyOutOf(this, boxPath, hostPath);
  }

  /** Close the pidfd; commands still running are not touched. */
  close(): void {
    if (this.#pidfd >= 0) closeSync(this.#pidfd);
    this.#pidfd = -1;
  }
}

/**
 * Attach to a box another process owns, by its PID 1's pid and start time: pidfd_open(2),
 * then the start time checked on /proc/PID, so a PID reused since the box ended is refused
 * (the pidfd, once open, names that process and no other).
 */
export function attach(ref: BoxRef): AttachedBox {
  let pidfd: number;
  try {
    pidfd = native().pidfdOpen(ref.pid);
  } catch {
    throw goneError('attach');
  }
  let start = '';
  try {
    start = processStartTime(ref.pid);
  } catch {
    /* gone */
  }
  if (start !== ref.startTime) {
    closeSync(pidfd);
    throw goneError('attach');
  }
  return new AttachedBox(ref.pid, pidfd, ref.options);
}
