/**
 * The descriptors a sandbox's stdin, stdout and stderr get, and feeding a
 * string or Buffer to its stdin.
 *
 * Two rules hold for every descriptor handed to the sandbox, whatever its origin
 * ('inherit', a number, `{ file }`):
 *
 * - **Never a directory, never an O_PATH descriptor.** A directory descriptor in the
 *   sandbox is an escape: `fchdir(0)` then `chdir("..")` walks the host's tree past
 *   pivot_root(2), which only moves the root of the mount namespace (the chroot
 *   breakout of chroot(2), with a descriptor instead of a cwd). An O_PATH
 *   descriptor names a host inode the same way (openat(2) "O_PATH"). Both are refused
 *   with a ConfigError naming the option.
 * - **Checked on the descriptor, not the name.** `{ file }` is opened once, without
 *   following a symlink in its last component, and fstat(2) of that descriptor decides:
 *   a name checked and opened later can be swapped in between (a symlink turned from a
 *   file to `/`, or a directory component renamed), which handed a host directory to
 *   the program (issue 9).
 *
 * And a program sees **blocking** stdio, as it would under a shell. Node puts the pipes,
 * sockets and ttys it wraps in non-blocking mode (libuv's uv_pipe_open, uv_tty_init), and
 * O_NONBLOCK is a flag of the open file description, which a descriptor passed down
 * shares: a program writing to such a stdout gets EAGAIN as soon as its reader is slower
 * (`yes | head -c 50000000 | (sleep 2; wc -c)` delivered 65,536 bytes). So:
 *
 * - a pipe or FIFO is reopened through /proc/self/fd/N: open(2) of that magic link makes
 *   a new open file description of the same pipe (proc(5)), blocking, that the program
 *   alone holds; Node's flags never reach it, whenever Node sets them.
 * - a terminal (a pty slave or a console) is reopened the same way, with O_NOCTTY (libuv
 *   does the same to make its own copy non-blocking); a pty master is passed as it is,
 *   since reopening /dev/ptmx would make a new pty.
 * - a socket cannot be reopened (open(2) of /proc/self/fd/N fails with ENXIO), and
 *   clearing O_NONBLOCK on the shared description would make Node's own reads and writes
 *   on it block the event loop: it is passed as it is. The CLI never wraps its own stdio
 *   before a run, so a socket it inherits stays as its caller made it; a library caller
 *   that wants a blocking stream for the program over a socket passes 'pipe'.
 * - regular files and other devices are passed as they are (O_NONBLOCK has no effect on
 *   a regular file, nor on /dev/null).
 */
import { closeSync, constants, fstatSync, openSync, type Stats } from 'node:fs';
import { Socket } from 'node:net';
import { isatty } from 'node:tty';

import { ConfigError } from './errors.js';
import { native } from './native.js';
import { type ResolvedOptions, splitDev, type StdioOption } from './options.js';

/** <asm-generic/fcntl.h>: Node's fs.constants has no O_PATH. */
const O_PATH = 0o10000000;
const O_ACCMODE = 3;
const SLOT_NAMES = ['stdin', 'stdout', 'stderr'] as const;
/** /dev/ptmx (and /dev/pts/ptmx) is character device 5:2 (Documentation/admin-guide/devices.txt). */
const PTMX_MAJOR = 5;
const PTMX_MINOR = 2;

type Slot = 0 | 1 | 2;
type Choice = string | Uint8Array | { file: string } | StdioOption;

/**
 * The parent descriptors for the child's 0, 1 and 2 (-1 asks the addon for a pipe).
 * Every descriptor this opens is pushed on `opened`, for the caller to close once the
 * child has its copies (also when this throws part way).
 */
export function childFds(
  o: Pick<ResolvedOptions, 'stdin' | 'stdout' | 'stderr'>,
  opened: number[],
): [number, number, number] {
  return [childFd(o.stdin, 0, opened), childFd(o.stdout, 1, opened), childFd(o.stderr, 2, opened)];
}

/**
 * Descriptor for the child's slot: -1 asks the addon for a pipe ('pipe', or
 * input to feed). The words 'pipe', 'inherit' and 'ignore' are choices, not
 * input: to feed one of them literally, pass a Buffer.
 */
function childFd(choice: Choice, slot: Slot, opened: number[]): number {
  if (choice === 'ignore') return keep(openSync('/dev/null', slot === 0 ? 'r' : 'w'), opened);
  if (choice === 'inherit') return checked(slot, slot, `${SLOT_NAMES[slot]}: 'inherit'`, opened);
  if (typeof choice === 'number') return checked(choice, slot, `${SLOT_NAMES[slot]}: ${choice}`, opened);
  if (typeof choice === 'object' && !(choice instanceof Uint8Array))
    return openStdinFile(choice.file, opened);
  return -1;
}

function keep(fd: number, opened: number[]): number {
  opened.push(fd);
  return fd;
}

function refuse(slot: Slot, message: string): never {
  throw new ConfigError(message, SLOT_NAMES[slot]);
}

/** The status flags and access mode of one of our descriptors (fcntl(2) F_GETFL), or null when it is not open. */
function fdFlags(fd: number): number | null {
  const flags = native().fdStatusFlags(fd);
  return flags < 0 ? null : flags;
}

