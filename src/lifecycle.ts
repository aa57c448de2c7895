/**
 * The sandbox lifecycle: one launched sandbox, from its cgroup to its result. run(),
 * spawn() and every later front door (sessions, terminals, the OCI command line) are thin
 * layers over this one type; it is the single owner of what a sandbox holds in this
 * process: its cgroup, its host id lease, the parent ends of its stdio pipes, its
 * timers (watchdog, terminate grace) and its abort listener.
 *
 *   const sb = await LaunchedSandbox.launch(opts, { signal, onSpawn });
 *       resolved options in (resolveOptions()); acquires the cgroup and host ids, makes
 *       the stdio descriptors, clones, sets up, execs capsule-init, arms the watchdog
 *       and the abort listener, then calls onSpawn. Rejects (a SetupError, ConfigError,
 *       or the AbortSignal's reason) with everything it took released: nothing runs.
 *   sb.pid                     host PID of the sandbox's PID 1 (capsule-init)
 *   sb.takeStdio(slot)         the parent end of the pipe for the child's 0, 1 or 2, or
 *                              -1 when that slot is not a pipe; from then on the caller
 *                              owns that descriptor. Slots never taken are closed when the
 *                              sandbox is reaped (an untaken stdin closes at once: EOF).
 *   sb.kill(signal)            a signal through the sandbox's pidfd (never a PID lookup);
 *                              false once it was reaped
 *   sb.terminate()             capsule-init kills everything and reports; SIGKILL after
 *                              a grace period
 *   sb.intervene(why)          capsule ends the sandbox for a reason (a limit, an abort):
 *                              the first one decides the verdict
 *   sb.fail(error)             a front door's own failure (a stream, a callback): SIGKILL
 *                              now, and result() rejects with `error` once it is reaped
 *   sb.exited                  settles once the sandbox is reaped and its cgroup and host
 *                              id are released (never rejects)
 *   sb.result(outputs?)        the RunResult: waits for `exited` and for the front door's
 *                              output readers (`outputs`, read to EOF or cut), then decides
 *                              the verdict. Call it once; a setup step that failed after
 *                              capsule-init started rejects it with a SetupError.
 *
 * Front doors: run() (src/run.ts) takes the pipe ends and captures; spawn() (src/spawn.ts)
 * wraps them in Node streams through streamed(opts, launching), which takes any
 * StreamableSandbox (this type, or a session's command that offers the same methods).
 *
 * launch() is create and start in one step, as the addon's spawn() clones, sets up and
 * execs in one call. A sandbox made ahead of time (createRunner, src/ahead.ts) splits it,
 * with the same owner of everything below:
 *
 *   const sb = await LaunchedSandbox.prepare(opts);
 *       every step up to exec_init; capsule-init waits for its run (init.c receive_run)
 *   sb.begin(runOpts, { signal, onSpawn })
 *       the run's stdio, argv and env sent to it; the clock and the watchdog start
 *   sb.dispose()               end it unused
 *
 * Everything is released on every path, whether or not result() is ever called: the
 * cgroup, the host id, the timers and the untaken pipe ends go when the sandbox is reaped.
 * What a front door took (a pipe end it wraps in a stream) is that front door's to close.
 */
import { closeSync } from 'node:fs';
import os, { availableParallelism, constants as osConstants } from 'node:os';

import { CgroupManager, type CgroupUsage, type SandboxCgroup, traceCgroupWrites } from './cgroup/index.js';
import { deviceCgroupLimits, deviceMode, setDeviceProgram } from './devices/index.js';
import { setupError } from './diagnose.js';
import { ConfigError } from './errors.js';
import { type CgroupWrite, explainRun } from './explain.js';
import { acquireHostIds, type HostIdLease, releaseHostIdPool } from './ids.js';
import { cgroupLimits, type Limits, rlimitPlan } from './limits.js';
import { native, type NativeExit, type NativeOptions, type NativeStepError } from './native.js';
import type { ResolvedOptions, RunOptions, Sandbox } from './options.js';
import {
  checkRootless,
  delegatedCgroupManager,
  rootlessCgroupFailed,
  rootlessMode,
  rootlessNativeOptions,
} from './rootless.js';
import { outOfDescriptors } from './out-of-fds.js';
import type { Captured } from './output.js';
import { decodeExit, type RunResult } from './result.js';
import { securityViolation } from './seccomp/verdict.js';
import { monotonicMs } from './clock.js';
import { childFds } from './stdio.js';
import { TerminalMaster } from './terminal.js';
import { decideVerdict, type Intervention } from './verdict.js';
import { startWatchdog } from './watchdog.js';

