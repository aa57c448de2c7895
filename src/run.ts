/**
 * run(): one program in one sandbox, start to result.
 *
 *   resolveOptions     validate and fill defaults (ConfigError, nothing started)
 *   stdio              pipes for what the caller captures or feeds, /dev/null for 'ignore'
 *   native().spawn     clone, set up, exec capsule-init (SetupError on any failed step)
 *   wait               the sandbox's pidfd on the event loop, stdout/stderr to EOF
 *   result             exit code or signal, times, peak memory, output
 */
import { closeSync, openSync } from 'node:fs';
import { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';

import { setupError } from './diagnose.js';
import { native, type NativeExit, type NativeStepError } from './native.js';
import { resolveOptions, type ResolvedOptions, type RunOptions, type StdioOption } from './options.js';

export interface RunResult<Output extends string | Buffer = string> {
  /** The program's exit code, or null when it was killed by a signal. */
  exitCode: number | null;
  /** The signal that killed the program (`'SIGSEGV'`), or null when it exited. */
  signal: NodeJS.Signals | null;
  /** Captured standard output ('' or an empty Buffer when not captured). */
  stdout: Output;
  /** Captured standard error. */
  stderr: Output;
  /** From just before clone to the moment the sandbox was reaped, in milliseconds. */
  wallTimeMs: number;
  /** User + system CPU time of the program and every process it started, in milliseconds. */
  cpuTimeMs: number;
  userCpuTimeMs: number;
  systemCpuTimeMs: number;
  /**
   * Peak resident set size of the largest single process of the sandbox, in bytes
   * (getrusage(2) ru_maxrss); null when capsule-init was killed before it could report it.
   */
  maxRssBytes: number | null;
  /** True when `signal` (the AbortSignal option) ended the run. */
  aborted: boolean;
  /** The host PID the sandbox's PID 1 had. */
  pid: number;
}

const signalNames = new Map<number, NodeJS.Signals>(
  Object.entries(osConstants.signals).map(([name, n]) => [n, name as NodeJS.Signals]),
);

/** How long capsule-init gets to kill, reap and report after CAPSULE_SIG_TERMINATE before SIGKILL. */
const TERMINATE_GRACE_MS = 1000;

/**
 * Descriptor for the child's slot: -1 asks the addon for a pipe ('pipe', or
 * input to feed). The words 'pipe', 'inherit' and 'ignore' are choices, not
 * input: to feed one of them literally, pass a Buffer.
 */
function childFd(choice: string | Uint8Array | StdioOption, slot: 0 | 1 | 2, opened: number[]): number {
  if (choice === 'inherit') return slot;
  if (choice === 'ignore') {
    const fd = openSync('/dev/null', slot === 0 ? 'r' : 'w');
    opened.push(fd);
    return fd;
  }
  if (typeof choice === 'number') return choice;
  return -1;
}

function collect(fd: number, encoding: 'utf8' | 'buffer'): Promise<string | Buffer> {
  if (fd < 0) return Promise.resolve(encoding === 'buffer' ? Buffer.alloc(0) : '');
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = new Socket({ fd, readable: true, writable: false });
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => {}); /* EOF and errors both end in 'close' */
    socket.on('close', () => {
      const all = Buffer.concat(chunks);
      resolve(encoding === 'buffer' ? all : all.toString('utf8'));
    });
  });
}

function feed(fd: number, input: string | Uint8Array): void {
  const socket = new Socket({ fd, readable: false, writable: true });
  /* A program that exits without reading its input closes the pipe: EPIPE is not our failure. */
  socket.on('error', () => socket.destroy());
  socket.end(input);
}

/** Close a stdio pipe we made but will not use (stdin with no input). */
function closeUnused(fd: number) {
  if (fd >= 0) closeSync(fd);
}

export function run(options: RunOptions & { encoding: 'buffer' }): Promise<RunResult<Buffer>>;
export function run(options: RunOptions): Promise<RunResult<string>>;
export async function run(options: RunOptions): Promise<RunResult<string | Buffer>> {
  const opts = resolveOptions(options);
  if (options.signal?.aborted) {
    throw options.signal.reason instanceof Error
      ? options.signal.reason
      : new Error('run() aborted before start');
  }
  const addon = native();
  const opened: number[] = [];
  let exited!: (e: NativeExit) => void;
  const exit = new Promise<NativeExit>((resolve) => (exited = resolve));

  const start = performance.now();
  let spawned;
  try {
    const stdio: [number, number, number] = [
      childFd(opts.stdin, 0, opened),
      childFd(opts.stdout, 1, opened),
      childFd(opts.stderr, 2, opened),
    ];
    spawned = await addon.spawn(nativeOptions(opts, stdio), exited);
  } catch (e) {
    if (isStepError(e)) throw await setupError(e, errorContext(opts));
    throw e;
  } finally {
    for (const fd of opened) closeSync(fd);
  }

  const [stdinFd, stdoutFd, stderrFd] = spawned.stdio;
  if (stdinFd >= 0) {
    if (typeof opts.stdin === 'string' || opts.stdin instanceof Uint8Array) feed(stdinFd, opts.stdin);
    else closeUnused(stdinFd);
  }
  const outputs = Promise.all([collect(stdoutFd, opts.encoding), collect(stderrFd, opts.encoding)]);

  let aborted = false;
  const onAbort = () => {
    aborted = true;
    terminate(spawned.pid);
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  options.onSpawn?.({
    pid: spawned.pid,
    kill: (signal) => addon.kill(spawned.pid, osConstants.signals[signal]),
  });

  const result = await exit;
  const wallTimeMs = performance.now() - start;
  options.signal?.removeEventListener('abort', onAbort);
  const [stdout, stderr] = await outputs;
  if (result.error) throw await setupError(result.error, errorContext(opts));
  return { ...decodeExit(result), stdout, stderr, wallTimeMs, aborted, pid: spawned.pid };
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

function decodeExit(e: NativeExit) {
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
  return {
    exitCode,
    signal,
    cpuTimeMs: (userUs + systemUs) / 1000,
    userCpuTimeMs: userUs / 1000,
    systemCpuTimeMs: systemUs / 1000,
    maxRssBytes,
  };
}

function nativeOptions(o: ResolvedOptions, stdio: [number, number, number]) {
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
    devShmSizeBytes: o.devShmSizeBytes,
    devNodes: o.devNodes,
    binds: o.binds,
    cgroupFds: [],
    rlimits: [],
    stdio,
    seccompFd: -1,
  };
}

function errorContext(o: ResolvedOptions) {
  return { rootfs: o.rootfs, rootfsArg: o.rootfsArg, program: o.argv[0]! };
}

function isStepError(e: unknown): e is NativeStepError {
  return typeof e === 'object' && e !== null && 'step' in e && 'errno' in e && !(e instanceof Error);
}
