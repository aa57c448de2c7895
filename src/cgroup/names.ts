/**
 * Sandbox cgroup names: `<pid>-<starttime>-<n>` under the parent, where pid and starttime
 * identify the Node process that made it (proc(5) /proc/PID/stat field 22, clock ticks
 * since boot) and n counts up within that process. gc removes a cgroup only when that exact
 * process is gone: a pid alone could have been reused by an unrelated live process, but
 * pid and start time together cannot. A directory whose name does not match is never
 * touched, whoever made it.
 */
import { readFileSync } from 'node:fs';

const NAME = /^(\d+)-(\d+)-(\d+)$/;

/** Start time of a process in clock ticks since boot, or null if it does not exist. */
export function processStartTime(pid: number, procRoot = '/proc'): string | null {
  let stat: string;
  try {
    stat = readFileSync(`${procRoot}/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) is in parentheses and may hold spaces or ')': split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so field 22 (starttime) is fields[19].
  return fields[19] ?? null;
}

export interface CgroupOwner {
  pid: number;
  startTime: string;
  n: number;
}

export function parseCgroupName(name: string): CgroupOwner | null {
  const m = NAME.exec(name);
  if (!m) return null;
  return { pid: Number(m[1]), startTime: m[2] ?? '', n: Number(m[3]) };
}

let selfStart: string | null = null;
let counter = 0;

/** A fresh name for a sandbox cgroup of this process; unique across managers in the process. */
export function nextCgroupName(): string {
  selfStart ??= processStartTime(process.pid) ?? '0';
  counter += 1;
  return `${process.pid}-${selfStart}-${counter}`;
}

/** Is the process that created a cgroup with this name still running? */
export function ownerAlive(owner: CgroupOwner, procRoot = '/proc'): boolean {
  return processStartTime(owner.pid, procRoot) === owner.startTime;
}
