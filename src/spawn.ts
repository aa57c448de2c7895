/**
 * spawn(): a sandbox whose stdin, stdout and stderr are Node streams, for programs that
 * talk while they run (a server answering one request per line, an interactor). A thin
 * layer over the sandbox lifecycle (src/lifecycle.ts), as run() is:
 *
 *   resolveOptions     at once, in the caller's tick: bad options throw a ConfigError
 *   streams            made at once, attached to the pipes once the sandbox runs
 *   launch             cgroup, host ids, clone, set up, exec (the same as run())
 *   result             once the sandbox is reaped and its output pipes reached EOF
 *
 * Back-pressure goes both ways and nothing is buffered without bound in Node:
 * - stdout/stderr: a Readable over the pipe that stops reading the pipe while its buffer
 *   is full (push() returned false), so a program writing to a slow reader blocks on its
 *   full pipe, as it would writing to a slow reader directly.
 * - stdin: a Writable whose write callback is the pipe write's completion, so write()
 *   returns false once the pipe and the stream's buffer are full and 'drain' comes when
 *   the program has read.
 */
import { closeSync } from 'node:fs';
import { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import { Readable, Writable } from 'node:stream';

import { ConfigError } from './errors.js';
import { LaunchedSandbox } from './lifecycle.js';
import { type ResolvedOptions, resolveOptions, type RunOptions, type StdioOption } from './options.js';
import type { Captured } from './output.js';
import type { RunResult } from './result.js';
import { feed } from './stdio.js';

/** spawn()'s options: run()'s, with stdio streamed. */
export interface SpawnOptions extends Omit<
  RunOptions,
  'stdin' | 'stdout' | 'stderr' | 'encoding' | 'onOutput' | 'terminal'
> {
  /**
   * `'pipe'`: the program's stdin is {@link SpawnedSandbox.stdin}, a Writable; ending it
   * (`stdin.end()`) delivers EOF. A string or Buffer is fed as run() feeds it, `{ file }`,
   * `'inherit'`, `'ignore'` or a descriptor as for run(); `stdin` is then null.
   * @default 'pipe'
   */
  stdin?: string | Uint8Array | { file: string } | StdioOption;
  /**
   * `'pipe'`: {@link SpawnedSandbox.stdout} is a Readable of what the program writes, and
   * that output is not also kept: the result's `stdout` is ''. Other choices as for run().
   * @default 'pipe'
   */
  stdout?: StdioOption;
  /** As `stdout`, for standard error. @default 'pipe' */
  stderr?: StdioOption;
}

/** A running sandbox with streams, as spawn() returns it. */
export interface SpawnedSandbox {
  /** The program's stdin with stdin 'pipe' (the default), else null. End it to deliver EOF. */
  readonly stdin: Writable | null;
  /** The program's stdout with stdout 'pipe' (the default), else null. */
  readonly stdout: Readable | null;
  /** The program's stderr with stderr 'pipe' (the default), else null. */
  readonly stderr: Readable | null;
  /**
   * The host PID of the sandbox's PID 1 (capsule-init), once it runs; rejects as `result`
   * does when the sandbox could not be set up.
   */
  readonly pid: Promise<number>;
  /**
   * Send a signal through the sandbox's pidfd: capsule-init forwards SIGTERM, SIGINT,
   * SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH to the program; SIGKILL ends the whole
   * sandbox at once. A signal sent before the sandbox runs is delivered as soon as it
   * does. Returns false once the sandbox was reaped (or never started); then it reaches
   * nothing, even if its PID was reused. @default 'SIGTERM'
   */
  kill(signal?: NodeJS.Signals): boolean;
  /**
   * The same RunResult as run()'s (verdict, exit code or signal, times, memory, limits),
   * with `stdout`/`stderr` '' for streams that were piped to the caller. Settles once the
   * sandbox was reaped (its cgroup released) and its output pipes reached EOF. Rejects
   * with a SetupError (or the AbortSignal's reason) when it could not start, and with a
   * stream's error when the caller destroyed a stream with one.
   */
  readonly result: Promise<RunResult<string>>;
}

/**
 * Start a sandbox whose stdio are Node streams, and return at once.
 *
 *   const box = spawn({ rootfs, argv: ['/bin/server'], wallTimeLimitMs: 60_000 });
 *   box.stdin.write('request\n');
 *   for await (const chunk of box.stdout) ...
 *   box.stdin.end();
 *   const r = await box.result;   // r.verdict, r.exitCode, r.cpuTimeMs, r.peakMemoryBytes
 *
 * - **Output is not kept.** What streams out through `stdout`/`stderr` is not also
 *   captured: `result.stdout`/`result.stderr` are ''. Read both (or destroy, or pass
 *   'ignore'): like a program writing to a full pipe, the sandbox blocks once a stream
 *   nobody reads is full, and `result` waits for it.
 * - **outputLimitBytes** applies to streamed output when given: each stream delivers at
 *   most that many bytes, then ends; the sandbox is ended with verdict OUTPUT_LIMIT and
 *   `stdoutTruncated`/`stderrTruncated` set. Without it there is no cap (run()'s default
 *   cap bounds the memory captured output takes, and streamed output takes none).
 * - **Destroying a stream** without an error closes that pipe: the program's writes to
 *   it fail with EPIPE (SIGPIPE), as in a shell pipeline when the reader exits, or it
 *   reads EOF on stdin; the run goes on. Destroying one with an error (as `pipeline()`
 *   does when a step fails) ends the sandbox at once, and `result` rejects with that
 *   error once the sandbox was reaped and its cgroup released.
 * - **A program that stops reading** (exits, closes its stdin): what is written to
 *   `stdin` after that is dropped, never an 'error' event (EPIPE is the program's doing,
 *   not the caller's). Once the sandbox was reaped, `stdin` accepts and drops writes.
 * - Bad options throw a ConfigError at once; a setup step that fails rejects `result`
 *   and `pid` with a SetupError, and the streams end empty.
 */
export function spawn(options: SpawnOptions): SpawnedSandbox {
  if ((options as RunOptions).onOutput !== undefined)
    throw new ConfigError(
      'onOutput is a run() option: with spawn(), read the stdout and stderr streams',
      'onOutput',
    );
  if ((options as RunOptions).terminal !== undefined)
    throw new ConfigError(
      "terminal is a run() option (and `capsule run -t`'s): spawn() gives the program pipes",
      'terminal',
    );
  if ((options as RunOptions).encoding !== undefined)
    throw new ConfigError(
      'encoding is a run() option: spawn() streams Buffers (use setEncoding() on a stream)',
      'encoding',
    );
  const opts = resolveOptions({
    ...options,
    stdin: options.stdin ?? 'pipe',
    stdout: options.stdout ?? 'pipe',
    stderr: options.stderr ?? 'pipe',
  });
  if (options.outputLimitBytes === undefined) opts.limits.outputLimitBytes = null;
  return streamed(
    opts,
    LaunchedSandbox.launch(opts, { signal: options.signal, onSpawn: options.onSpawn, options }),
  );
}

/**
 * What streamed() needs of a sandbox (or of one command in a sandbox): LaunchedSandbox
 * has it; a session's exec can give the same for a command it started.
 */
export type StreamableSandbox = Pick<
  LaunchedSandbox,
  'pid' | 'takeStdio' | 'kill' | 'intervene' | 'fail' | 'exited' | 'result'
>;

/**
 * The streams over a sandbox being launched: spawn()'s machinery, for any front door that
 * starts something with stdio 'pipe' (box.spawn in a session). Returns at once; `opts`
 * says which slots are streams ('pipe') and the cap (limits.outputLimitBytes).
 */
export function streamed(
  opts: Pick<ResolvedOptions, 'stdin' | 'stdout' | 'stderr' | 'limits'>,
  launched: Promise<StreamableSandbox>,
): SpawnedSandbox {
  const cap = opts.limits.outputLimitBytes;
  let sandbox: StreamableSandbox | null = null;
  let failed = false;
  const pendingSignals: NodeJS.Signals[] = [];
  /* A stream destroyed with an error: the sandbox ends (before it runs: as soon as it does). */
  let early: Error | undefined;
  const onError = (e: Error) => {
    if (sandbox) sandbox.fail(e);
    else early ??= e;
  };
  const onCap = () => sandbox?.intervene('output_cap');

  const stdin = opts.stdin === 'pipe' ? new InputStream(onError) : null;
  const stdout = opts.stdout === 'pipe' ? new OutputStream(cap, onCap, onError) : null;
  const stderr = opts.stderr === 'pipe' ? new OutputStream(cap, onCap, onError) : null;

  const result = launched.then(
    (sb) => {
      sandbox = sb;
      const inFd = sb.takeStdio(0);
      if (stdin) stdin.attach(inFd);
      else if (inFd >= 0) {
        if (typeof opts.stdin === 'string' || opts.stdin instanceof Uint8Array) feed(inFd, opts.stdin);
        else closeSync(inFd);
      }
      const outputs = Promise.all([
        stdout ? stdout.attach(sb.takeStdio(1)) : none,
        stderr ? stderr.attach(sb.takeStdio(2)) : none,
      ]);
      /*
       * Once the sandbox is reaped nobody else holds the pipes' write ends: what is left in
       * them (a pipe's capacity at most) is read to EOF so the result can count it, and
       * stdin's end is closed so no descriptor outlives the sandbox.
       */
      void sb.exited.then(() => {
        stdin?.close();
        stdout?.drain();
        stderr?.drain();
      });
      if (early) sb.fail(early);
      for (const s of pendingSignals.splice(0)) sb.kill(s);
      return sb.result(outputs) as Promise<RunResult<string>>;
    },
    (e: unknown) => {
      failed = true;
      stdin?.close();
      stdout?.attach(-1);
      stderr?.attach(-1);
      throw e;
    },
  );
  /* Rejections are the caller's to see when they await; never an unhandled rejection. */
  result.catch(() => {});
  const pid = launched.then((sb) => sb.pid);
  pid.catch(() => {});

  return {
    stdin,
    stdout,
    stderr,
    pid,
    result,
    kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (typeof signal !== 'string' || !Object.hasOwn(osConstants.signals, signal))
        throw new ConfigError(`kill: unknown signal ${String(signal)}`, 'signal');
      if (sandbox) return sandbox.kill(signal);
      if (failed) return false;
      pendingSignals.push(signal);
      return true;
    },
  };
}

