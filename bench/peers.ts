/**
 * The peers capsule is measured against, from Debian packages the bench installs
 * when missing, and the small static rootfs they all run /bin/true from.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Debian package for each peer command. */
const PACKAGES: Record<string, string> = {
  bwrap: 'bubblewrap',
  runc: 'runc',
  unshare: 'util-linux',
  busybox: 'busybox-static',
};

function has(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Install the peers' Debian packages when missing (the bench runs as root, like the tests). */
export function ensurePeers(): void {
  const missing = Object.entries(PACKAGES)
    .filter(([cmd]) => !has(cmd))
    .map(([, pkg]) => pkg);
  if (missing.length === 0) return;
  console.log(`bench: installing ${missing.join(' ')}`);
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

/** A rootfs of Debian's static busybox: /bin/true is busybox, statically linked. */
export function makeRootfs(dir: string): string {
  const rootfs = join(dir, 'rootfs');
  for (const d of ['bin', 'proc', 'dev', 'tmp', 'etc', 'sys'])
    mkdirSync(join(rootfs, d), { recursive: true });
  chmodSync(join(rootfs, 'tmp'), 0o1777);
  copyFileSync('/bin/busybox', join(rootfs, 'bin/busybox'));
  for (const a of ['true', 'sh', 'sleep']) symlinkSync('busybox', join(rootfs, 'bin', a));
  writeFileSync(join(rootfs, 'etc/passwd'), 'root:x:0:0::/:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n');
  return rootfs;
}

/** An OCI bundle for runc around the rootfs: /bin/true, read-only root, the usual namespaces. */
export function makeRuncBundle(dir: string, rootfs: string): string {
  const bundle = join(dir, 'bundle');
  mkdirSync(bundle, { recursive: true });
  execFileSync('runc', ['spec'], { cwd: bundle });
  const config = JSON.parse(execFileSync('cat', [join(bundle, 'config.json')], { encoding: 'utf8' })) as {
    root: { path: string; readonly: boolean };
    process: { terminal: boolean; args: string[] };
  };
  config.root = { path: rootfs, readonly: true };
  config.process.terminal = false;
  config.process.args = ['/bin/true'];
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(config));
  return bundle;
}

/** Spawn a command from this Node process and wait for it; rejects on a non-zero exit. */
export function spawnWait(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}: ${err.trim()}`)),
    );
  });
}

export const exists = existsSync;
