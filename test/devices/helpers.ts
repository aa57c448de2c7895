/** Shared by the device tests: the probe's view of device nodes, and the sandbox's devices cgroup. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';

import { detectCgroups } from '../../src/cgroup/detect.js';
import { type RunOptions, run } from '../../src/index.js';

export interface DevSeen {
  path: string;
  stat: string;
  type?: 'c' | 'b' | 'other';
  major?: number;
  minor?: number;
  mode?: number;
  read?: string;
  write?: string;
}

/** The probe's view of each path: stat, and open for read and for write. */
export async function probeDev(
  options: Partial<RunOptions> & { rootfs: string },
  paths: string[],
  /** Host device paths to open as root from inside the sandbox's v1 devices cgroup (see openInCgroup). */
  openAsRoot: string[] = [],
): Promise<{
  seen: Map<string, DevSeen>;
  devicesList: string | null;
  asRoot: Map<string, { read: string; write: string }>;
}> {
  let devicesList: string | null = null;
  const asRoot = new Map<string, { read: string; write: string }>();
  const r = await run({
    ...options,
    /* A pause first, so the sandbox is still there when onSpawn reads its cgroup. */
    argv: ['/bin/sh', '-c', '/probe sleep 100 && exec /probe dev "$@"', 'sh', ...paths],
    /* capsule-init is in the sandbox's cgroups from before its exec: read its devices list. */
    onSpawn: (sb) => {
      const dir = sandboxDevicesCgroup(sb.pid);
      devicesList = dir && readFileSync(join(dir, 'devices.list'), 'utf8');
      for (const p of openAsRoot)
        if (dir) asRoot.set(p, { read: openInCgroup(dir, `3<${p}`), write: openInCgroup(dir, `3>${p}`) });
    },
  });
  expect(r.stderr).toBe('');
  expect(r.exitCode).toBe(0);
  const seen = JSON.parse(r.stdout) as DevSeen[];
  return { seen: new Map(seen.map((s) => [s.path, s])), devicesList, asRoot };
}

/** The v1 devices cgroup directory `pid` is in; null when it is in none of capsule's. */
function sandboxDevicesCgroup(pid: number): string | null {
  const h = detectCgroups().controllers.devices;
  if (h?.version !== 1) return null;
  const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8')
    .split('\n')
    .find((l) => l.split(':')[1]?.split(',').includes('devices'));
  const path = line?.split(':')[2];
  if (!path || !path.includes('/capsule')) return null;
  return join(h.mountPoint, path);
}

/**
 * A root shell moved into a devices cgroup opens a host node: root passes the node's mode
 * (and the host's nodes are not the sandbox's), so only the cgroup can refuse. 'ok' or 'EPERM'.
 */
function openInCgroup(dir: string, redirect: string): string {
  const p = spawnSync('/bin/sh', ['-c', `echo $$ > ${dir}/cgroup.procs && exec ${redirect} && echo ok`], {
    encoding: 'utf8',
  });
  return (p.stdout + p.stderr).includes('Operation not permitted')
    ? 'EPERM'
    : p.stdout.trim() || p.stderr.trim();
}
