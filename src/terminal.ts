/**
 * The `terminal` option: a pseudo-terminal of the program's own.
 *
 * The program's stdin, stdout and stderr are the slave of a pty that native/tty.cc
 * allocates from the sandbox's private devpts (so `devPts` is implied), and it is the
 * session leader with that pty as its controlling terminal, in the foreground
 * (capsule-init's set_controlling_tty): job control, ^C and ^Z work inside as in a login
 * shell. capsule holds the master, received by descriptor (SCM_RIGHTS) before the program
 * ran. What the program writes to its terminal is the run's `stdout` (captured within
 * outputLimitBytes and streamed to `onOutput('stdout', ...)` as a pipe would be; stderr
 * goes to the same terminal, so the result's `stderr` is empty); what is typed goes
 * through the `terminal` handle `onSpawn` receives.
 *
 * Nothing the program does to its terminal (stty, raw mode, TIOCSTI, a hang-up) reaches
 * the caller's: the caller's terminal is never handed to the sandbox (docs/security.md).
 */
import { closeSync, write } from 'node:fs';
import { Writable } from 'node:stream';
import { ReadStream } from 'node:tty';

import { ConfigError } from './errors.js';
import { native } from './native.js';
import { type Captured, type OnChunkResult, readCapped } from './output.js';

/** A terminal's window size, in character cells. */
export interface TerminalSize {
  rows: number;
  cols: number;
}

/**
 * `true`: a terminal of the program's own, its window size unset (0 x 0) until
 * `resize()`; `{ rows, cols }`: with that size from the start. `keepOutput: false`: what the
 * program writes only streams to `onOutput` and is not kept for the result's `stdout`, and
 * outputLimitBytes then applies only when it is given (an interactive session, as
 * `capsule run -t` runs one, may write without end). @default keepOutput true
 */
export type TerminalOption = boolean | (Partial<TerminalSize> & { keepOutput?: boolean });

/** The `terminal` option, resolved. */
export interface ResolvedTerminal extends TerminalSize {
  keepOutput: boolean;
}

/** The caller's side of a sandbox's terminal, on the handle `onSpawn` receives. */
export interface SandboxTerminal {
  /**
   * What is typed into the terminal, as raw bytes: `^C` is `'\x03'`, `^Z` `'\x1a'`, `^D`
   * (end of input to a program reading lines) `'\x04'`; the terminal's line discipline
   * turns them into signals and EOF as a keyboard's would. Back-pressure: a write's callback
   * runs once the terminal took the bytes, so `source.pipe(input)` pauses a fast source while
   * the program does not read. Bytes written after the sandbox is gone are dropped, and once
   * the run has ended the stream is destroyed (a write then fails with ERR_STREAM_DESTROYED).
   */
  readonly input: Writable;
  /**
   * Set the window size (TIOCSWINSZ on the master): the kernel sends SIGWINCH to the
   * terminal's foreground process group. False once the terminal is gone.
   */
  resize(size: TerminalSize): boolean;
}

/** rows and cols: what TIOCSWINSZ takes (unsigned short). */
const MAX_CELLS = 65535;

/** The `terminal` option, validated: its first window size (0 x 0 unset), or null for none. */
export function resolveTerminal(o: {
  terminal?: unknown;
  stdin?: unknown;
  stdout?: unknown;
  stderr?: unknown;
}): ResolvedTerminal | null {
  const t = o.terminal;
  if (t === undefined || t === false) return null;
  let size: ResolvedTerminal = { rows: 0, cols: 0, keepOutput: true };
  if (typeof t === 'object' && t !== null) {
    const { rows, cols, keepOutput } = t as Partial<ResolvedTerminal>;
    if (keepOutput !== undefined && typeof keepOutput !== 'boolean')
      throw new ConfigError('terminal.keepOutput must be true or false', 'terminal');
    for (const [key, v] of [
      ['rows', rows],
      ['cols', cols],
    ] as const) {
      if (v !== undefined && (!Number.isSafeInteger(v) || v < 0 || v > MAX_CELLS))
        throw new ConfigError(
          `terminal.${key} must be an integer from 0 to ${MAX_CELLS}, got ${String(v)}`,
          'terminal',
        );
    }
    size = { rows: rows ?? 0, cols: cols ?? 0, keepOutput: keepOutput ?? true };
  } else if (t !== true) {
    throw new ConfigError('terminal must be true, false or { rows, cols }', 'terminal');
  }
  for (const slot of ['stdout', 'stderr'] as const) {
    if (o[slot] !== undefined && o[slot] !== 'pipe')
      throw new ConfigError(
        `${slot} cannot be set with terminal: the program's stdin, stdout and stderr are its terminal, ` +
          "whose output is the result's stdout (and onOutput's 'stdout')",
        slot,
      );
  }
  const stdin = o.stdin;
  /* 'ignore' (nothing typed) or input to type; the other stdio words are choices, not input. */
  const typed =
    (typeof stdin === 'string' && stdin !== 'inherit' && stdin !== 'pipe') || stdin instanceof Uint8Array;
  if (stdin !== undefined && !typed)
    throw new ConfigError(
      'stdin with terminal is a string or Buffer typed into the terminal at the start: ' +
        "for more, write to the terminal's input on the handle onSpawn receives",
      'stdin',
    );
  return size;
}

