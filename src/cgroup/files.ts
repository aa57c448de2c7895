/**
 * Synchronous reads and writes of cgroup control files. They are tiny (a number, a few
 * `key value` lines) and served from kernel memory, so a synchronous call costs a few
 * microseconds, less than a trip through the libuv thread pool would.
 */
import {
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  statfsSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { cgroupFsError } from './errors.js';

let writeTrace: ((path: string, value: string) => void) | null = null;

/**
 * Observe every successful cgroup file write as (path, value), in order: for `--explain`
 * style tracing and for tests that check the order of writes. Pass null to stop.
 */
export function traceCgroupWrites(fn: ((path: string, value: string) => void) | null): void {
  writeTrace = fn;
}

/**
 * mkdir(2) a cgroup directory (the kernel fills it with the controllers' files). With
 * `existingOk`, a directory that is already there (a parent another capsule made, perhaps
 * at the same moment) is fine. Returns whether this call made it.
 */
export function makeCgroupDir(path: string, controller: string | null, existingOk: boolean): boolean {
  if (existingOk && existsSync(path)) return false;
  try {
    mkdirSync(path);
    return true;
  } catch (cause) {
    if (existingOk && (cause as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw cgroupFsError('mkdir', path, controller, cause, `create ${path}`);
  }
}

/**
 * Write `value` to a cgroup file, as `echo value > path` would. O_WRONLY: some control files
 * are write-only (`cgroup.kill`, `memory.force_empty`) and kernfs refuses to open a file for
 * reading when it has no read handler. No O_CREAT: a missing file must fail (ENOENT: the
 * controller is not enabled there), also in a test fixture. O_TRUNC is a no-op on kernfs
 * and makes a fixture file hold exactly the last value written.
 */
export function writeCgroupFile(path: string, value: string, controller: string | null): void {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_TRUNC);
  } catch (cause) {
    throw cgroupFsError('write', path, controller, cause, `open ${path} for writing`);
  }
  try {
    // One write(2) call: cgroup files parse each write as one whole value.
    writeSync(fd, value);
  } catch (cause) {
    throw cgroupFsError('write', path, controller, cause, `write ${JSON.stringify(value)} to ${path}`);
  } finally {
    closeSync(fd);
  }
  writeTrace?.(path, value);
}

export function readCgroupFile(path: string, controller: string | null): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (cause) {
    throw cgroupFsError('read', path, controller, cause, `read ${path}`);
  }
}

/** Read a file that may legitimately be absent (an older kernel, swap accounting off). */
export function readOptionalFile(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** Parse a single-value file ("123\n"); `max` (v2 "no limit") becomes Infinity. */
export function parseSingle(text: string): number {
  const t = text.trim();
  return t === 'max' ? Infinity : Number(t);
}

/**
 * Parse a flat-keyed file (cgroup-v2.rst "Interface Files": `KEY VALUE` per line), as used
 * by memory.events, cpu.stat, pids.events and v1's memory.oom_control and memory.stat.
 */
export function parseFlatKeyed(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const sp = line.indexOf(' ');
    if (sp <= 0) continue;
    const v = Number(line.slice(sp + 1).trim());
    if (Number.isFinite(v)) out[line.slice(0, sp)] = v;
  }
  return out;
}

/** Parse cgroup.procs (one pid per line). */
export function parsePids(text: string): number[] {
  const out: number[] = [];
  for (const line of text.split('\n')) {
    const pid = Number(line);
    if (line !== '' && Number.isInteger(pid) && pid > 0) out.push(pid);
  }
  return out;
}

/**
 * The pids in `dir`/cgroup.procs, read afresh. A cgroup that is gone (the pool removed it
 * after its run, or close() did) holds no process: ENOENT on the directory is an empty list.
 */
export function readPidsOf(dir: string, controller: string | null): number[] {
  try {
    return parsePids(readFileSync(join(dir, 'cgroup.procs'), 'utf8'));
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT' && !existsSync(dir)) return [];
    throw cgroupFsError(
      'read',
      join(dir, 'cgroup.procs'),
      controller,
      cause,
      `read ${join(dir, 'cgroup.procs')}`,
    );
  }
}

