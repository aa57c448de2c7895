/**
 * The files and mount points every sandbox needs, whatever runs in it.
 *
 * - /etc/passwd and /etc/group with root and nobody/nogroup (65534), so `id`, `whoami` and
 *   getpwuid(3) have an answer for the sandbox's user; /etc/nsswitch.conf pointing every database at
 *   those files (glibc 2.34+ has the "files" service built in, so no libnss_*.so is needed).
 * - Empty /proc, /sys, /dev and /tmp (mode 1777, sticky) for the runtime to mount over
 *   (mount(2) needs an existing directory as its target, and a read-only root cannot grow one).
 *
 * - The host's usrmerge links (/bin -> usr/bin, /lib64 -> usr/lib64, ...), so `/bin/sh` works in
 *   the rootfs whichever of the two paths a program or a `#!` line uses.
 *
 * Skeleton files are written only when missing: a user's own /etc/passwd is kept.
 */
import { lstat } from 'node:fs/promises';
import type { Planner } from './plan.js';

/** The uid and gid of `nobody`/`nogroup`, the overflow ids (see user_namespaces(7)). */
export const NOBODY_ID = 65534;

export const PASSWD =
  'root:x:0:0:root:/root:/bin/sh\n' +
  `nobody:x:${NOBODY_ID}:${NOBODY_ID}:nobody:/nonexistent:/usr/sbin/nologin\n`;
export const GROUP = 'root:x:0:\n' + `nogroup:x:${NOBODY_ID}:\n`;
export const NSSWITCH =
  '# Written by capsule: every database comes from /etc files.\n' +
  'passwd: files\ngroup: files\nshadow: files\nhosts: files\nnetworks: files\n' +
  'protocols: files\nservices: files\nethers: files\nrpc: files\n';
export const HOSTS = '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n';

/** Adds the skeleton to a plan (entries already planned from the host win). */
export function addSkeleton(planner: Planner): void {
  planner.addEmptyDir('/etc', 0o755);
  planner.addData('/etc/passwd', PASSWD, 0o644);
  planner.addData('/etc/group', GROUP, 0o644);
  planner.addData('/etc/nsswitch.conf', NSSWITCH, 0o644);
  planner.addData('/etc/hosts', HOSTS, 0o644);
  planner.addEmptyDir('/proc', 0o555);
  planner.addEmptyDir('/sys', 0o555);
  planner.addEmptyDir('/dev', 0o755);
  planner.addEmptyDir('/tmp', 0o1777);
  planner.addEmptyDir('/root', 0o700);
}

/** Top-level directories that usrmerge turns into links into /usr. */
export const USRMERGE_DIRS = ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

/** Adds the host's usrmerge links (only those that are links on this host). */
export async function addUsrMergeLinks(planner: Planner): Promise<void> {
  for (const dir of USRMERGE_DIRS) {
    const st = await lstat(dir).catch(() => null);
    if (st?.isSymbolicLink()) await planner.addChain(dir);
  }
}
