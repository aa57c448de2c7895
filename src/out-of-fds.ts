/**
 * One error for a process out of file descriptors, whichever step of a run hit it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';

import { SetupError } from './errors.js';

/**
 * Running out of file descriptors (EMFILE at RLIMIT_NOFILE, ENFILE at the system's
 * fs.file-max) can hit any step of a run: compiling the seccomp filter into a memfd,
 * opening a cgroup file, the pipes. Whichever it was, the caller gets one SetupError that
 * names the limit and what to do, not a message that blames the step (or the seccomp
 * profile). Nothing is kept broken: the next run works as soon as descriptors are free.
 */
export function outOfDescriptors(e: unknown): SetupError | null {
  if (typeof e !== 'object' || e === null) return null;
  const err = e as {
    code?: unknown;
    message?: unknown;
    syscall?: unknown;
    path?: unknown;
    explain?: unknown;
  };
  const text = typeof err.message === 'string' ? err.message : '';
  let code: 'EMFILE' | 'ENFILE' | null = null;
  if (err.code === 'ENFILE' || /\bENFILE\b|Too many open files in system/.test(text)) code = 'ENFILE';
  else if (err.code === 'EMFILE' || /\bEMFILE\b|Too many open files/.test(text)) code = 'EMFILE';
  if (code === null) return null;
  let what: string;
  let hint: string;
  if (code === 'ENFILE') {
    what = 'the system ran out of file descriptors (fs.file-max)';
    hint = 'close some, or raise fs.file-max (see /proc/sys/fs/file-nr)';
  } else {
    /* Both reads need a descriptor of their own: say what can be said. */
    let soft = '';
    let open = '';
    try {
      soft = /^Max open files\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? '';
      open = String(readdirSync('/proc/self/fd').length - 1);
    } catch {
      /* still none free */
    }
    const now = soft ? ` (${open ? `${open} open, ` : ''}soft limit ${soft})` : '';
    what = `this process ran out of file descriptors at its RLIMIT_NOFILE${now}`;
    hint =
      'raise the limit (`ulimit -n`, LimitNOFILE= in a systemd unit) or close descriptors: a run needs about ' +
      "a dozen of its own, and capsule's cgroup pool keeps a few per pooled cgroup; the next run works once " +
      'descriptors are free';
  }
  const syscall =
    typeof err.syscall === 'string' ? err.syscall : e instanceof SetupError ? e.syscall : 'open';
  const wrapped = new SetupError(`capsule could not set up the sandbox: ${what}: ${hint} (${text})`, {
    step: e instanceof SetupError ? e.step : 'prepare',
    syscall,
    errno: code === 'EMFILE' ? osConstants.errno.EMFILE : osConstants.errno.ENFILE,
    code,
    path: typeof err.path === 'string' ? err.path : '',
    hint,
  });
  if (e instanceof SetupError) wrapped.explain = e.explain;
  wrapped.cause = e;
  return wrapped;
}
