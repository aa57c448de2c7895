/** Test rootfs fixtures, built from host binaries in temp dirs. */
import { chmodSync, copyFileSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Debian's busybox-static. */
export const BUSYBOX = '/bin/busybox';

const APPLETS = [
  'sh',
  'id',
  'ls',
  'cat',
  'touch',
  'echo',
  'sleep',
  'hostname',
  'whoami',
  'true',
  'false',
  'env',
];

/** A rootfs of a static busybox, the probe at /probe, /etc/passwd with nobody, and the mount points. */
export function makeBusyboxRootfs(rootfs: string, probe: string): void {
  if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} is missing: apt-get install busybox-static`);
  for (const d of ['bin', 'etc', 'proc', 'dev', 'tmp', 'empty'])
    mkdirSync(join(rootfs, d), { recursive: true });
  chmodSync(join(rootfs, 'tmp'), 0o1777);
  copyFileSync(BUSYBOX, join(rootfs, 'bin/busybox'));
  chmodSync(join(rootfs, 'bin/busybox'), 0o755);
  for (const a of APPLETS) symlinkSync('busybox', join(rootfs, 'bin', a));
  copyFileSync(probe, join(rootfs, 'probe'));
  chmodSync(join(rootfs, 'probe'), 0o755);
  writeFileSync(
    join(rootfs, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n',
  );
  writeFileSync(join(rootfs, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
}
