/** Shared by the device tests: the probe's view of device nodes, and the sandbox's devices cgroup. */
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
): Promise<{ seen: Map<string, DevSeen>; devicesList: string | null }> {
  let devicesList: string | null = null;
  const r = await run({
    ...options,
    /* A pause first, so the sandbox is still there when onSpawn reads its cgroup. */
    argv: ['/bin/sh', '-c', '/probe sleep 100 && exec /probe dev "$@"', 'sh', ...paths],
    /* capsule-init is in the sandbox's cgroups from before its exec: read its devices list. */
    onSpawn: (sb) => (devicesList = sandboxDevicesList(sb.pid)),
  });
  expect(r.stderr).toBe('');
  expect(r.exitCode).toBe(0);
  const seen = JSON.parse(r.stdout) as DevSeen[];
  return { seen: new Map(seen.map((s) => [s.path, s])), devicesList };
}

/** devices.list of the v1 devices cgroup `pid` is in; null when it is in none of capsule's. */
function sandboxDevicesList(pid: number): string | null {
  const h = detectCgroups().controllers.devices;
  if (h?.version !== 1) return null;
  const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8')
    .split('\n')
    .find((l) => l.split(':')[1]?.split(',').includes('devices'));
  const path = line?.split(':')[2];
  if (!path || !path.includes('/capsule')) return null;
  return readFileSync(join(h.mountPoint, path, 'devices.list'), 'utf8');
}
