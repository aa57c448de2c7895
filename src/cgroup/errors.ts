/**
 * The cgroup layer's one error type. Every failure that is not the program's own carries
 * the controller it was about, the cgroup file or directory, and the errno code, so the
 * CLI can print one line that says what is missing and what to do about it.
 */

import { CapsuleError } from '../errors.js';

/** Brand checked by `isCgroupError`, robust across duplicated module instances. */
const CGROUP_ERROR = Symbol.for('capsule.CgroupError');

/** Which step failed; matches the verb of the system call or the lookup behind it. */
export type CgroupStep =
  | 'detect' // no hierarchy carries the controller
  | 'mkdir' // creating the parent or a sandbox cgroup
  | 'write' // writing a limit or resetting a counter
  | 'read' // reading a counter
  | 'open' // opening cgroup.procs for the sandbox to join
  | 'kill' // killing what is left in the cgroup
  | 'rmdir'; // removing a cgroup

export interface CgroupErrorFields {
  step: CgroupStep;
  /** Controller concerned (`memory`, `pids`, `cpu`, `cpuacct`, `cpuset`), or null when none is. */
  controller?: string | null;
  /** Cgroup file or directory concerned, or null. */
  path?: string | null;
  /** The Node error code (`EACCES`, `ENOENT`, `EBUSY` ...), or null when no system call failed. */
  code?: string | null;
  /** The errno (Node's negative `-13` is accepted and stored positive, as SetupError has it), or null. */
  errno?: number | null;
  cause?: unknown;
}

/** A cgroup could not be found, created, written or removed; `CapsuleError.is()` holds for it. */
export class CgroupError extends CapsuleError {
  override readonly name = 'CgroupError';
  readonly [CGROUP_ERROR] = true;
  readonly step: CgroupStep;
  readonly controller: string | null;
  readonly path: string | null;
  readonly code: string | null;
  /** Positive errno value (`13` for EACCES), or null when no system call failed. */
  readonly errno: number | null;

  constructor(message: string, fields: CgroupErrorFields) {
    super(message, fields.cause === undefined ? undefined : { cause: fields.cause });
    this.step = fields.step;
    this.controller = fields.controller ?? null;
    this.path = fields.path ?? null;
    this.code = fields.code ?? null;
    this.errno = typeof fields.errno === 'number' ? Math.abs(fields.errno) : null;
  }
}

export function isCgroupError(value: unknown): value is CgroupError {
  return (
    typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[CGROUP_ERROR] === true
  );
}

/** Hints for the errno codes a cgroup operation commonly meets. */
function hintFor(code: string | null | undefined, step: CgroupStep): string {
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      return 'capsule needs root (or a delegated cgroup subtree) to manage cgroups';
    case 'EROFS':
      return 'the cgroup filesystem is mounted read-only here (typical inside a container); mount it rw or run on the host';
    case 'ENOENT':
      return step === 'write' || step === 'read' || step === 'open'
        ? 'the kernel does not provide this cgroup file (controller not enabled for this cgroup, or an older kernel)'
        : 'the cgroup hierarchy is not mounted where /proc/self/mountinfo says';
    case 'EBUSY':
      return 'processes are still inside the cgroup';
    case 'EINVAL':
      return 'the kernel rejected the value';
    case 'ENOSPC':
      return 'no CPUs or memory nodes assigned (cpuset) or the cgroup hierarchy is full';
    case 'EOPNOTSUPP':
      return 'the cgroup does not support this operation (v2 "no internal processes" rule or a threaded cgroup)';
    default:
      return '';
  }
}

/** Wrap a failed fs call on a cgroup file into a CgroupError with a hint. */
export function cgroupFsError(
  step: CgroupStep,
  path: string,
  controller: string | null,
  cause: unknown,
  what?: string,
): CgroupError {
  const err = cause as NodeJS.ErrnoException;
  const code = typeof err?.code === 'string' ? err.code : null;
  const hint = hintFor(code, step);
  const action = what ?? `${step} ${path}`;
  const message = `cgroup${controller ? ` ${controller}` : ''}: cannot ${action}: ${code ?? String(cause)}${hint ? ` (${hint})` : ''}`;
  return new CgroupError(message, {
    step,
    controller,
    path,
    code,
    errno: typeof err?.errno === 'number' ? err.errno : null,
    cause,
  });
}