/**
 * result() of a sandbox made ahead whose capsule-init died before it read its run: nothing
 * of the run happened, and the runner launches it again (src/ahead.ts). Never reaches a user.
 */
export class RunNotReceived extends Error {
  constructor(readonly pid: number) {
    super(`capsule-init (PID ${pid}) ended before it read its run`);
  }
}

/** How long capsule-init gets to kill, reap and report after CAPSULE_SIG_TERMINATE before SIGKILL. */
const TERMINATE_GRACE_MS = 1000;

export type StdioSlot = 0 | 1 | 2;

export interface LaunchOptions {
  /**
   * Aborting ends the sandbox (intervention 'aborted'). Aborted before launch(): it
   * rejects with the signal's reason and nothing is started; during the clone: the
   * sandbox is ended as soon as it exists.
   */
  signal?: AbortSignal;
  /** Called once the sandbox runs, its watchdog armed; a throw ends it (see fail()). */
  onSpawn?: (sandbox: Sandbox) => void;
  /**
   * Change the addon's options just before the clone (a session's command joins its box
   * instead of building a sandbox: src/session.ts).
   */
  adjust?: (n: NativeOptions) => void;
  /** Refuse to launch without a cgroup: the ConfigError's message (a session's command needs one). */
  requireCgroup?: string;
  /**
   * Called where the sandbox is reaped, before its cgroup is released, with its PID and
   * whether it had a cgroup (a rootless session's command ends what it left behind when it
   * had none: src/session.ts). Synchronous; a throw is ignored.
   */
  reaped?: (pid: number, hadCgroup: boolean) => void;
  /** The options as the caller gave them, for errors that depend on what was said, not resolved (rootless). */
  options?: RunOptions;
}

/** What the sandbox's end left for result(): read in the callback that reaped it. */
interface Ended {
  exit: NativeExit;
  wallTimeMs: number;
  usage: CgroupUsage | null;
}

/*
 * The cgroup layer and the exec diagnosis are imported up front, not when first needed:
 * Node keeps a module that failed to load (EMFILE while reading it, under descriptor
 * pressure) failed for the life of the process, so a lazy import could break every later
 * run. The bundled CLI has them in its one file either way.
 */

/**
 * One CgroupManager (and its pool) per cgroup parent, for the life of the process. Looked
 * up and stored with no await in between, so concurrent first runs share one manager
 * instead of each making one (and orphaning its pooled cgroups).
 */
const managers = new Map<string, CgroupManager>();
function cgroupManager(parent: string): CgroupManager {
  let m = managers.get(parent);
  if (!m) {
    m = new CgroupManager({ parent, setDeviceProgram });
    managers.set(parent, m);
  }
  return m;
}

/** The cgroup directories the library's managers hold, and keep descriptors open in (for leak checks). */
export function heldCgroupDirs(): string[] {
  return [...managers.values()].flatMap((m) => m.heldDirs());
}

/** The sandbox's cgroup, or null when it needs none and none is usable. */
export async function acquireCgroup(
  o: ResolvedOptions,
  writes: CgroupWrite[] | null,
  manager?: CgroupManager,
): Promise<SandboxCgroup | null> {
  const base = cgroupLimits(o.limits);
  if (
    !o.cgroups &&
    Object.keys(base).length === 0 &&
    o.limits.cpuTimeLimitMs === null &&
    o.devices.length === 0
  ) {
    return null;
  }
  manager ??= cgroupManager(o.cgroupParent);
  /* Rootless, a device is the host's node bound in: no device rule can be set (src/rootless.ts). */
  const limits = { ...base, ...(rootlessMode() ? {} : deviceCgroupLimits(o, manager.layout)) };
  const needed = Object.keys(limits).length > 0 || o.limits.cpuTimeLimitMs !== null;
  if (!o.cgroups && !needed) return null;
  if (writes)
    traceCgroupWrites((path, value) => writes.push({ path, value, ns: Number(process.hrtime.bigint()) }));
  let cg;
  try {
    cg = manager.acquire(limits, { accounting: true });
  } finally {
    if (writes) traceCgroupWrites(null);
  }
  if (o.limits.cpuTimeLimitMs !== null && (cg === null || cg.usage().cpuTimeMs === null)) {
    void cg?.release();
    throw new ConfigError(
      'cpuTimeLimitMs needs cgroup CPU accounting (the cpuacct controller on cgroup v1, cpu.stat on v2), ' +
        'which this machine does not offer: use wallTimeLimitMs, or run where cgroups are mounted',
      'cpuTimeLimitMs',
    );
  }
  return cg;
}

