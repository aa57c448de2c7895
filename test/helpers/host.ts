/** Reading the host's state, for the "nothing leaked" checks. */
import { closeSync, constants, openSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';

export function mountCount(): number {
  return readFileSync('/proc/self/mountinfo', 'utf8').trim().split('\n').length;
}

/*
 * Descriptors capsule keeps on purpose and that come and go with libuv's thread pool: one
 * pidfd per thread that has cloned a sandbox (native/signals.cc, so at most the pool's
 * size), and the network namespaces made ahead of time (native/netns_pool.cc). Which pool
 * thread clones a run is the scheduler's choice, so counting them would make a leak check
 * depend on it.
 */
const POOL_THREADS = Number(process.env.UV_THREADPOOL_SIZE) || 4;

/** Open descriptors of this process, less those capsule keeps per pool thread (above). */
export function openFdCount(): number {
  let pidfds = 0;
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    let link: string;
    try {
      link = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; /* the directory's own descriptor, closed by now */
    }
    if (link === 'anon_inode:[pidfd]') pidfds++;
    else if (!link.startsWith('net:[')) n++;
  }
  return n + Math.max(0, pidfds - POOL_THREADS);
}

/** Host PIDs whose command line contains `marker` (and, if given, whose argv[0] is `program`). */
export function processesWith(marker: string, program?: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (argv.includes(marker) && (program === undefined || argv[0] === program)) found.push(Number(name));
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

/**
 * Why this machine cannot give a test a pseudo-terminal, or null when it can: a devpts
 * must be mounted for /dev/ptmx to work (pts(4)). A VM or container without one is a
 * machine without terminals, not a failure of capsule's.
 */
export function noPtyReason(): string | null {
  try {
    closeSync(openSync('/dev/ptmx', constants.O_RDWR | constants.O_NOCTTY));
    return null;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    return `this machine has no pseudo-terminals (open /dev/ptmx: ${code}; is a devpts mounted at /dev/pts?)`;
  }
}

/** Network interfaces of this machine's own namespace other than lo (sysfs /sys/class/net). */
export function nonLoopbackInterfaces(): string[] {
  return readdirSync('/sys/class/net').filter((n) => n !== 'lo');
}
