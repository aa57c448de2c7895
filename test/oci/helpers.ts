/**
 * The engines that call an OCI runtime (podman, containerd and its CRI plugin), each a
 * private instance under a temp dir, driven as their users drive them. Which runtime they
 * call is a parameter (`CAPSULE_OCI_RUNTIME`), so that the same tests prove runc, crun and
 * capsule-runc.
 *
 * Nothing here may touch the machine's own state: storage, run dirs, sockets, network
 * config and cgroups are all named explicitly, and `leftovers()` says what a suite left.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, isAbsolute, join } from 'node:path';

import { BUSYBOX } from '../helpers/rootfs.js';

const REPO = join(import.meta.dirname, '../..');

/**
 * The runtime under test: `CAPSULE_OCI_RUNTIME` (an absolute path), else the repository's
 * `dist/capsule-runc`, which must be built.
 */
export function ociRuntime(): { path: string; skip?: undefined } | { path?: undefined; skip: string } {
  const env = process.env.CAPSULE_OCI_RUNTIME;
  if (env !== undefined && env !== '') {
    if (!isAbsolute(env)) throw new Error(`CAPSULE_OCI_RUNTIME must be an absolute path, not ${env}`);
    if (!existsSync(env)) throw new Error(`CAPSULE_OCI_RUNTIME=${env}: no such file`);
    return { path: env };
  }
  const built = join(REPO, 'dist/capsule-runc');
  if (existsSync(built)) return { path: built };
  /* A missing build is an error, as for dist/capsule: never a skip. */
  throw new Error(
    `capsule-runc is not built (${built} is missing): run npm run build, or set CAPSULE_OCI_RUNTIME=$(command -v runc) to prove the tests on runc`,
  );
}

/**
 * The runtime as the engines will call it. With `CAPSULE_OCI_TRACE=FILE`, a wrapper script
 * in `dir` appends each command line to FILE first: that is how the list of subcommands and
 * flags that podman and containerd use was taken.
 */
export function runtimeForEngines(dir: string, runtime: string): string {
  const trace = process.env.CAPSULE_OCI_TRACE;
  if (!trace) return runtime;
  const wrapper = join(dir, `traced-${basename(runtime)}`);
  writeFileSync(
    wrapper,
    `#!/bin/sh\nprintf '%s: %s\\n' "$(cat /proc/$PPID/comm)" "$*" >> '${trace}'\nexec '${runtime}' "$@"\n`,
  );
  chmodSync(wrapper, 0o755);
  return wrapper;
}

/** Runs a command to completion; throws with its stderr when it fails. */
export function sh(
  file: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; input?: string } = {},
): string {
  try {
    return execFileSync(file, args, {
      encoding: 'utf8',
      env: opts.env ?? process.env,
      input: opts.input,
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: 60_000,
    });
  } catch (e) {
    const err = e as { status?: number; stderr?: string; stdout?: string };
    throw new Error(
      `${file} ${args.join(' ')} failed (exit ${err.status}): ${err.stderr?.trim() || err.stdout?.trim() || String(e)}`,
    );
  }
}