/** How many CPUs the sandbox can keep busy at once: the bound on how fast its CPU time grows. */
function parallelism(l: Limits): number {
  let n = availableParallelism();
  if (l.cpus !== null) n = Math.min(n, Math.ceil(l.cpus));
  if (l.cpusetCpus !== null) {
    const count = l.cpusetCpus.split(',').reduce((sum, part) => {
      const [a, b] = part.split('-').map(Number);
      return sum + (b === undefined ? 1 : b - a! + 1);
    }, 0);
    n = Math.min(n, count);
  }
  return Math.max(1, n);
}

const warn = (e: Error) => process.emitWarning(e.message, 'CapsuleWarning');

/** One launched sandbox: see the file's header for its API. */
export class LaunchedSandbox {
  /** Host PID of the sandbox's PID 1 (capsule-init); 0 until the clone returned. */
  pid = 0;
  /** monotonicMs() just before the stdio and the clone: wallTimeMs counts from here. */
  startedAt = 0;
  /** Settles once the sandbox was reaped and its cgroup and host id released; never rejects. */
  readonly exited: Promise<void>;

  private id = -1;
  private stdio: [number, number, number] = [-1, -1, -1];
  /* With `terminal`: the pty's master (src/terminal.ts), until a front door takes it. */
  private terminal: TerminalMaster | null = null;
  private ids: HostIdLease | null = null;
  private nOpts: NativeOptions | undefined;
  private trace: Parameters<typeof explainRun>[4] | undefined;
  private gone = false;
  private graceTimer: NodeJS.Timeout | undefined;
  private stopWatchdog: () => void = () => {};
  private intervention: Intervention = null;
  private failure: { error: unknown } | null = null;
  private ended: Ended | undefined;
  private onEnded!: () => void;
  private abortRequested = false;
  private onReaped: LaunchOptions['reaped'];
  private readonly abortListener = () => {
    if (this.id < 0) this.abortRequested = true;
    else this.intervene('aborted');
  };

  /* Made ahead (prepare()): capsule's end of the socketpair its run is sent on, until begin(). */
  private goFd = -1;
  /* Made ahead and begun: its run was sent to a capsule-init that might not live to read it. */
  private begunAhead = false;

  private constructor(
    private opts: ResolvedOptions,
    private readonly cgroup: SandboxCgroup | null,
    private readonly cgroupWrites: CgroupWrite[],
    private signal: AbortSignal | undefined,
  ) {
    this.exited = new Promise<void>((resolve) => (this.onEnded = resolve));
  }

  /** Create and start a sandbox for resolved options: see the file's header. */
  static async launch(
    opts: ResolvedOptions,
    o: LaunchOptions = {},
    prepared = false,
  ): Promise<LaunchedSandbox> {
    try {
      const rlimits = rlimitPlan(opts.limits);
      throwIfAborted(o.signal);
      const addon = native(); /* fail on a missing addon before taking a cgroup */
      /* Without CAP_SYS_ADMIN: a user namespace of the sandbox's own, a delegated cgroup or none (src/rootless.ts). */
      const rootless = rootlessMode();
      /*
       * A sandbox of its own network namespace (not a session's command, which joins its
       * box's; not rootless, whose namespaces its user namespace owns): the pool's thread
       * starts making one now, on another CPU, while the cgroup, host ids and stdio are
       * prepared, so even a process's first run (every `capsule run`) can join one instead
       * of clone making it.
       */
      if (!rootless && o.adjust === undefined) addon.startNetnsPool();
      const delegated = rootless ? delegatedCgroupManager(opts.cgroupParent) : null;
      if (rootless)
        checkRootless(o.options ?? { rootfs: opts.rootfs, argv: opts.argv }, opts, delegated !== null);
      const writes: CgroupWrite[] = [];
      const w = opts.explain ? writes : null;
      const cgroup = !rootless
        ? await acquireCgroup(opts, w)
        : delegated && (await acquireCgroup(opts, w, delegated).catch(rootlessCgroupFailed(opts, delegated)));
      if (cgroup === null && o.requireCgroup !== undefined) throw new ConfigError(o.requireCgroup, 'cgroups');
      const sb = new LaunchedSandbox(opts, cgroup, writes, o.signal);
      sb.onReaped = o.reaped;
      await sb.start(rlimits, o.adjust, prepared);
      if (!prepared) sb.running(o.onSpawn);
      return sb;
    } catch (e) {
      const fds = outOfDescriptors(e);
      /* The descriptors the user-namespace pool holds go back to the process (src/ids.ts). */
      if (fds?.code === 'EMFILE') releaseHostIdPool();
      throw fds ?? e;
    }
  }

