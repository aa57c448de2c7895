/** Reading the host's state, for the "nothing leaked" checks. */
import { readdirSync, readFileSync } from 'node:fs';

export function mountCount(): number {
  return readFileSync('/proc/self/mountinfo', 'utf8').trim().split('\n').length;
}

export function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Host PIDs whose command line contains `marker`. */
export function processesWith(marker: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(marker)) found.push(Number(name));
    } catch {
      /* exited while we looked */
    }
  }
  return found;
}

/** Children of this process that are zombies (exited, never reaped). */
export function zombieChildren(): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z' && Number(fields[1]) === process.pid) found.push(Number(name));
    } catch {
      /* gone */
    }
  }
  return found;
}
