/**
 * src/oci/cgroup.ts on this machine's cgroups: the container's cgroup at its cgroupsPath in
 * every hierarchy, linux.resources written, the freezer, update, and removal with whatever
 * was still inside killed. A `sleep` of the test's own stands for the container.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { detectCgroups } from '../../src/cgroup/detect.js';
import {
  cgroupPids,
  containerHierarchies,
  isFrozen,
  makeContainerCgroup,
  normalizeCgroupsPath,
  removeCgroupDirsSync,
  setFrozen,
  sharesToWeight,
  updateContainerCgroup,
} from '../../src/oci/cgroup.js';

import { removeTestCgroupParents } from './fake-state.js';
import { procStat } from '../../src/oci/state.js';

const layout = detectCgroups();
const usable = containerHierarchies(layout).length > 0;
const rel = `capsule-test/oci-cgroup-${process.pid}`;
const children: ChildProcess[] = [];
let made: string[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  removeCgroupDirsSync(made);
  removeTestCgroupParents();
});

describe('cgroupsPath', () => {
  it('defaults to /capsule-oci/<id>, relative to each hierarchy root', () => {
    expect(normalizeCgroupsPath('', 'abc')).toBe('capsule-oci/abc');
    expect(normalizeCgroupsPath('/capsule-test/x/', 'abc')).toBe('capsule-test/x');
    expect(normalizeCgroupsPath('a/./b', 'abc')).toBe('a/b');
  });
  it.each(['/a/../b', '..', 'system.slice:runc:abc', '/'])('refuses %j', (p) =>
    expect(() => normalizeCgroupsPath(p, 'abc')).toThrow(/linux\.cgroupsPath/),
  );
  it('converts cpu shares to a v2 weight as runc does', () => {
    expect(sharesToWeight(2)).toBe(1);
    expect(sharesToWeight(1024)).toBe(39);
    expect(sharesToWeight(262144)).toBe(10000);
  });
});

describe.skipIf(!usable)('a container cgroup on this machine', () => {
  it('is made with the limits written, holds the container, freezes, updates, and goes', async () => {
    const cg = makeContainerCgroup(rel, {
      memory: { limit: 64 << 20 },
      pids: { limit: 50 },
      cpu: { shares: 512, quota: 50_000, period: 100_000 },
      devices: [{ allow: true, type: 'c', major: 1, minor: 11, access: 'rw' }],
    });
    made = cg.paths;
    /* One per hierarchy with controllers, and on a v1 host one per writable one without (cgroup2, name=systemd). */
    const extra = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter((l) => / \/sys\/fs\/cgroup\/[^ ]* .* - cgroup2? [^ ]* rw(,name=[^ ,]*)?$/.test(l)).length;
    const hierarchies = containerHierarchies(layout);
    expect(cg.paths.length).toBe(hierarchies.length + (hierarchies[0]?.version === 1 ? extra : 0));
    for (const p of cg.paths) expect(p.endsWith('/' + rel)).toBe(true);
    const file = (c: string, f: string) => {
      const p = cg.paths.find((d) => existsSync(join(d, f)));
      if (!p) throw new Error(`no ${c} directory with ${f}`);
      return readFileSync(join(p, f), 'utf8').trim();
    };
    if (layout.mode !== 'v2') {
      expect(file('memory', 'memory.limit_in_bytes')).toBe(String(64 << 20));
      expect(file('pids', 'pids.max')).toBe('50');
      expect(file('cpu', 'cpu.shares')).toBe('512');
      expect(file('cpu', 'cpu.cfs_quota_us')).toBe('50000');
      const devices = file('devices', 'devices.list').split('\n');
      expect(devices).toContain('c 1:11 rw');
      expect(devices).toContain('c 1:3 rwm');
      expect(devices).not.toContain('a *:* rwm');
    } else {
      expect(file('memory', 'memory.max')).toBe(String(64 << 20));
      expect(file('pids', 'pids.max')).toBe('50');
    }

    /* The test's sleep joins it, as the addon's child does through joinFds / dirFd. */
    const c = spawn('sleep', ['60'], { stdio: 'ignore' });
    children.push(c);
    for (const p of cg.paths) writeFileSync(join(p, 'cgroup.procs'), String(c.pid));
    cg.closeFds();
    expect(cgroupPids(cg.paths)).toEqual([c.pid]);

    expect(cg.freezerVersion).not.toBe(0);
    await setFrozen(cg.freezerPath, cg.freezerVersion, true);
    expect(isFrozen(cg.freezerPath, cg.freezerVersion)).toBe(true);
    await setFrozen(cg.freezerPath, cg.freezerVersion, false);
    expect(isFrozen(cg.freezerPath, cg.freezerVersion)).toBe(false);

    updateContainerCgroup(cg.paths, { pids: { limit: 70 }, memory: { limit: 32 << 20 }, devices: [] });
    expect(file('pids', 'pids.max')).toBe('70');
    expect(file('memory', layout.mode === 'v2' ? 'memory.max' : 'memory.limit_in_bytes')).toBe(
      String(32 << 20),
    );

    /* Removal kills what is left inside, even frozen, and waits for it. */
    await setFrozen(cg.freezerPath, cg.freezerVersion, true);
    removeCgroupDirsSync(cg.paths);
    for (const p of cg.paths) expect(existsSync(p)).toBe(false);
    await new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once('exit', r)));
    expect(c.signalCode).toBe('SIGKILL');
    expect(procStat(c.pid!)).toBeNull();
    made = [];
  });

  it('refuses a cgroup that already holds processes', () => {
    const cg = makeContainerCgroup(rel, { devices: [] });
    made = cg.paths;
    const c = spawn('sleep', ['60'], { stdio: 'ignore' });
    children.push(c);
    writeFileSync(join(cg.paths[0]!, 'cgroup.procs'), String(c.pid));
    cg.closeFds();
    expect(() => makeContainerCgroup(rel, { devices: [] })).toThrow(/already has processes/);
    removeCgroupDirsSync(cg.paths);
    made = [];
  });
});
