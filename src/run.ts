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
import { closeSync, openSync } from 'node:fs';
import { Socket } from 'node:net';
import { availableParallelism, constants as osConstants } from 'node:os';

import type { CgroupManager, CgroupUsage, SandboxCgroup } from './cgroup/index.js';
import { deviceCgroupLimits, deviceCgroupRules, deviceMode, setDeviceProgram } from './devices/index.js';
import { ConfigError } from './errors.js';
import { acquireHostIds, type HostIdLease } from './ids.js';
import { type CgroupWrite, explainPlan, explainRun, type ExplainStep } from './explain.js';
import { cgroupLimits, type Limits, rlimitPlan } from './limits.js';
import { native, type NativeExit, type NativeOptions, type NativeStepError } from './native.js';
import { resolveOptions, type ResolvedOptions, type RunOptions, type StdioOption } from './options.js';
import { capture } from './output.js';
import { securityViolation, type Violation } from './seccomp/verdict.js';
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
   * CPU accounting when the sandbox had a cgroup, else from capsule-init's rusage.
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
   */
  maxRssBytes: number | null;
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

const signalNames = new Map<number, NodeJS.Signals>(
  Object.entries(osConstants.signals).map(([name, n]) => [n, name as NodeJS.Signals]),
);

/** How long capsule-init gets to kill, reap and report after CAPSULE_SIG_TERMINATE before SIGKILL. */
const TERMINATE_GRACE_MS = 1000;

/*
 * The cgroup layer and the exec diagnosis are loaded when first needed: a run that takes
 * no cgroup (a plain `capsule run`) and does not fail should not pay for their modules,
 * and module loading is most of a Node process's start-up.
 */
let cgroupLayer: typeof import('./cgroup/index.js') | undefined;
async function loadCgroupLayer() {
  return (cgroupLayer ??= await import('./cgroup/index.js'));
}
async function setupError(rec: NativeStepError, ctx: ReturnType<typeof errorContext>) {
  return (await import('./diagnose.js')).setupError(rec, ctx);
}

/** One CgroupManager (and its pool) per cgroup parent, for the life of the process. */
const managers = new Map<string, CgroupManager>();
async function cgroupManager(parent: string): Promise<CgroupManager> {
  let m = managers.get(parent);
  if (!m) {
    const { CgroupManager } = await loadCgroupLayer();
    m = new CgroupManager({ parent, setDeviceProgram });
    managers.set(parent, m);
  }
  return m;
}

