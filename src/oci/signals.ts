/**
 * Signals as runc's `kill` takes them: a number (`9`), a name with or without `SIG`, in any
 * case (`SIGKILL`, `KILL`, `kill`), or a real-time one (`SIGRTMIN+3`, `RTMAX-1`).
 */
import { constants } from 'node:os';

import { CapsuleError } from '../errors.js';

/* signal(7): glibc's SIGRTMIN is 34 (the kernel's 32 and 33 are the threading library's), SIGRTMAX 64. */
const RTMIN = 34;
const RTMAX = 64;

export function parseSignal(raw: string): number {
  if (/^\d+$/.test(raw)) {
    const n = Number(raw);
    if (n >= 1 && n <= RTMAX) return n;
    throw new CapsuleError(`invalid signal ${JSON.stringify(raw)}: a number from 1 to ${RTMAX}`);
  }
  let name = raw.toUpperCase();
  if (!name.startsWith('SIG')) name = 'SIG' + name;
  const rt = /^SIGRT(MIN|MAX)([+-]\d+)?$/.exec(name);
  if (rt) {
    const n = (rt[1] === 'MIN' ? RTMIN : RTMAX) + Number(rt[2] ?? 0);
    if (n >= RTMIN && n <= RTMAX) return n;
  }
  const n = (constants.signals as Record<string, number | undefined>)[name];
  if (n === undefined)
    throw new CapsuleError(
      `unknown signal ${JSON.stringify(raw)}: give a name (SIGTERM, TERM) or a number (15)`,
    );
  return n;
}
