/**
 * What a sandbox must not share with the host or its neighbours (issue 9 §4),
 * seen from inside: the host's cgroup paths, kernel memory through inodes a
 * tmpfs's size cap does not count, executable shared memory, and the
 * root-only /proc files a uid-0 sandbox could read by permission bits alone.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { run, type RunOptions } from '../../src/index.js';
import { BUSYBOX, makeBusyboxRootfs } from '../helpers/rootfs.js';

let dir: string;
let rootfs: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'capsule-sharing-'));
  rootfs = join(dir, 'rootfs');
  mkdirSync(rootfs);
  makeBusyboxRootfs(rootfs, BUSYBOX);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function sh(script: string, extra: Partial<RunOptions> = {}) {
  return run({ rootfs, argv: ['/bin/sh', '-c', script], ...extra });
}

describe('cgroup namespace', () => {
  for (const cgroups of [true, false]) {
    it(`/proc/self/cgroup shows "/", not the host's paths (cgroups: ${cgroups})`, async () => {
      const r = await sh('cat /proc/self/cgroup', { cgroups });
      const lines = r.stdout.trim().split('\n');
      expect(lines.length).toBeGreaterThan(0);
      expect(lines.filter((l) => !l.endsWith(':/'))).toEqual([]);
    });
  }
});

describe('tmpfs inode caps', () => {
  /* 4 MiB: one inode per 4 KiB page would be 1024, which is also the floor. */
  const makeFiles = (dirInside: string) =>
    `i=0; while [ $i -lt 5000 ]; do true > ${dirInside}/f$i || break; i=$((i+1)); done; echo $i`;

  it('/tmp: empty files stop at the inode cap with ENOSPC', async () => {
    const r = await sh(makeFiles('/tmp'), { tmpSizeBytes: 4 << 20 });
    expect(r.stderr).toContain('No space left on device');
    const made = Number(r.stdout.trim());
    expect(made).toBeGreaterThan(1000);
    expect(made).toBeLessThanOrEqual(1024);
  });

  it('/dev/shm: the same cap, and it is noexec', async () => {
    const r = await sh(`${makeFiles('/dev/shm')}; cat /proc/self/mountinfo`, {
      devShm: true,
      devShmSizeBytes: 4 << 20,
    });
    expect(r.stderr).toContain('No space left on device');
    const [count, ...mountinfo] = r.stdout.trim().split('\n');
    expect(Number(count)).toBeLessThanOrEqual(1024);
    const shm = mountinfo.find((l) => l.split(' ')[4] === '/dev/shm');
    expect(shm?.split(' ')[5]).toMatch(/nosuid,nodev,noexec/);
  });
});

describe('root-only /proc files under uid 0', () => {
  const files = ['kpageflags', 'kpagecount', 'kpagecgroup', 'slabinfo', 'vmallocinfo', 'pagetypeinfo'];
  const present = files.filter((f) => existsSync(`/proc/${f}`));

  it.skipIf(present.length === 0)(
    `are masked: ${present.join(', ')} (skipped where this kernel has none of them)`,
    async () => {
      const script = present
        .map((f) => `echo ${f} $(busybox head -c 64 /proc/${f} | busybox wc -c)`)
        .join('; ');
      const r = await sh(script, { uid: 0, gid: 0 });
      expect(r.stdout.trim().split('\n')).toEqual(present.map((f) => `${f} 0`));
    },
  );
});