/** Subtract a baseline from a counter set, clamping at 0 (a counter never goes backwards). */
export function delta(now: Record<string, number>, base: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(now)) out[k] = Math.max(0, v - (base[k] ?? 0));
  return out;
}

/** statfs(2) magic numbers of cgroupfs (v1) and cgroup2 (include/uapi/linux/magic.h). */
const CGROUP_SUPER_MAGIC = 0x27e0eb;
const CGROUP2_SUPER_MAGIC = 0x63677270;

let readBuffer = Buffer.alloc(16 * 1024);

/**
 * The control files of one cgroup directory, each opened once and kept open.
 *
 * Why: open + write + close of a cgroup file costs ~8 µs from Node here (path walk, kernfs
 * open, release), a pwrite on a kept fd ~1 µs, and a run touches about a dozen files (see
 * bench/cgroup.ts). Both are safe on kernfs: a write is parsed whole whatever the offset, and a
 * read at offset 0 regenerates the content (seq_read_iter resets the iterator at position 0).
 * The fds are O_CLOEXEC (libuv opens every file so), so they never reach an exec'd program.
 *
 * On anything that is not a cgroup filesystem (a test fixture in a temp dir) it falls back to
 * open/write/close by path with O_TRUNC, so a fixture file holds exactly the last value.
 */
export class CgroupFileIO {
  private readonly fds = new Map<string, number>();
  readonly cached: boolean;

  constructor(readonly dir: string) {
    let type = 0;
    try {
      type = Number(statfsSync(dir).type);
    } catch {
      // fall back to path access; the first real access reports the error
    }
    this.cached = type === CGROUP_SUPER_MAGIC || type === CGROUP2_SUPER_MAGIC;
  }

  private fd(name: string, flags: number, controller: string | null, step: 'read' | 'write'): number {
    const key = `${name}:${flags}`;
    let fd = this.fds.get(key);
    if (fd === undefined) {
      const path = join(this.dir, name);
      try {
        fd = openSync(path, flags);
      } catch (cause) {
        throw cgroupFsError(
          step,
          path,
          controller,
          cause,
          `open ${path} for ${step === 'read' ? 'reading' : 'writing'}`,
        );
      }
      this.fds.set(key, fd);
    }
    return fd;
  }

  write(name: string, value: string, controller: string | null): void {
    const path = join(this.dir, name);
    if (!this.cached) return writeCgroupFile(path, value, controller);
    const fd = this.fd(name, constants.O_WRONLY, controller, 'write');
    try {
      writeSync(fd, value, 0);
    } catch (cause) {
      throw cgroupFsError('write', path, controller, cause, `write ${JSON.stringify(value)} to ${path}`);
    }
    writeTrace?.(path, value);
  }

  read(name: string, controller: string | null): string {
    const path = join(this.dir, name);
    if (!this.cached) return readCgroupFile(path, controller);
    const fd = this.fd(name, constants.O_RDONLY, controller, 'read');
    try {
      for (;;) {
        const n = readSync(fd, readBuffer, 0, readBuffer.length, 0);
        if (n < readBuffer.length) return readBuffer.toString('latin1', 0, n);
        readBuffer = Buffer.alloc(readBuffer.length * 2); // a long cgroup.procs: read it whole
      }
    } catch (cause) {
      throw cgroupFsError('read', path, controller, cause, `read ${path}`);
    }
  }

  /** The file's content, or null if it does not exist (an optional kernel feature). */
  readOptional(name: string): string | null {
    if (!this.exists(name)) return null;
    return this.read(name, null);
  }

  exists(name: string): boolean {
    return this.fds.has(`${name}:${constants.O_RDONLY}`) || existsSync(join(this.dir, name));
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}

/**
 * Split an exact CPU total between user and system in the ratio of two tick-sampled counters,
 * as the kernel's cputime_adjust() does: with no system tick everything is user time, with no
 * user tick everything is system time (a run shorter than a tick has neither: user).
 */
export function splitCpuTime(
  totalMs: number,
  userTicks: number,
  systemTicks: number,
): { user: number; system: number } {
  if (systemTicks <= 0) return { user: totalMs, system: 0 };
  if (userTicks <= 0) return { user: 0, system: totalMs };
  const user = (totalMs * userTicks) / (userTicks + systemTicks);
  return { user, system: totalMs - user };
}