  /**
   * A sandbox made ahead of time for one later run of these options (src/ahead.ts): every
   * step up to exec_init is taken now, and capsule-init waits for the run (init.c
   * receive_run). begin() sends it; dispose() ends it unused. No signal, no onSpawn yet.
   */
  static prepare(opts: ResolvedOptions): Promise<LaunchedSandbox> {
    return LaunchedSandbox.launch(opts, {}, true);
  }

  /**
   * Start the run a prepared sandbox waits for: `run` is the run's own resolved options,
   * which may differ from the ones it was made for only in argv, env and stdio (the caller
   * checks: src/ahead.ts). Its stdio is made now, as launch() makes it, and sent to
   * capsule-init with argv and env in one message; wallTimeMs and the cgroup's counters
   * start here, not at the clone. Throws (the sandbox is then ended) if capsule-init is gone.
   */
  begin(run: ResolvedOptions, o: Pick<LaunchOptions, 'signal' | 'onSpawn'>): void {
    const addon = native();
    if (this.goFd < 0) throw new Error('begin(): not a sandbox made ahead, or begun already');
    const opened: number[] = [];
    const childEnds: [number, number, number] = [-1, -1, -1];
    try {
      throwIfAborted(o.signal);
      const message = runMessage(run.argv, run.env);
      if (message === null) throw new Error('begin(): argv and env are too long for a sandbox made ahead');
      const stdio = childFds(run, opened);
      for (let slot = 0; slot < 3; slot++) {
        if (stdio[slot]! >= 0) {
          childEnds[slot] = stdio[slot]!;
          continue;
        }
        /* As the addon makes a run's pipes (spawn.cc): stdin's read end, stdout's and stderr's write ends. */
        const [r, w] = addon.pipe();
        opened.push(slot === 0 ? r : w);
        childEnds[slot] = slot === 0 ? r : w;
        this.stdio[slot] = slot === 0 ? w : r;
      }
      this.opts = run;
      this.signal = o.signal;
      this.signal?.addEventListener('abort', this.abortListener, { once: true });
      /* The setup's own CPU time and memory were charged to the cgroup: the run's count from here. */
      this.cgroup?.rebase();
      this.startedAt = monotonicMs();
      addon.sendRun(this.goFd, message, childEnds);
      addon.setRef(this.pid, this.id, true);
    } catch (e) {
      this.dispose();
      for (let slot = 0; slot < 3; slot++) {
        const fd = this.takeStdio(slot as StdioSlot);
        if (fd >= 0) closeSync(fd);
      }
      throw e;
    } finally {
      for (const fd of opened) closeSync(fd);
      if (this.goFd >= 0) closeSync(this.goFd);
      this.goFd = -1;
    }
    this.begunAhead = true;
    this.running(o.onSpawn);
  }

  /** End a sandbox made ahead without a run: capsule-init sees EOF and exits; `exited` settles once it is reaped. */
  dispose(): void {
    if (this.goFd >= 0) closeSync(this.goFd);
    this.goFd = -1;
    /* Referenced again, so that whoever awaits `exited` is not left when the loop runs dry. */
    if (!this.gone && this.id >= 0) native().setRef(this.pid, this.id, true);
    this.kill(osConstants.signals.SIGKILL);
  }