const none: Captured = { data: Buffer.alloc(0), truncated: false };

/**
 * The program's stdout or stderr as a Readable, reading the pipe only while the stream
 * wants more (push() true): the program blocks on a full pipe while the caller is slow.
 * Past `cap` bytes the stream ends, the rest is read and dropped, and `onCap` is called.
 */
class OutputStream extends Readable {
  private socket: Socket | null = null;
  private wanted = false;
  private delivered = 0;
  private truncated = false;
  /** The sandbox is gone: read what is left to EOF whatever the stream's buffer holds. */
  private draining = false;
  private fdGone = false;
  private done!: (c: Captured) => void;
  private readonly captured = new Promise<Captured>((resolve) => (this.done = resolve));

  constructor(
    private readonly cap: number | null,
    private readonly onCap: () => void,
    private readonly onError: (e: Error) => void,
  ) {
    super();
  }

  /** Start reading the pipe `fd` (-1: nothing to read, the stream ends empty); settles at its EOF. */
  attach(fd: number): Promise<Captured> {
    if (fd < 0 || this.destroyed) {
      if (fd >= 0) closeSync(fd);
      this.finish();
      if (!this.destroyed) this.push(null);
      return this.captured;
    }
    const socket = (this.socket = new Socket({ fd, readable: true, writable: false }));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => {
      if (!this.truncated && !this.destroyed) this.push(null);
    });
    socket.on('error', (e) => this.destroy(e));
    socket.on('close', () => this.finish());
    if (!this.wanted && !this.draining) socket.pause();
    return this.captured;
  }

  drain(): void {
    this.draining = true;
    this.socket?.resume();
  }

  private onData(chunk: Buffer): void {
    if (this.truncated || this.destroyed) return; /* read and dropped until EOF */
    if (this.cap !== null && this.delivered + chunk.length > this.cap) {
      chunk = chunk.subarray(0, this.cap - this.delivered);
      this.truncated = true;
    }
    this.delivered += chunk.length;
    const more = chunk.length === 0 || this.push(chunk);
    if (this.truncated) {
      this.push(null);
      this.onCap();
      return; /* keep reading, to drop the rest */
    }
    if (!more && !this.draining) this.socket!.pause();
  }

  private finish(): void {
    if (this.fdGone) return;
    this.fdGone = true;
    this.done({ data: Buffer.alloc(0), truncated: this.truncated });
  }

  override _read(): void {
    this.wanted = true;
    this.socket?.resume();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (error) this.onError(error);
    /* Closing the read end: the program's next write gets EPIPE. 'close' then settles `captured`. */
    if (this.socket) this.socket.destroy();
    callback(error);
  }
}

