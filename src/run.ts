/**
 * run(): one program in one sandbox, start to result.
 *
 *   resolveOptions     validate and fill defaults (ConfigError, nothing started)
 *   cgroup             acquire the sandbox's cgroup from the pool, limits written
 *   stdio              pipes for what the caller captures or feeds, /dev/null for 'ignore'
 *   native().spawn     clone, set up, exec capsule-init (SetupError on any failed step)
 *   watch              wall and CPU timers, output caps, the caller's AbortSignal
 *   wait               the sandbox's pidfd on the event loop, stdout/stderr to EOF
 *   result             verdict, exit code or signal, times, memory, output; cgroup released
 */
import { closeSync, readdirSync, readFileSync } from 'node:fs';
import { availableParallelism, constants as osConstants } from 'node:os';

import { CgroupManager, type CgroupUsage, type SandboxCgroup, traceCgroupWrites } from './cgroup/index.js';
import { deviceCgroupLimits, deviceCgroupRules, deviceMode, setDeviceProgram } from './devices/index.js';
import { setupError } from './diagnose.js';
import { ConfigError, SetupError } from './errors.js';
import { acquireHostIds, type HostIdLease } from './ids.js';
import { checkRootless, delegatedCgroupManager, rootlessCgroupFailed, rootlessMode } from './rootless.js';
import { type CgroupWrite, explainPlan, explainRun, type ExplainStep } from './explain.js';
import { cgroupLimits, type Limits, rlimitPlan } from './limits.js';
import { native, type NativeExit, type NativeOptions, type NativeStepError } from './native.js';
import { resolveOptions, type ResolvedOptions, type RunOptions } from './options.js';
import { type Captured, capture, type OnChunkResult } from './output.js';
import { securityViolation, type Violation } from './seccomp/verdict.js';
import { childFds, feed } from './stdio.js';
import { decideVerdict, type Intervention, type Mechanism, type Verdict } from './verdict.js';
import { startWatchdog } from './watchdog.js';

export interface RunResult<Output extends string | Buffer = string> {
  /** How the run ended, for a judge: see {@link Verdict}. */
  verdict: Verdict;
  /** What ended it: see {@link Mechanism}. */
  mechanism: Mechanism;
  /**
   * For a SECURITY_VIOLATION verdict, the system call the seccomp profile stopped
   * (`{ syscall: 'socket', number: 41, abi: 'x86_64' }`); otherwise null.
   */
  violation: Violation | null;
  /** For a TIME_LIMIT verdict, which limit was passed; otherwise null. */
  timeLimit: 'cpu' | 'wall' | null;
  /** The program's exit code, or null when it was killed by a signal. */
  exitCode: number | null;
  /** The signal that killed the program (`'SIGSEGV'`), or null when it exited. */
  signal: NodeJS.Signals | null;
  /** Captured standard output, up to outputLimitBytes ('' or an empty Buffer when not captured). */
  stdout: Output;
  /** Captured standard error, up to outputLimitBytes. */
  stderr: Output;
  /** stdout passed outputLimitBytes and was cut there. */
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  /** From just before clone to the moment the sandbox was reaped, in milliseconds. */
  wallTimeMs: number;
  /**
   * User + system CPU time of every process of the sandbox, in ms: from the cgroup's
   * CPU accounting when the sandbox had a cgroup, else from capsule-init's rusage, a
   * lower bound (see {@link RunResult.accounting}).
   */
  cpuTimeMs: number;
  userCpuTimeMs: number;
  systemCpuTimeMs: number;
  /**
   * Peak memory of the whole sandbox in bytes, from its cgroup (v2 memory.peak, v1
   * memory.max_usage_in_bytes: page cache and tmpfs included); null without a memory cgroup.
   */
  peakMemoryBytes: number | null;
  /**
   * Peak resident set size of the largest single process of the sandbox, in bytes
   * (getrusage(2) ru_maxrss); null when capsule-init was killed before it could report it.
   * Always a lower bound, never used for a verdict: a process reaped by the kernel itself
   * (its parent ignores SIGCHLD) is not counted. {@link RunResult.peakMemoryBytes} is the figure.
   */
  maxRssBytes: number | null;
  /**
   * Where cpuTimeMs, userCpuTimeMs and systemCpuTimeMs come from. `'cgroup'`: the
   * sandbox's cgroup counted every process it ever had. `'rusage-lower-bound'`: there was
   * no cgroup CPU accounting (`cgroups: false` and no limit that needs one), so they come
   * from getrusage(2), which misses processes the kernel reaped itself (SIGCHLD ignored or
   * SA_NOCLDWAIT): a program can hide CPU time there. Verdicts never rest on rusage.
   */
  accounting: 'cgroup' | 'rusage-lower-bound';
  /** The cgroup's OOM killer killed a process of the sandbox. */
  oomKilled: boolean;
  /** A fork or clone failed at pidsLimit. */
  pidsLimitHit: boolean;
  /** True when `signal` (the AbortSignal option) ended the run. */
  aborted: boolean;
  /** The limits the run had, as resolved (null where none). */
  limits: Limits;
  /** The host PID the sandbox's PID 1 had. */
  pid: number;
  /** With the `explain` option: every step of the sandbox's construction, timed. */
  explain?: ExplainStep[];
}