/** The master of one run's terminal, from spawn to close. */
export class TerminalMaster {
  private readonly reader: ReadStream;
  private readonly writer: TerminalInput;
  private closed = false;
  readonly handle: SandboxTerminal;

  /** fds: the addon's two descriptors of the master (read, write); this owns both. */
  constructor(fds: [number, number]) {
    const [readFd, writeFd] = fds;
    if (writeFd < 0) {
      closeSync(readFd);
      throw new Error("capsule: could not duplicate the terminal's master descriptor");
    }
    /*
     * tty.ReadStream, since net.Socket refuses a terminal. libuv leaves a master's blocking
     * mode alone (it only reopens a slave), and reads it only when epoll says it is readable,
     * so the event loop never waits on it. Reading pauses while a consumer is slow: the
     * program then blocks on its full terminal, as on a slow real one.
     */
    this.reader = new ReadStream(readFd);
    this.writer = new TerminalInput(writeFd);
    this.handle = {
      input: this.writer,
      resize: (size) => this.resize(size),
    };
  }

  /**
   * Read the terminal to its end (EIO from the master once every slave is closed: the sandbox
   * is gone), keeping at most capBytes as capture() does for a pipe; with keep false, nothing
   * is kept and capBytes counts what streamed through.
   */
  output(
    capBytes: number | null,
    onCap: () => void,
    onChunk: ((c: Buffer) => OnChunkResult) | undefined,
    keep: boolean,
  ): Promise<Captured> {
    /* EIO is the end of a terminal; nobody reading it any more hangs it up, as closing a window does. */
    return readCapped(this.reader, capBytes, onCap, onChunk, { keep, stop: () => this.close() });
  }

  resize(size: TerminalSize): boolean {
    if (this.closed) return false;
    for (const v of [size.rows, size.cols])
      if (!Number.isSafeInteger(v) || v < 0 || v > MAX_CELLS)
        throw new RangeError(
          `terminal size must be integers from 0 to ${MAX_CELLS}, got ${JSON.stringify(size)}`,
        );
    try {
      native().setWindowSize(this.writer.fd, size.rows, size.cols);
      return true;
    } catch {
      return false;
    }
  }

  /** Close capsule's ends of the master (the sandbox, if still there, sees a hang-up). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.reader.destroy();
    this.writer.destroy();
  }
}

/**
 * Writes to the master from libuv's pool (fs.write), one chunk at a time. A pty's input
 * queue is small (4 KiB), and a program that does not read leaves a write waiting: on a
 * pool thread that waits instead of the event loop, and the wait ends with EIO when the
 * sandbox is gone. The descriptor is closed only once no write is in flight, so its number
 * can never be reused under a pending write.
 */
class TerminalInput extends Writable {
  private writing = false;
  private gone = false;
  private fdClosed = false;
  /** _destroy's callback, waiting for the write in flight. */
  private onIdle: (() => void) | null = null;

  constructor(readonly fd: number) {
    super({ highWaterMark: 4096, decodeStrings: true });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (e?: Error | null) => void): void {
    if (this.gone) return callback();
    this.writing = true;
    let offset = 0;
    const next = (e: NodeJS.ErrnoException | null, n: number) => {
      /* EIO: the terminal was hung up (the sandbox is gone); what is typed after that is dropped. */
      if (e) this.gone = true;
      else offset += n;
      if (!this.gone && offset < chunk.length) {
        write(this.fd, chunk, offset, chunk.length - offset, null, next);
        return;
      }
      this.writing = false;
      this.onIdle?.();
      callback();
    };
    next(null, 0);
  }

  override _destroy(error: Error | null, callback: (e?: Error | null) => void): void {
    this.gone = true;
    const finish = () => {
      if (!this.fdClosed) closeSync(this.fd);
      this.fdClosed = true;
      callback(error);
    };
    if (this.writing) this.onIdle = finish;
    else finish();
  }
}
