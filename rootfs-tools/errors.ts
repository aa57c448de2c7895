/**
 * Errors raised by rootfs-tools.
 *
 * Every message is self-contained and follows the house order: what failed, which file, what to do.
 * RootfsError is a CapsuleError, so the CLI prints it as one line (`capsule: <message>`) like
 * capsule's own errors; library callers can branch on `code`.
 */
import { CapsuleError } from '../src/errors.js';

const brand: unique symbol = Symbol.for('capsule.RootfsError');

/** Why a rootfs operation failed. */
export type RootfsErrorCode =
  /** A file given by the caller does not exist or cannot be read. */
  | 'ENOENT'
  /** A file was expected to be ELF (or a `#!` script) and is not, or it is truncated or malformed. */
  | 'NOT_ELF'
  /** A dependency (library or interpreter) could not be found the way the dynamic loader would look for it. */
  | 'UNRESOLVED'
  /** A profile asks for something the host does not have. */
  | 'PROFILE'
  /** `--include-gpu-libs` found no NVIDIA driver libraries. */
  | 'NO_GPU_LIBS'
  /** The caller passed an option that makes no sense (a relative rootfs path, an unknown profile, ...). */
  | 'INVALID'
  /** Writing the rootfs failed (disk full, permissions); what was added has been removed again. */
  | 'WRITE';

export class RootfsError extends CapsuleError {
  readonly [brand] = true;
  override readonly name = 'RootfsError';
  /** Machine-readable reason. */
  readonly code: RootfsErrorCode;
  /** The file the error is about, when there is one. */
  readonly path: string | undefined;

  constructor(code: RootfsErrorCode, message: string, options: { path?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.path = options.path;
  }

  /** True for a RootfsError from any copy of this module (the brand survives duplicate installs). */
  static override is(value: unknown): value is RootfsError {
    return typeof value === 'object' && value !== null && brand in value;
  }
}

/** The `code` of a Node.js system error (`ENOENT`, `EACCES`, ...), or undefined. */
export function errnoCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = (error as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}