/**
 * The program's stdin as a Writable. Each chunk's callback is the pipe write's
 * completion, so the stream's own buffer (highWaterMark) is all that waits in Node: a
 * program that does not read makes write() return false.
 */
class InputStream extends Writable {
  private socket: Socket | null = null;
  /** A write or end() that came before the pipe was there. */
  private waiting: (() => void) | null = null;
  /** The pipe is closed (EPIPE, the sandbox reaped, or it never started): writes are dropped. */
  private gone = false;
  /** The callback of the write or end() now in the pipe: answered by close() if the pipe goes first. */
  private inFlight: ((error?: Error | null) => void) | null = null;

  constructor(private readonly onError: (e: Error) => void) {
    super();
  }

  attach(fd: number): void {
    if (fd < 0 || this.gone || this.destroyed) {
      if (fd >= 0) closeSync(fd);
      this.close();
      return;
    }
    const socket = (this.socket = new Socket({ fd, readable: false, writable: true }));
    /* EPIPE: the program closed its stdin or exited. Not the caller's failure: drop what comes. */
    socket.on('error', () => this.close());
    socket.on('close', () => this.close());
    this.wake();
  }

  /** The pipe is gone: close our end, drop all further writes. */
  close(): void {
    this.gone = true;
    this.socket?.destroy();
    this.wake();
    const cb = this.inFlight;
    this.inFlight = null;
    cb?.();
  }

  private wake(): void {
    const w = this.waiting;
    this.waiting = null;
    w?.();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.gone) return callback();
    if (!this.socket) {
      this.waiting = () => this._write(chunk, _encoding, callback);
      return;
    }
    this.socket.write(chunk, this.answer(callback));
  }

  /** `callback`, called once: when the pipe took the data, or by close() when the pipe went first. */
  private answer(callback: (error?: Error | null) => void): () => void {
    this.inFlight = callback;
    return () => {
      if (this.inFlight !== callback) return; /* close() already answered it */
      this.inFlight = null;
      callback();
    };
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.gone) return callback();
    if (!this.socket) {
      this.waiting = () => this._final(callback);
      return;
    }
    /* end(): shutdown(2) of our end, then close: the program reads EOF. */
    this.socket.end(this.answer(callback));
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (error) this.onError(error);
    this.gone = true;
    this.socket?.destroy();
    callback(error);
  }
}
