/**
 * `capsule run -t`: the caller's terminal on one side, the sandbox's own pty on the other.
 *
 * The caller's terminal is put in raw mode for the run, so every key (^C, ^Z, ^\, ^D) goes
 * to the program's pty as a byte and its line discipline, not the caller's, turns it into
 * a signal for the program's foreground job. capsule itself gets no SIGINT or SIGTSTP from
 * the keyboard then. The mode is restored on every way out that leaves capsule running
 * code: the run's end, the program killed, a signal to capsule (which hangs up the
 * program's terminal, see program.ts), an exception (process 'exit'), and Node restores the
 * terminal state it found at startup when it exits (ResetStdio). Only SIGKILL of capsule
 * leaves it raw (`stty sane` or `reset` then), as for any terminal program.
 *
 * Bytes go both ways with back-pressure: keyboard input is piped into the terminal's
 * input (a Writable that waits for the pty to take each chunk), and output is forwarded to
 * stdout by the run's onOutput, which pauses reading the pty while stdout is full.
 */
import { isatty } from 'node:tty';

import { CapsuleError } from '../errors.js';
import { native } from '../native.js';
import type { SandboxTerminal, TerminalSize } from '../terminal.js';

/** The caller's terminal size, from its stdin (TIOCGWINSZ), or stdout's when stdin has none. */
export function callerWindowSize(): TerminalSize {
  const size = native().windowSize(0) ?? native().windowSize(1);
  return size ?? { rows: 0, cols: 0 };
}

/** The caller's terminal, held in raw mode for one `capsule run -t`. */
export class CallerTerminal {
  private attached: SandboxTerminal | null = null;
  private readonly restoreOnExit = () => this.restore();
  private readonly onResize = () => this.attached?.resize(callerWindowSize());
  /** The caller's settings from before raw mode (makeRaw), until restored. */
  private saved: Buffer | null = null;

  /** Refuses, in the CLI's words, when stdin is not a terminal (docker run -t says the same). */
  static open(): CallerTerminal {
    if (!isatty(0))
      throw new CapsuleError(
        'the input device is not a TTY: -t gives the program a terminal of its own and needs one on ' +
          'stdin to drive it; leave out -t (stdin then goes to the program as it is)',
      );
    const t = new CallerTerminal();
    /* Before anything can go wrong: the 'exit' hook restores the mode on any way out. */
    process.on('exit', t.restoreOnExit);
    /*
     * cfmakeraw(3), not Node's setRawMode: that leaves output processing on (ONLCR), so a
     * bare \n from a full-screen program inside would gain a carriage return here. Raw in
     * both directions, as ssh and docker make it, the screen gets the pty's bytes as written.
     */
    t.saved = native().makeRaw(0);
    return t;
  }

  /** Start pumping keyboard input into the sandbox's terminal and following window size changes. */
  attach(terminal: SandboxTerminal): void {
    this.attached = terminal;
    process.on('SIGWINCH', this.onResize);
    /* The size may have changed between the spawn and now. */
    this.onResize();
    process.stdin.pipe(terminal.input);
  }

  /** Back to the mode the caller had; stop reading the keyboard. Safe to call more than once. */
  restore(): void {
    process.off('SIGWINCH', this.onResize);
    process.off('exit', this.restoreOnExit);
    if (this.attached) process.stdin.unpipe(this.attached.input);
    this.attached = null;
    process.stdin.pause();
    const saved = this.saved;
    this.saved = null;
    if (saved) {
      try {
        native().restoreMode(0, saved);
      } catch {
        /* the terminal is gone (hung up): nothing to restore */
      }
    }
  }
}