/** Runs a command to completion and returns its exit status and output, never throwing for a status. */
export function shStatus(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): { status: number | null; stdout: string; stderr: string } {
  try {
    const stdout = execFileSync(file, args, {
      encoding: 'utf8',
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    });
    return { status: 0, stdout, stderr: '' };
  } catch (e) {
    const err = e as { status?: number | null; stdout?: string; stderr?: string };
    return { status: err.status ?? null, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

const APPLETS = [
  'sh',
  'echo',
  'sleep',
  'cat',
  'true',
  'false',
  'ls',
  'id',
  'readlink',
  'touch',
  'env',
  'stty',
  'tty',
];

/** A minimal rootfs: the host's static busybox and its applets, root in /etc/passwd, the mount points. */
export function makeBusyboxRootfs(rootfs: string): void {
  if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} is missing: apt-get install busybox-static`);
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'root'])
    mkdirSync(join(rootfs, d), { recursive: true });
  chmodSync(join(rootfs, 'tmp'), 0o1777);
  copyFileSync(BUSYBOX, join(rootfs, 'bin/busybox'));
  chmodSync(join(rootfs, 'bin/busybox'), 0o755);
  for (const a of APPLETS) symlinkSync('busybox', join(rootfs, 'bin', a));
  writeFileSync(join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(rootfs, 'etc/group'), 'root:x:0:\n');
}

/** The rootfs as a tar (what `podman import` takes). */
export function makeBusyboxTar(dir: string): string {
  const rootfs = join(dir, 'busybox-rootfs');
  makeBusyboxRootfs(rootfs);
  const tar = join(dir, 'busybox.tar');
  sh('tar', ['--numeric-owner', '-C', rootfs, '-cf', tar, '.']);
  return tar;
}

/**
 * An OCI image archive (image-spec's image layout, as a tar) of the busybox rootfs with the
 * given default command, named `name` (what `ctr images import` takes): one uncompressed
 * layer, its config and manifest, content-addressed under blobs/sha256.
 */
export function makeOciArchive(dir: string, name: string, cmd: string[]): string {
  const layout = join(dir, `oci-${createHash('sha256').update(name).digest('hex').slice(0, 8)}`);
  const blobs = join(layout, 'blobs/sha256');
  mkdirSync(blobs, { recursive: true });
  const rootfs = join(layout, '.rootfs');
  makeBusyboxRootfs(rootfs);
  const layerTar = join(layout, '.layer.tar');
  sh('tar', ['--numeric-owner', '-C', rootfs, '-cf', layerTar, '.']);
  const blob = (data: Buffer) => {
    const digest = createHash('sha256').update(data).digest('hex');
    writeFileSync(join(blobs, digest), data);
    return { digest: `sha256:${digest}`, size: data.length };
  };
  const layer = blob(readFileSync(layerTar));
  const config = blob(
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Cmd: cmd, Env: ['PATH=/bin'], WorkingDir: '/' },
        rootfs: { type: 'layers', diff_ids: [layer.digest] },
      }),
    ),
  );
  const manifest = blob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
      }),
    ),
  );
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(layout, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          ...manifest,
          platform: { architecture: 'amd64', os: 'linux' },
          annotations: { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': name },
        },
      ],
    }),
  );
  const archive = `${layout}.tar`;
  sh('tar', ['-C', layout, '-cf', archive, 'oci-layout', 'index.json', 'blobs']);
  return archive;
}

/** The cgroup v1 hierarchies and the v2 one of this machine, as mounted directories. */
function cgroupRoots(): string[] {
  const roots: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const fstype = line.slice(sep + 3).split(' ')[0];
    if (fstype === 'cgroup' || fstype === 'cgroup2') roots.push(line.split(' ')[4] as string);
  }
  return roots;
}

/** Where a cgroup path (absolute, from a hierarchy's root) exists, in each hierarchy. */
export function cgroupDirs(path: string): string[] {
  return cgroupRoots()
    .map((root) => join(root, path))
    .filter((d) => existsSync(d));
}

/** Removes a cgroup subtree in every hierarchy, leaves first (rmdir(2) on each, as cgroups(7) wants). */
export function removeCgroupTree(path: string): void {
  const remove = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) remove(join(dir, e.name));
    rmdirSync(dir);
  };
  for (const d of cgroupDirs(path)) remove(d);
}

/**
 * The memory limit of a process's cgroup, read from the host: `memory.limit_in_bytes` of its
 * memory cgroup on v1, `memory.max` of its cgroup on v2 (cgroups(7), /proc/PID/cgroup).
 */
export function memoryLimitOf(pid: number): string {
  const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n');
  const v1 = lines.find((l) => l.split(':')[1]?.split(',').includes('memory'));
  const roots = cgroupRoots();
  if (v1) {
    const root = roots.find((r) => basename(r) === 'memory' || basename(r).split(',').includes('memory'));
    return readFileSync(
      join(root as string, v1.split(':')[2] as string, 'memory.limit_in_bytes'),
      'utf8',
    ).trim();
  }
  const v2 = lines.find((l) => l.startsWith('0::')) as string;
  const root = roots.find((r) => r === '/sys/fs/cgroup' || r.endsWith('/unified')) as string;
  return readFileSync(join(root, v2.slice(3), 'memory.max'), 'utf8').trim();
}

/** The cgroup paths of a process, one per hierarchy (/proc/PID/cgroup, cgroups(7)). */
export function cgroupPathsOf(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cgroup`, 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split(':').slice(2).join(':'));
}

/**
 * What a suite left behind that is its own: mounts under its temp dir, processes whose
 * command line names it, cgroups under its parent. Empty when all is clean.
 */
export function leftovers(dir: string, cgroupParent: string, marker: string = dir): string[] {
  const found: string[] = [];
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.split(' ')[4]?.startsWith(dir));
  if (mounts.length > 0) found.push(`mounts: ${mounts.map((l) => l.split(' ')[4]).join(', ')}`);
  const procs = processesWithSubstring(marker);
  if (procs.length > 0) found.push(`processes: ${procs.join(', ')}`);
  const cgroups = cgroupDirs(cgroupParent);
  if (cgroups.length > 0) found.push(`cgroups: ${cgroups.join(', ')}`);
  return found;
}

/** Host processes whose command line contains `text` anywhere (an argument or a part of one). */
export function processesWithSubstring(text: string): string[] {
  const found: string[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8');
      if (cmdline.includes(text)) found.push(`${name} ${cmdline.split('\0').join(' ').trim()}`);
    } catch {
      /* exited while we looked */
    }
  }
  return found;
}

/** Polls `check` every 50 ms until it returns a value (not undefined) or `ms` pass. */
export async function waitFor<T>(what: string, ms: number, check: () => T | undefined): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits for a child process to exit; its exit code, or 128 + signal number. */
export function exited(child: ChildProcess): Promise<number> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? 128 + signalNumber(signal))),
  );
}

function signalNumber(signal: NodeJS.Signals | null): number {
  return signal === 'SIGKILL' ? 9 : signal === 'SIGTERM' ? 15 : 0;
}