  /** Host ids, stdio, the clone. On failure everything taken is released before the throw. */
  private async start(
    rlimits: ReturnType<typeof rlimitPlan>,
    adjust: LaunchOptions['adjust'],
    prepared: boolean,
  ): Promise<void> {
    const addon = native();
    const opts = this.opts;
    const opened: number[] = [];
    /*
     * The abort listener goes in before the clone, so no abort is lost: one before this line
     * rejects (nothing was started), one while the clone is in flight on the pool thread
     * ends the sandbox as soon as there is one.
     */
    throwIfAborted(this.signal);
    this.signal?.addEventListener('abort', this.abortListener, { once: true });
    try {
      this.ids =
        opts.hostIds === 'unique' && !rootlessMode()
          ? /* A session's command joins its box's user namespace: it needs none made ahead. */
            acquireHostIds(
              opts.hostIdRange,
              adjust === undefined ? { uid: opts.uid, gid: opts.gid } : undefined,
            )
          : null;
      this.startedAt = monotonicMs();
      /* Made ahead: the run's stdio is made when it begins (begin()). */
      const stdio: [number, number, number] = prepared ? [-1, -1, -1] : childFds(opts, opened);
      const cgroup = this.cgroup;
      /* On cgroup v2 the child is born in its cgroup; only v1 hierarchies (hybrid) are joined by writing "0". */
      const into = cgroup?.cloneInto ?? null;
      const n = (this.nOpts = nativeOptions(
        opts,
        stdio,
        into ? into.otherJoinFds : (cgroup?.joinFds ?? []),
        rlimits,
      ));
      if (into) n.cgroupDirFd = into.dirFd;
      if (this.ids) Object.assign(n, { hostUid: this.ids.uid, hostGid: this.ids.gid });
      /* Its user namespace made ahead (src/ids.ts): the addon takes a copy, so ours goes right after. */
      if (this.ids && this.ids.userns >= 0) n.usernsFd = this.ids.userns;
      /* Made ahead: waiting does not keep the process alive; begin() references it again. */
      if (prepared) Object.assign(n, { prepared: true, unref: true });
      adjust?.(n);
      const spawning = addon.spawn(n, (e) => this.reaped(e));
      this.ids?.dropUserns();
      const spawned = await spawning;
      this.pid = spawned.pid;
      this.id = spawned.id;
      this.stdio = spawned.stdio;
      this.goFd = spawned.go ?? -1;
      this.trace = spawned.trace;
      if (spawned.terminal) this.terminal = new TerminalMaster(spawned.terminal);
    } catch (e) {
      this.signal?.removeEventListener('abort', this.abortListener);
      /* Nothing was started: the host id and the cgroup go back now. */
      this.ids?.release();
      await this.cgroup?.release().catch(warn);
      if (isStepError(e)) {
        const err = await setupError(e, errorContext(opts));
        if (e.trace && this.nOpts)
          err.explain = explainRun(
            opts,
            this.nOpts,
            addon.plan(this.nOpts),
            this.cgroupWrites,
            e.trace,
            null,
          );
        throw err;
      }
      throw e;
    } finally {
      for (const fd of opened) closeSync(fd);
    }
  }

  /** The sandbox runs: arm the watchdog, honour an abort that came during the clone, tell onSpawn. */
  private running(onSpawn: LaunchOptions['onSpawn']): void {
    try {
      const cgroup = this.cgroup;
      this.stopWatchdog = startWatchdog({
        startedAt: this.startedAt,
        wallTimeLimitMs: this.opts.limits.wallTimeLimitMs,
        cpuTimeLimitMs: this.opts.limits.cpuTimeLimitMs,
        readCpuMs: () => cgroup?.cpuTimeMs() ?? null /* one counter file, not the whole usage() */,
        parallelism: parallelism(this.opts.limits),
        onLimit: (why) => this.intervene(why),
      });
      if (this.abortRequested || this.signal?.aborted) this.intervene('aborted');
      onSpawn?.({
        pid: this.pid,
        kill: (name) => this.kill(name),
        ...(this.terminal ? { terminal: this.terminal.handle } : {}),
      });
    } catch (e) {
      this.fail(e);
    }
  }