/** The sandbox's cgroup, or null when it needs none and none is usable. */
async function acquireCgroup(
  o: ResolvedOptions,
  writes: CgroupWrite[] | null,
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
  const manager = await cgroupManager(o.cgroupParent);
  const limits = { ...base, ...deviceCgroupLimits(o, manager.layout) };
  const needed = Object.keys(limits).length > 0 || o.limits.cpuTimeLimitMs !== null;
  if (!o.cgroups && !needed) return null;
  const { traceCgroupWrites } = await loadCgroupLayer();
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

/**
 * Descriptor for the child's slot: -1 asks the addon for a pipe ('pipe', or
 * input to feed). The words 'pipe', 'inherit' and 'ignore' are choices, not
 * input: to feed one of them literally, pass a Buffer.
 */
function childFd(
  choice: string | Uint8Array | { file: string } | StdioOption,
  slot: 0 | 1 | 2,
  opened: number[],
): number {
  if (choice === 'inherit') return slot;
  if (typeof choice === 'object' && !(choice instanceof Uint8Array)) {
    const fd = openSync(choice.file, 'r');
    opened.push(fd);
    return fd;
  }
  if (choice === 'ignore') {
    const fd = openSync('/dev/null', slot === 0 ? 'r' : 'w');
    opened.push(fd);
    return fd;
  }
  if (typeof choice === 'number') return choice;
  return -1;
}

function feed(fd: number, input: string | Uint8Array): void {
  const socket = new Socket({ fd, readable: false, writable: true });
  /* A program that exits without reading its input closes the pipe: EPIPE is not our failure. */
  socket.on('error', () => socket.destroy());
  socket.end(input);
}

export function run(options: RunOptions & { encoding: 'buffer' }): Promise<RunResult<Buffer>>;
export function run(options: RunOptions): Promise<RunResult<string>>;
export async function run(options: RunOptions): Promise<RunResult<string | Buffer>> {
  const opts = resolveOptions(options);
  const rlimits = rlimitPlan(opts.limits);
  if (options.signal?.aborted) {
    throw options.signal.reason instanceof Error
      ? options.signal.reason
      : new Error('run() aborted before start');
  }
  native(); /* fail on a missing addon before taking a cgroup */
  const cgroupWrites: CgroupWrite[] = [];
  const cgroup = await acquireCgroup(opts, opts.explain ? cgroupWrites : null);
  let ids: HostIdLease | null = null;
  try {
    ids = opts.hostIds === 'unique' ? acquireHostIds(opts.hostIdRange) : null;
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
  const opened: number[] = [];
  let exited!: (e: NativeExit) => void;
  const exit = new Promise<NativeExit>((resolve) => (exited = resolve));

  const start = performance.now();
  let spawned;
  let nOpts;
  try {
    const stdio: [number, number, number] = [
      childFd(opts.stdin, 0, opened),
      childFd(opts.stdout, 1, opened),
      childFd(opts.stderr, 2, opened),
    ];
    /* On cgroup v2 the child is born in its cgroup; only v1 hierarchies (hybrid) are joined by writing "0". */
    const into = cgroup?.cloneInto ?? null;
    nOpts = nativeOptions(opts, stdio, into ? into.otherJoinFds : (cgroup?.joinFds ?? []), rlimits);
    if (into) nOpts.cgroupDirFd = into.dirFd;
    if (ids) Object.assign(nOpts, { hostUid: ids.uid, hostGid: ids.gid });
    spawned = await addon.spawn(nOpts, exited);
  } catch (e) {
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
  const pid = spawned.pid;

  /* capsule's interventions: the first one decides the verdict; each ends the sandbox. */
  let intervention: Intervention = null;
  const intervene = (why: Exclude<Intervention, null>) => {
    if (intervention !== null) return;
    intervention = why;
    terminate(pid);
  };

  const [stdinFd, stdoutFd, stderrFd] = spawned.stdio;
  if (stdinFd >= 0) {
    if (typeof opts.stdin === 'string' || opts.stdin instanceof Uint8Array) feed(stdinFd, opts.stdin);
    else closeSync(stdinFd);
  }
  const cap = opts.limits.outputLimitBytes;
  const onCap = () => intervene('output_cap');
  const onOutput = options.onOutput;
  const outputs = Promise.all([
    capture(stdoutFd, cap, onCap, onOutput && ((c) => onOutput('stdout', c))),
    capture(stderrFd, cap, onCap, onOutput && ((c) => onOutput('stderr', c))),
  ]);

  const stopWatchdog = startWatchdog({
    startedAt: start,
    wallTimeLimitMs: opts.limits.wallTimeLimitMs,
    cpuTimeLimitMs: opts.limits.cpuTimeLimitMs,
    readCpuMs: () => cgroup?.cpuTimeMs() ?? null /* one counter file, not the whole usage() */,
    parallelism: parallelism(opts.limits),
    onLimit: intervene,
  });
  const onAbort = () => intervene('aborted');
  options.signal?.addEventListener('abort', onAbort, { once: true });
  options.onSpawn?.({ pid, kill: (signal) => addon.kill(pid, osConstants.signals[signal]) });

  const result = await exit;
  const wallTimeMs = performance.now() - start;
  stopWatchdog();
  options.signal?.removeEventListener('abort', onAbort);
  const usage = cgroup?.usage() ?? null;
  const [out, err] = await outputs;
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
 * End a sandbox: ask capsule-init to kill everything and report (so CPU time
 * and peak memory of a killed run are still known), then SIGKILL it if it has
 * not exited after a grace period. Both go through the pidfd.
 */
export function terminate(pid: number): void {
  const addon = native();
  if (!addon.kill(pid, addon.terminateSignal)) return;
  setTimeout(() => addon.kill(pid, osConstants.signals.SIGKILL), TERMINATE_GRACE_MS).unref();
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
    };
  }
  return {
    exitCode,
    signal,
    cpuTimeMs: (userUs + systemUs) / 1000,
    userCpuTimeMs: userUs / 1000,
    systemCpuTimeMs: systemUs / 1000,
    maxRssBytes,
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
  };
}

function errorContext(o: ResolvedOptions) {
  return { rootfs: o.rootfs, rootfsArg: o.rootfsArg, program: o.argv[0]! };
}

function isStepError(e: unknown): e is NativeStepError {
  return typeof e === 'object' && e !== null && 'step' in e && 'errno' in e && !(e instanceof Error);
}