/**
 * Each signal number by the name `kill -l` gives it. os.constants.signals also lists
 * aliases (SIGIOT for 6, SIGPOLL for 29; SIGCLD, SIGUNUSED elsewhere), and a map built
 * from it would keep whichever came last: the aliases never name a number.
 */
const SIGNAL_ALIASES = new Set(['SIGIOT', 'SIGPOLL', 'SIGCLD', 'SIGUNUSED', 'SIGINFO', 'SIGLOST']);
const signalNames = new Map<number, NodeJS.Signals>(
  Object.entries(osConstants.signals)
    .filter(([name]) => !SIGNAL_ALIASES.has(name))
    .map(([name, n]) => [n, name as NodeJS.Signals]),
);

/** How long capsule-init gets to kill, reap and report after CAPSULE_SIG_TERMINATE before SIGKILL. */
const TERMINATE_GRACE_MS = 1000;

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

/** The sandbox's cgroup, or null when it needs none and none is usable. */
async function acquireCgroup(
  o: ResolvedOptions,
  writes: CgroupWrite[] | null,
  manager: CgroupManager = cgroupManager(o.cgroupParent),
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
  const limits = { ...base, ...deviceCgroupLimits(o, manager.layout) };
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

export function run(options: RunOptions & { encoding: 'buffer' }): Promise<RunResult<Buffer>>;
export function run(options: RunOptions): Promise<RunResult<string>>;
export async function run(options: RunOptions): Promise<RunResult<string | Buffer>> {
  try {
    return await runChecked(options);
  } catch (e) {
    throw outOfDescriptors(e) ?? e;
  }
}

async function runChecked(options: RunOptions): Promise<RunResult<string | Buffer>> {
  const opts = resolveOptions(options);
  const rlimits = rlimitPlan(opts.limits);
  throwIfAborted(options.signal);
  native(); /* fail on a missing addon before taking a cgroup */
  /* Without CAP_SYS_ADMIN: a user namespace of the sandbox's own, no cgroup (src/rootless.ts). */
  const rootless = rootlessMode();
  const delegated = rootless ? delegatedCgroupManager(opts.cgroupParent) : null;
  if (rootless) checkRootless(options, opts, delegated !== null);
  const cgroupWrites: CgroupWrite[] = [];
  const writes = opts.explain ? cgroupWrites : null;
  const cgroup = !rootless
    ? await acquireCgroup(opts, writes)
    : delegated &&
      (await acquireCgroup(opts, writes, delegated).catch(rootlessCgroupFailed(opts, delegated)));
  let ids: HostIdLease | null = null;
  try {
    ids = opts.hostIds === 'unique' && !rootless ? acquireHostIds(opts.hostIdRange) : null;
    return await runInCgroup(opts, options, rlimits, cgroup, cgroupWrites, ids);
  } finally {
    /* The sandbox is gone (its PID 1 reaped, and with it every process it had): its host id is free. */
    ids?.release();
    /* Back to the pool (or removed); one that cannot be emptied is kept for close() and `capsule gc`. */
    await cgroup?.release().catch((e: Error) => process.emitWarning(e.message, 'CapsuleWarning'));
  }
}

async function runInCgroup(
  opts: ResolvedOptions,
  options: RunOptions,
  rlimits: ReturnType<typeof rlimitPlan>,
  cgroup: SandboxCgroup | null,
  cgroupWrites: CgroupWrite[],
  ids: HostIdLease | null,
): Promise<RunResult<string | Buffer>> {
  const addon = native();
  const signal = options.signal;
  const opened: number[] = [];
  let sandbox: LiveSandbox | undefined;
  let exited!: (e: NativeExit) => void;
  const exit = new Promise<NativeExit>((resolve) => (exited = resolve));
  const onExit = (e: NativeExit) => {
    /* In the callback that reaped it: from here on no handle or timer of this run can signal anything. */
    sandbox?.reaped();
    exited(e);
  };

  /*
   * The abort listener goes in before the clone, so no abort is lost: one before this line
   * rejects (nothing was started), one while the clone is in flight on the pool thread
   * kills the sandbox as soon as there is one.
   */
  throwIfAborted(signal);
  let abortRequested = false;
  let onAbort: () => void = () => void (abortRequested = true);
  const abortListener = () => onAbort();
  signal?.addEventListener('abort', abortListener, { once: true });

  const start = performance.now();
  let spawned;
  let nOpts;
  try {
    const stdio = childFds(opts, opened);
    /* On cgroup v2 the child is born in its cgroup; only v1 hierarchies (hybrid) are joined by writing "0". */
    const into = cgroup?.cloneInto ?? null;
    nOpts = nativeOptions(opts, stdio, into ? into.otherJoinFds : (cgroup?.joinFds ?? []), rlimits);
    if (into) nOpts.cgroupDirFd = into.dirFd;
    if (ids) Object.assign(nOpts, { hostUid: ids.uid, hostGid: ids.gid });
    spawned = await addon.spawn(nOpts, onExit);
  } catch (e) {
    signal?.removeEventListener('abort', abortListener);
    if (isStepError(e)) {
      const err = await setupError(e, errorContext(opts));
      if (e.trace && nOpts)
        err.explain = explainRun(opts, nOpts, addon.plan(nOpts), cgroupWrites, e.trace, null);
      throw err;
    }
    throw e;
  } finally {
    for (const fd of opened) closeSync(fd);
  }
  const live = (sandbox = new LiveSandbox(spawned.pid, spawned.id));
  const pid = spawned.pid;

  /* capsule's interventions: the first one decides the verdict; each ends the sandbox. */
  let intervention: Intervention = null;
  const intervene = (why: Exclude<Intervention, null>) => {
    if (intervention !== null) return;
    intervention = why;
    live.terminate();
  };
  /*
   * Whatever throws once the sandbox runs (onSpawn, onOutput, a stream) ends it at once,
   * and run() rejects only after it was reaped: it never settles while the sandbox lives.
   */
  let failure: { error: unknown } | null = null;
  const fail = (error: unknown) => {
    failure ??= { error };
    live.kill(osConstants.signals.SIGKILL);
  };

  const [stdinFd, stdoutFd, stderrFd] = spawned.stdio;
  let outputs: Promise<[Captured, Captured]> | undefined;
  let stopWatchdog = () => {};
  try {
    if (stdinFd >= 0) {
      if (typeof opts.stdin === 'string' || opts.stdin instanceof Uint8Array) feed(stdinFd, opts.stdin);
      else closeSync(stdinFd);
    }
    const cap = opts.limits.outputLimitBytes;
    const onCap = () => intervene('output_cap');
    const onOutput = options.onOutput;
    const forward = (stream: 'stdout' | 'stderr') =>
      onOutput &&
      ((c: Buffer): OnChunkResult => {
        /* Its answer goes through: false (reader gone) closes the pipe, a promise paces reading. */
        try {
          const more = onOutput(stream, c);
          if (more instanceof Promise) {
            return more.catch((e: unknown) => {
              fail(e);
              return false;
            });
          }
          return more;
        } catch (e) {
          fail(e);
          return false;
        }
      });
    outputs = Promise.all([
      capture(stdoutFd, cap, onCap, forward('stdout')),
      capture(stderrFd, cap, onCap, forward('stderr')),
    ]);

    stopWatchdog = startWatchdog({
      startedAt: start,
      wallTimeLimitMs: opts.limits.wallTimeLimitMs,
      cpuTimeLimitMs: opts.limits.cpuTimeLimitMs,
      readCpuMs: () => cgroup?.cpuTimeMs() ?? null /* one counter file, not the whole usage() */,
      parallelism: parallelism(opts.limits),
      onLimit: intervene,
    });
    onAbort = () => intervene('aborted');
    if (abortRequested || signal?.aborted) onAbort();
    options.onSpawn?.({ pid, kill: (name) => live.kill(osConstants.signals[name]) });
  } catch (e) {
    fail(e);
  }

  const result = await exit;
  const wallTimeMs = performance.now() - start;
  stopWatchdog();
  signal?.removeEventListener('abort', abortListener);
  const usage = cgroup?.usage() ?? null;
  const empty = { data: Buffer.alloc(0), truncated: false };
  if (!outputs) for (const fd of [stdoutFd, stderrFd]) if (fd >= 0) closeSync(fd);
  const [out, err] = outputs ? await outputs : [empty, empty];
  if (failure !== null) throw (failure as { error: unknown }).error;
  const explain =
    spawned.trace && explainRun(opts, nOpts, addon.plan(nOpts), cgroupWrites, spawned.trace, result);
  if (result.error) {
    const err = await setupError(result.error, errorContext(opts));
    if (explain) err.explain = explain;
    throw err;
  }

  const ended = decodeExit(result, usage);
  const violation = securityViolation({ signal: ended.signal, violation: result.report?.violation });
  const decided = decideVerdict({
    ...ended,
    intervention,
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
    aborted: intervention === 'aborted',
    limits: opts.limits,
    pid,
    ...(explain ? { explain } : {}),
  };
}

/**
 * The steps a run with these options would take, with their arguments, without running
 * anything (`capsule explain`). Validates the options as run() does.
 */
export function explainOptions(options: RunOptions): ExplainStep[] {
  const opts = resolveOptions(options);
  const rlimits = rlimitPlan(opts.limits);
  const limits = cgroupLimits(opts.limits);
  const parts = Object.entries(limits).map(([k, v]) => `${k}=${String(v)}`);
  if (opts.devices.length > 0) {
    const rules = deviceCgroupRules(opts.devNodes, opts.devices, opts.devPts);
    parts.push(
      `devices (v1 devices.allow or a v2 BPF program) ${rules.map((r) => `${r.type} ${r.major}:${r.minor} ${r.access}`).join(', ')}`,
    );
  }
  const note =
    opts.cgroups || parts.length > 0
      ? `a pooled cgroup under ${opts.cgroupParent}/: ${parts.join(', ') || 'accounting only'}`
      : null;
  /* A placeholder is enough for join_cgroup to say what it would do. */
  const n = nativeOptions(opts, [0, 1, 2], note ? [-1] : [], rlimits);
  return explainPlan(opts, n, native().plan(n), note);
}

/**
 * One spawned sandbox, as run() holds it: signalled only through its own pidfd (the
 * addon's watcher for this spawn, never a PID lookup), with every timer it armed
 * cancelled once it is reaped. After that, kill() is a no-op that returns false.
 */
class LiveSandbox {
  private graceTimer: NodeJS.Timeout | undefined;
  private gone = false;

  constructor(
    readonly pid: number,
    private readonly id: number,
  ) {}

  kill(signal: number | undefined): boolean {
    if (this.gone || signal === undefined) return false;
    return native().kill(this.pid, this.id, signal);
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

  /** Called where the addon reaped it: nothing of this run reaches anything from here on. */
  reaped(): void {
    this.gone = true;
    clearTimeout(this.graceTimer);
  }
}

/**
 * Running out of file descriptors (EMFILE at RLIMIT_NOFILE, ENFILE at the system's
 * fs.file-max) can hit any step of a run: compiling the seccomp filter into a memfd,
 * opening a cgroup file, the pipes. Whichever it was, the caller gets one SetupError that
 * names the limit and what to do, not a message that blames the step (or the seccomp
 * profile). Nothing is kept broken: the next run works as soon as descriptors are free.
 */
function outOfDescriptors(e: unknown): SetupError | null {
  if (typeof e !== 'object' || e === null) return null;
  const err = e as {
    code?: unknown;
    message?: unknown;
    syscall?: unknown;
    path?: unknown;
    explain?: unknown;
  };
  const text = typeof err.message === 'string' ? err.message : '';
  let code: 'EMFILE' | 'ENFILE' | null = null;
  if (err.code === 'ENFILE' || /\bENFILE\b|Too many open files in system/.test(text)) code = 'ENFILE';
  else if (err.code === 'EMFILE' || /\bEMFILE\b|Too many open files/.test(text)) code = 'EMFILE';
  if (code === null) return null;
  let what: string;
  let hint: string;
  if (code === 'ENFILE') {
    what = 'the system ran out of file descriptors (fs.file-max)';
    hint = 'close some, or raise fs.file-max (see /proc/sys/fs/file-nr)';
  } else {
    /* Both reads need a descriptor of their own: say what can be said. */
    let soft = '';
    let open = '';
    try {
      soft = /^Max open files\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? '';
      open = String(readdirSync('/proc/self/fd').length - 1);
    } catch {
      /* still none free */
    }
    const now = soft ? ` (${open ? `${open} open, ` : ''}soft limit ${soft})` : '';
    what = `this process ran out of file descriptors at its RLIMIT_NOFILE${now}`;
    hint =
      'raise the limit (`ulimit -n`, LimitNOFILE= in a systemd unit) or close descriptors: a run needs about ' +
      "a dozen of its own, and capsule's cgroup pool keeps a few per pooled cgroup; the next run works once " +
      'descriptors are free';
  }
  const syscall =
    typeof err.syscall === 'string' ? err.syscall : e instanceof SetupError ? e.syscall : 'open';
  const wrapped = new SetupError(`capsule could not set up the sandbox: ${what}: ${hint} (${text})`, {
    step: e instanceof SetupError ? e.step : 'prepare',
    syscall,
    errno: code === 'EMFILE' ? osConstants.errno.EMFILE : osConstants.errno.ENFILE,
    code,
    path: typeof err.path === 'string' ? err.path : '',
    hint,
  });
  if (e instanceof SetupError) wrapped.explain = e.explain;
  wrapped.cause = e;
  return wrapped;
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (!signal?.aborted) return;
  throw signal.reason instanceof Error ? signal.reason : new Error('run() aborted before start');
}

function decodeExit(e: NativeExit, usage: CgroupUsage | null) {
  let exitCode: number | null = null;
  let signal: NodeJS.Signals | null = null;
  let userUs: number;
  let systemUs: number;
  let maxRssBytes: number | null = null;
  if (e.report) {
    const ws = e.report.waitStatus;
    if ((ws & 0x7f) === 0) exitCode = (ws >> 8) & 0xff;
    else signal = signalNames.get(ws & 0x7f) ?? null;
    userUs = e.report.userCpuUs;
    systemUs = e.report.systemCpuUs;
    maxRssBytes = e.report.maxRssKiB * 1024;
  } else {
    /* capsule-init itself was killed: what it reaped is lost with it, so count its own time. */
    if (e.initCode === 'exited') exitCode = e.initStatus;
    else signal = signalNames.get(e.initStatus) ?? null;
    userUs = e.initUserCpuUs;
    systemUs = e.initSystemCpuUs;
  }
  /* The cgroup counts every process, even ones killed before capsule-init could reap them. */
  if (usage !== null && usage.cpuTimeMs !== null) {
    return {
      exitCode,
      signal,
      cpuTimeMs: usage.cpuTimeMs,
      userCpuTimeMs: usage.userCpuMs ?? userUs / 1000,
      systemCpuTimeMs: usage.systemCpuMs ?? systemUs / 1000,
      maxRssBytes,
      accounting: 'cgroup' as const,
    };
  }
  return {
    exitCode,
    signal,
    cpuTimeMs: (userUs + systemUs) / 1000,
    userCpuTimeMs: userUs / 1000,
    systemCpuTimeMs: systemUs / 1000,
    maxRssBytes,
    accounting: 'rusage-lower-bound' as const,
  };
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
    ...(rootlessMode() ? { rootless: true } : {}),
  };
}

function errorContext(o: ResolvedOptions) {
  return { rootfs: o.rootfs, rootfsArg: o.rootfsArg, program: o.argv[0]! };
}

function isStepError(e: unknown): e is NativeStepError {
  return typeof e === 'object' && e !== null && 'step' in e && 'errno' in e && !(e instanceof Error);
}