/**
 * A descriptor the caller gave (a number, or its own 0/1/2 for 'inherit'): refused when it
 * is not open, a directory or O_PATH; reopened when it is a pipe, FIFO or terminal.
 */
function checked(fd: number, slot: Slot, what: string, opened: number[]): number {
  let st: Stats;
  try {
    st = fstatSync(fd);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'an error';
    refuse(
      slot,
      `${what} is not an open descriptor (fstat: ${code}): pass a descriptor this process has open`,
    );
  }
  const flags = fdFlags(fd);
  if (flags === null)
    refuse(
      slot,
      `${what}: fcntl(F_GETFL) refused descriptor ${fd}, so it cannot be checked before it is handed to the sandbox`,
    );
  if (flags & O_PATH)
    refuse(
      slot,
      `${what} is an O_PATH descriptor: it names a host file without opening it, and the sandbox must never get one; open the file for reading or writing`,
    );
  if (st.isDirectory())
    refuse(
      slot,
      `${what} is a directory: a directory descriptor lets the program walk the host's tree (fchdir then ".."), so capsule never hands one to the sandbox`,
    );
  if (st.isFIFO() || (st.isCharacterDevice() && isatty(fd) && !isPtmx(fd))) {
    return reopen(fd, flags & O_ACCMODE, st.isFIFO(), opened) ?? fd;
  }
  return fd;
}

function isPtmx(fd: number): boolean {
  const { major, minor } = splitDev(fstatSync(fd, { bigint: true }).rdev);
  return major === PTMX_MAJOR && minor === PTMX_MINOR;
}

/**
 * A new, blocking open file description of what `fd` refers to, opened through
 * /proc/self/fd/N with `fd`'s access mode; null when that is refused (the caller then
 * hands over `fd` itself: the check above has passed, only its blocking mode is not ours).
 *
 * A FIFO end opened read-only or write-only blocks until the other end has an opener
 * (fifo(7)): with a reader gone (`| head` that has exited) it would hang the event loop.
 * An O_RDWR open of a FIFO never blocks on Linux, and while we hold it both ends have one;
 * so it is opened first, the real open cannot block, and it is closed again at once
 * (before the program runs, so a reader that is gone still means EPIPE for the program).
 */
function reopen(fd: number, accmode: number, fifo: boolean, opened: number[]): number | null {
  const path = `/proc/self/fd/${fd}`;
  const flags = accmode | constants.O_NOCTTY; /* O_CLOEXEC: libuv adds it to every open */
  let hold = -1;
  try {
    if (fifo && accmode !== constants.O_RDWR) hold = openSync(path, constants.O_RDWR | constants.O_NOCTTY);
    return keep(openSync(path, flags), opened);
  } catch {
    return null;
  } finally {
    if (hold >= 0) closeSync(hold);
  }
}

/**
 * `stdin: { file }`: opened once, and the open descriptor is what is checked.
 *
 * O_NOFOLLOW: a symlink in the last component is refused rather than followed. Following
 * it once would be safe from the swap (the fstat below judges what was opened), but the
 * link could still point capsule, which runs as root, at a file the caller never meant to
 * feed, such as a link a previous program left in its output directory.
 * O_NONBLOCK: the first open neither waits for a FIFO's writer nor has the side effects of
 * opening a device before we know what it is; a FIFO is then reopened blocking for the
 * program (see below).
 */
function openStdinFile(file: string, opened: number[]): number {
  let fd: number;
  try {
    fd = keep(
      openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NOCTTY | constants.O_NONBLOCK),
      opened,
    );
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ELOOP')
      refuse(
        0,
        `stdin file ${file} is a symbolic link: capsule does not follow a link there (one swapped between a check and the open could hand the program a host directory or another file); give the file itself (the link's target)`,
      );
    if (err.code === 'ENOENT') refuse(0, `stdin file ${file} does not exist`);
    refuse(0, `stdin file ${file} cannot be opened for reading (open: ${err.code ?? err.message})`);
  }
  const st = fstatSync(fd);
  if (!st.isFile() && !st.isFIFO()) {
    const kind = st.isDirectory() ? 'a directory' : st.isSocket() ? 'a socket' : 'a device';
    refuse(0, `stdin file ${file} is ${kind}: stdin: { file } takes a regular file or a FIFO`);
  }
  if (st.isFile()) return fd; /* O_NONBLOCK means nothing to a regular file (open(2)) */
  /*
   * A FIFO: reopened blocking with reopen()'s read-write hold, so the open itself never
   * waits. A plain blocking open here would wait on Node's main thread for a writer, and
   * forever when the writer has already written and gone. The program then reads what is
   * in the pipe, and end of file once no writer holds it open: start the writer before
   * run() (a shell's `< fifo` would wait for one instead).
   */
  return reopen(fd, constants.O_RDONLY, true, opened) ?? fd;
}

/** Write `input` to the program's stdin pipe and close it. */
export function feed(fd: number, input: string | Uint8Array): void {
  const socket = new Socket({ fd, readable: false, writable: true });
  /* A program that exits without reading its input closes the pipe: EPIPE is not our failure. */
  socket.on('error', () => socket.destroy());
  socket.end(input);
}