  /**
   * Where the addon reaped it (its exit callback): from here on no handle or timer of this
   * sandbox can signal anything. Reads what result() needs, then releases everything.
   */
  private reaped(exit: NativeExit): void {
    this.gone = true;
    if (this.goFd >= 0) closeSync(this.goFd); /* made ahead and never begun */
    this.goFd = -1;
    clearTimeout(this.graceTimer);
    const wallTimeMs = monotonicMs() - this.startedAt;
    this.stopWatchdog();
    this.signal?.removeEventListener('abort', this.abortListener);
    let usage: CgroupUsage | null = null;
    try {
      usage = this.cgroup?.usage() ?? null;
    } catch (e) {
      this.failure ??= { error: e }; /* result() rejects with it; the release below still runs */
    }
    this.ended = { exit, wallTimeMs, usage };
    for (let slot = 0; slot < 3; slot++) {
      const fd = this.stdio[slot]!;
      this.stdio[slot] = -1;
      if (fd >= 0) closeSync(fd);
    }
    try {
      this.onReaped?.(this.pid, this.cgroup !== null);
    } catch {
      /* the front door's own cleanup: never in the way of the release below */
    }
    this.terminal?.close(); /* a master nobody took */
    this.terminal = null;
    /* The sandbox is gone (its PID 1 reaped, and with it every process it had): its host id is free. */
    this.ids?.release();
    /* Back to the pool (or removed); one that cannot be emptied is kept for close() and `capsule gc`. */
    const released = this.cgroup ? this.cgroup.release().catch(warn) : Promise.resolve();
    void released.then(() => this.onEnded());
  }

  /** The parent end of the pipe for the child's `slot`, or -1; the caller owns it from now on. */
  takeStdio(slot: StdioSlot): number {
    const fd = this.stdio[slot];
    this.stdio[slot] = -1;
    return fd;
  }

  /**
   * With `terminal`: the pty's master (its output is the program's stdout and stderr); the
   * caller owns it from now on and closes it. Null without a terminal, or once taken.
   */
  takeTerminal(): TerminalMaster | null {
    const t = this.terminal;
    this.terminal = null;
    return t;
  }

  /** A signal (a number or a name) through the sandbox's pidfd; false once it was reaped. */
  kill(signal: number | NodeJS.Signals | undefined): boolean {
    const n = typeof signal === 'string' ? osConstants.signals[signal] : signal;
    if (this.gone || this.id < 0 || n === undefined) return false;
    return native().kill(this.pid, this.id, n);
  }

  /**
   * End the sandbox: ask capsule-init to kill everything and report (so CPU time and
   * peak memory of a killed run are still known), then SIGKILL it if it has not exited
   * after a grace period.
   */
  terminate(): void {
    if (!this.kill(native().terminateSignal) || this.graceTimer) return;
    this.graceTimer = setTimeout(() => this.kill(osConstants.signals.SIGKILL), TERMINATE_GRACE_MS);
    this.graceTimer.unref();
  }

  /** capsule's interventions: the first one decides the verdict; each ends the sandbox. */
  intervene(why: Exclude<Intervention, null>): void {
    if (this.intervention !== null) return;
    this.intervention = why;
    this.terminate();
  }

  /**
   * Whatever throws once the sandbox runs (onSpawn, onOutput, a stream) ends it at once,
   * and result() rejects with the first such error only after it was reaped: it never
   * settles while the sandbox lives.
   */
  fail(error: unknown): void {
    this.failure ??= { error };
    this.kill(osConstants.signals.SIGKILL);
  }

  /** The run's result: see the file's header. `outputs` are the front door's readers of stdout and stderr. */
  async result(outputs?: Promise<[Captured, Captured]>): Promise<RunResult<string | Buffer>> {
    try {
      return await this.decide(outputs);
    } catch (e) {
      throw outOfDescriptors(e) ?? e;
    }
  }

  private async decide(outputs?: Promise<[Captured, Captured]>): Promise<RunResult<string | Buffer>> {
    await this.exited;
    const { exit, wallTimeMs, usage } = this.ended!;
    const opts = this.opts;
    const empty = { data: Buffer.alloc(0), truncated: false };
    const [out, err] = outputs ? await outputs : [empty, empty];
    if (this.failure !== null) throw this.failure.error;
    /*
     * Made ahead, and capsule-init died (killed from outside) without saying it had read its
     * run: the program was never forked, so nothing of the run happened (init.c, steps.h
     * CAPSULE_RECEIVED_MAGIC). Not a result: the caller launches the run again (src/ahead.ts).
     */
    if (
      this.begunAhead &&
      !exit.received &&
      exit.report === null &&
      exit.error === null &&
      this.intervention === null
    )
      throw new RunNotReceived(this.pid);
    const addon = native();
    const nOpts = this.nOpts!;
    const explain =
      this.trace && explainRun(opts, nOpts, addon.plan(nOpts), this.cgroupWrites, this.trace, exit);
    if (exit.error) {
      const e = await setupError(exit.error, errorContext(opts));
      if (explain) e.explain = explain;
      throw e;
    }

    const ended = decodeExit(exit, usage);
    const violation = securityViolation({ signal: ended.signal, violation: exit.report?.violation });
    const decided = decideVerdict({
      ...ended,
      intervention: this.intervention,
      wallTimeMs,
      usage,
      limits: opts.limits,
      violation,
    });
    const text = (b: Buffer) => (opts.encoding === 'buffer' ? b : b.toString('utf8'));
    return {
      ...decided,
      ...ended,
      violation,
      stdout: text(out.data),
      stderr: text(err.data),
      stdoutTruncated: out.truncated,
      stderrTruncated: err.truncated,
      wallTimeMs,
      peakMemoryBytes: usage?.peakMemoryBytes ?? null,
      oomKilled: usage?.oomKilled ?? false,
      pidsLimitHit: usage?.pidsLimitHit ?? false,
      aborted: this.intervention === 'aborted',
      limits: opts.limits,
      pid: this.pid,
      ...(explain ? { explain } : {}),
    };
  }
}

