/**
 * The escape suite's fixtures: the hostile probes compiled static, a rootfs
 * holding them, and the host-side things they try to reach (a secret file, a
 * canary process, a TCP listener), each with a check that it was not reached.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { availableParallelism, hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';

import { BUSYBOX, makeBusyboxRootfs } from '../helpers/rootfs.js';

const run = promisify(execFile);
export const PROBE_SOURCES = join(import.meta.dirname, 'probes');
/** The uid the sandbox runs as by default, and the canary with it: what kill(-1) from inside would reach. */
export const NOBODY = 65534;

/** Compile every probes/*.c static into `out`, a few at a time. */
export async function compileProbes(out: string): Promise<string[]> {
  const names = readdirSync(PROBE_SOURCES)
    .filter((f) => f.endsWith('.c'))
    .map((f) => f.slice(0, -2));
  const queue = [...names];
  const worker = async () => {
    for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
      await run('cc', [
        '-D_GNU_SOURCE',
        '-static',
        '-O2',
        '-Wall',
        '-Wextra',
        '-Werror',
        '-o',
        join(out, name),
        join(PROBE_SOURCES, `${name}.c`),
      ]);
    }
  };
  await Promise.all(Array.from({ length: Math.max(2, availableParallelism()) }, worker));
  return names;
}

export interface Fixture {
  dir: string;
  /** Host paths of the compiled probes. */
  bin: string;
  rootfs: string;
  /** A world-readable file outside the rootfs holding `token`. */
  secret: string;
  token: string;
  secretAtimeMs: number;
  /** A host process running as nobody, with `marker` in its argv. */
  canary: ChildProcess;
  marker: string;
  listener: Server;
  port: number;
  connections: number;
  hostname: string;
  /** Kernel options from /proc/config.gz, when the kernel has it. */
  kernelConfig: Map<string, string>;
}

/** Everything the suite needs; `cleanup()` undoes it. */
export async function makeFixture(probe: string): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'capsule-security-'));
  /* nobody must reach the host side of the fixture for the outside runs (suid, kill). */
  chmodSync(dir, 0o755);
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  await compileProbes(bin);
  chmodSync(bin, 0o755);

  const rootfs = join(dir, 'rootfs');
  mkdirSync(rootfs);
  makeBusyboxRootfs(rootfs, probe);
  mkdirSync(join(rootfs, 'escape'));
  mkdirSync(join(rootfs, 'sys')); /* a mount point for the sys option; empty unless asked */
  for (const name of readdirSync(bin)) copyFileSync(join(bin, name), join(rootfs, 'escape', name));
  for (const name of readdirSync(bin)) chmodSync(join(rootfs, 'escape', name), 0o755);
  /* A set-user-ID-root program, inside the rootfs and outside it. */
  for (const path of [join(rootfs, 'suid_helper'), join(dir, 'suid_helper')]) {
    copyFileSync(join(bin, 'suid_helper'), path);
    chownSync(path, 0, 0);
    chmodSync(path, 0o4755);
  }

  const token = `capsule-secret-${process.pid}-${Date.now()}`;
  const secret = join(dir, 'secret');
  writeFileSync(secret, token, { mode: 0o644 });
  const secretAtimeMs = markUnread(secret);

  const marker = `capsule-canary-${process.pid}`;
  /* It watches for its parent (this test worker) and goes with it, should the worker die. */
  const canary = spawn(BUSYBOX, ['sh', '-c', 'while [ -d /proc/$PPID ]; do sleep 1; done', marker], {
    uid: NOBODY,
    gid: NOBODY,
    stdio: 'ignore',
  });

  const fixture: Fixture = {
    dir,
    bin,
    rootfs,
    secret,
    token,
    secretAtimeMs,
    canary,
    marker,
    listener: createServer(),
    port: 0,
    connections: 0,
    hostname: hostname(),
    kernelConfig: kernelConfig(),
  };
  fixture.listener.on('connection', (s) => {
    fixture.connections++;
    s.destroy();
  });
  await new Promise<void>((resolve) => fixture.listener.listen(0, '127.0.0.1', resolve));
  fixture.port = (fixture.listener.address() as { port: number }).port;
  return fixture;
}

export async function cleanup(f: Fixture | undefined): Promise<void> {
  if (!f) return;
  f.canary.kill('SIGKILL');
  await new Promise<void>((resolve) => f.listener.close(() => resolve()));
  rmSync(f.dir, { recursive: true, force: true });
}

/**
 * Set the file's atime before its mtime and return it: relatime updates atime
 * on a read when atime <= mtime (mount(8)), so any read from now on shows.
 */
export function markUnread(path: string): number {
  utimesSync(path, new Date(1_000_000), new Date());
  return statSync(path).atimeMs;
}

function kernelConfig(): Map<string, string> {
  const m = new Map<string, string>();
  try {
    for (const line of gunzipSync(readFileSync('/proc/config.gz')).toString().split('\n')) {
      const eq = line.indexOf('=');
      if (line.startsWith('CONFIG_') && eq > 0) m.set(line.slice(0, eq), line.slice(eq + 1));
    }
  } catch {
    /* no /proc/config.gz: the outside checks that depend on it are not skipped */
  }
  return m;
}

/** Is the process alive (not a zombie)? */
export function alive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Host processes still running one of the probes (from inside a sandbox: argv[0] /escape/NAME). */
export function probesLeft(): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').startsWith('/escape/')) found.push(Number(name));
    } catch {
      /* gone */
    }
  }
  return found;
}

/** What the host looks like now, for the "nothing was reached" checks. */
export function hostState(f: Fixture) {
  return {
    secretAtimeMs: statSync(f.secret).atimeMs,
    canaryAlive: alive(f.canary.pid),
    hostname: hostname(),
    connections: f.connections,
    probesLeft: probesLeft(),
  };
}
