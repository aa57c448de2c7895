/**
 * SECURITY_VIOLATION: the program called something the seccomp profile kills for.
 *
 * How the call's name reaches capsule, and why it cannot be forged:
 * a kill action is compiled as SECCOMP_RET_USER_NOTIF, and the listener
 * descriptor belongs to capsule-init alone (the program's copy is closed at
 * exec). The kernel stops the caller before the call runs and writes the
 * notification itself: pid, AUDIT_ARCH and syscall number (seccomp_unotify(2)).
 * capsule-init kills the sandbox and puts {arch, nr} in its report, on a pipe
 * the program never holds; capsule-init is not dumpable, so the program cannot
 * ptrace it or write its descriptors through /proc/1.
 *
 * A program that raises SIGSYS itself, or dies of SECCOMP_RET_TRAP's SIGSYS,
 * has a signal and no report entry: SIGNALED, not SECURITY_VIOLATION. The
 * alternatives were weaker: a SIGSYS wait status carries no syscall number;
 * the audit log is host-wide, rate-limited and owned by auditd when it runs;
 * /proc/PID/syscall is gone once the process is dead; and SECCOMP_RET_TRAP's
 * siginfo is delivered to the program, which can catch it.
 */
export interface Violation {
  /**
   * The call's name in its ABI (`socket`), from libseccomp's tables; `syscall_N` when
   * unknown; `unknown` when a signal withdrew the call before capsule-init could read it
   * (the kernel then no longer says which call it was, only that there was one).
   */
  syscall: string;
  /** Its number in that ABI; -1 for a withdrawn call. */
  number: number;
  /** The ABI: `x86_64`, `i386` (int 0x80), `x32`, `aarch64`, or the AUDIT_ARCH value in hex. */
  abi: string;
}

/** capsule-init's number for a call withdrawn by a signal before it was read (native/init.c). */
const WITHDRAWN = -1;

const AUDIT_ARCH: Record<number, string> = {
  0xc000003e: 'x86_64',
  0x40000003: 'i386',
  0xc00000b7: 'aarch64',
  0x40000028: 'arm',
};

/** What capsule-init reported, as src/native.ts types it. */
export interface ExitWithViolation {
  signal: NodeJS.Signals | null;
  violation?: { number: number; arch: number; syscall: string } | null;
}

/** The forbidden call that ended the run, or null when the run did not end that way. */
export function securityViolation(exit: ExitWithViolation): Violation | null {
  const v = exit.violation;
  if (!v) return null;
  const x32 = v.arch === 0xc000003e && (v.number & 0x40000000) !== 0;
  const abi = x32 ? 'x32' : (AUDIT_ARCH[v.arch] ?? `0x${v.arch.toString(16)}`);
  if (v.number === WITHDRAWN) return { syscall: 'unknown', number: WITHDRAWN, abi };
  return { syscall: v.syscall || `syscall_${v.number}`, number: v.number, abi };
}

/** What a judge shows: `forbidden syscall: socket` (with the ABI when it is not the native one). */
export function violationMessage(v: Violation): string {
  const native = process.arch === 'arm64' ? 'aarch64' : 'x86_64';
  return `forbidden syscall: ${v.syscall}${v.abi === native ? '' : ` (${v.abi} ABI)`}`;
}