/*
 * The message that starts a sandbox made ahead (native/steps.h, struct capsule_go_header):
 * magic, argc, envc and the strings' length as 32-bit words in the machine's order, then
 * argv and env as NUL-terminated strings. Null when it would not fit the addon's limit.
 */
export function runMessage(argv: readonly string[], env: readonly string[]): Buffer | null {
  if (!runMessageFits(argv, env)) return null;
  const strings = Buffer.from([...argv, ...env].map((x) => `${x}\0`).join(''));
  const header = Buffer.alloc(16);
  const put =
    os.endianness() === 'LE' ? header.writeUInt32LE.bind(header) : header.writeUInt32BE.bind(header);
  put(RUN_MESSAGE_MAGIC, 0);
  put(argv.length, 4);
  put(env.length, 8);
  put(strings.length, 12);
  return Buffer.concat([header, strings]);
}
/** Whether argv and env fit one run message (their strings and NULs, counted without building it). */
export function runMessageFits(argv: readonly string[], env: readonly string[]): boolean {
  let bytes = 0;
  for (const x of argv) bytes += Buffer.byteLength(x) + 1;
  for (const x of env) bytes += Buffer.byteLength(x) + 1;
  return bytes <= native().runMessageMax;
}
/** CAPSULE_GO_MAGIC (native/steps.h). */
const RUN_MESSAGE_MAGIC = 0x676f2121;

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (!signal?.aborted) return;
  throw signal.reason instanceof Error ? signal.reason : new Error('run() aborted before start');
}

/** The addon's options for a resolved run (exported for tests that drive the addon directly). */
export function nativeOptions(
  o: ResolvedOptions,
  stdio: [number, number, number],
  cgroupFds: readonly number[],
  rlimits: ReturnType<typeof rlimitPlan>,
): NativeOptions {
  return {
    rootfs: o.rootfs,
    argv: ['capsule-init', ...o.argv],
    env: o.env,
    cwd: o.cwd,
    hostname: o.hostname,
    uid: o.uid,
    gid: o.gid,
    writableRoot: o.writableRoot,
    overlay: o.overlay,
    overlaySizeBytes: o.overlaySizeBytes,
    box: o.box,
    boxSizeBytes: o.boxSizeBytes,
    mountPoints: o.mountPoints,
    tmpSizeBytes: o.tmpSizeBytes,
    devPts: o.devPts,
    devShm: o.devShm,
    tmpNoexec: o.tmpNoexec,
    sys: o.sys,
    devShmSizeBytes: o.devShmSizeBytes,
    devNodes: o.devNodes,
    devices: o.devices.map((d) => ({ ...d, mode: deviceMode(d.access) })),
    binds: o.binds,
    cgroupFds: [...cgroupFds],
    rlimits,
    stdio,
    seccompFd: o.seccompFd,
    trace: o.explain,
    ...(rootlessMode() ? rootlessNativeOptions(o) : {}),
    ...(o.terminal
      ? {
          argv: ['capsule-init', '--tty', ...o.argv],
          terminal: { rows: o.terminal.rows, cols: o.terminal.cols },
        }
      : {}),
  };
}

function errorContext(o: ResolvedOptions) {
  return { rootfs: o.rootfs, rootfsArg: o.rootfsArg, program: o.argv[0]! };
}

function isStepError(e: unknown): e is NativeStepError {
  return typeof e === 'object' && e !== null && 'step' in e && 'errno' in e && !(e instanceof Error);
}
