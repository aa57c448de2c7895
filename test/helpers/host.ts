/** Reading the host's state, for the "nothing leaked" checks. */
import { closeSync, constants, openSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { hostIdPoolFds } from '../../src/ids.js';
import { heldCgroupDirs } from '../../src/lifecycle.js';

export function mountCount(): number {
  return readFileSync('/proc/self/mountinfo', 'utf8').trim().split('\n').length;
}

/*
 * Descriptors capsule keeps on purpose, and that come and go with its pools:
 * - one pidfd per thread that has cloned a sandbox (native/signals.cc, so at most the
 *   pool's size: which pool thread clones a run is the scheduler's choice), and the one of
 *   capsule's own process (native/addon.cc);
 * - the network namespaces made ahead of time (native/netns_pool.cc);
 * - the host-id leases and user namespaces made ahead of time (native/userns_pool.cc);
 * - the files of the cgroups the library's managers hold (src/cgroup/manager.ts): a pooled
 *   cgroup keeps its files open, and a released one that still counted a zombie waits on the
 *   side and is reused or removed by a later run, so how many there are depends on timing.
 * A leak check that counted them would depend on the scheduler; these checks look instead
 * for a descriptor that is open now, was not before, and is none of those.
 */
const POOL_THREADS = Number(process.env.UV_THREADPOOL_SIZE) || 4;

/** What each of this process's open descriptors is (readlink of /proc/self/fd/N). */
export function openFds(): string[] {
  return openFdLinks().map(([, link]) => link);
}

function openFdLinks(): [number, string][] {
  const links: [number, string][] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      links.push([Number(fd), readlinkSync(`/proc/self/fd/${fd}`)]);
    } catch {
      /* the directory's own descriptor, closed by now */
    }
  }
  return links;
}

/** Descriptors open now and not at `before` (from openFds()), less those capsule keeps on purpose (above). */
export function fdsLeftSince(before: readonly string[]): string[] {
  const had = new Map<string, number>();
  for (const l of before) had.set(l, (had.get(l) ?? 0) + 1);
  const held = heldCgroupDirs().map((d) => `${d}/`);
  let pidfdRoom = Math.max(0, POOL_THREADS + 1 - (had.get('anon_inode:[pidfd]') ?? 0));
  const pooled = new Set(hostIdPoolFds());
  const left: string[] = [];
  for (const [fd, link] of openFdLinks()) {
    const n = had.get(link) ?? 0;
    if (n > 0) had.set(link, n - 1);
    else if (link.startsWith('net:[') || pooled.has(fd)) continue;
    else if (link === 'anon_inode:[pidfd]' && pidfdRoom > 0) pidfdRoom--;
    else if (!held.some((d) => link.startsWith(d))) left.push(link);
  }
  return left;
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
