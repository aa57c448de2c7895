/**
 * capsule's errors. A program's own failure (non-zero exit, a signal, a limit)
 * is a result, never one of these: they mean capsule could not run it.
 *
 * - {@link ConfigError}: the options were wrong; nothing was started.
 * - {@link SetupError}: a setup step failed in the kernel; nothing untrusted ran.
 * - CgroupError (src/cgroup/errors.ts, exported by the package): the sandbox's cgroup could
 *   not be made, written or removed.
 *
 * Each message says what failed, at which step, the errno's text, and what to do.
 */
import type { ExplainStep } from './explain.js';
import type { Step } from './steps.js';

const brand = Symbol.for('capsule.error');

export class CapsuleError extends Error {
  readonly [brand] = true;
  override name = 'CapsuleError';

  /** True for any capsule error, even from another copy of the package. */
  static is(value: unknown): value is CapsuleError {
    return typeof value === 'object' && value !== null && (value as { [brand]?: boolean })[brand] === true;
  }
}

/** Bad input, caught before clone: an option's value, a missing rootfs, a relative program path. */
export class ConfigError extends CapsuleError {
  override name = 'ConfigError';
  /** The option at fault, as named in the library (`memoryLimitBytes`), when there is one. */
  readonly option: string | undefined;

  constructor(message: string, option?: string) {
    super(message);
    this.option = option;
  }
}

export interface SetupErrorFields {
  step: Step;
  syscall: string;
  /** Positive errno value. */
  errno: number;
  /** errno's symbolic name, e.g. `ENOENT`. */
  code: string;
  /** The path or value the step was working on. */
  path: string;
  /** What to do about it, for known cases. */
  hint: string | undefined;
}

/** A step of the sandbox's setup failed (fail closed: the program did not run). */
export class SetupError extends CapsuleError implements SetupErrorFields {
  override name = 'SetupError';
  readonly step: Step;
  readonly syscall: string;
  readonly errno: number;
  readonly code: string;
  readonly path: string;
  readonly hint: string | undefined;
  /** With the `explain` option: the steps up to the one that failed. */
  explain: ExplainStep[] | undefined;

  constructor(message: string, fields: SetupErrorFields) {
    super(message);
    this.step = fields.step;
    this.syscall = fields.syscall;
    this.errno = fields.errno;
    this.code = fields.code;
    this.path = fields.path;
    this.hint = fields.hint;
  }
}
