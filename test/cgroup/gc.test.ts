/**
 * gc against the real cgroup tree: leftovers of a dead owner are killed and removed, a live
 * owner's cgroups and anything not named like capsule's are left alone.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectCgroups } from '../../src/cgroup/detect.js';
import { gcCgroups, layoutHierarchies } from '../../src/cgroup/gc.js';
import { nextCgroupName, ownerAlive, parseCgroupName, processStartTime } from '../../src/cgroup/names.js';
import { ensureV1Parent } from '../../src/cgroup/v1.js';
import { capsuleCgroupsOnHost, removeTestParent, testParent } from './helpers.js';

describe('names', () => {
  it('names carry the pid and start time of this process', () => {
    const owner = parseCgroupName(nextCgroupName())!;
    expect(owner.pid).toBe(process.pid);
    expect(owner.startTime).toBe(processStartTime(process.pid));
    expect(ownerAlive(owner)).toBe(true);
    expect(ownerAlive({ ...owner, startTime: '1' })).toBe(false); // same pid, another process
    expect(ownerAlive({ pid: 2 ** 22 + 1, startTime: '1', n: 1 })).toBe(false);
  });

  it('anything else is not a capsule name', () => {
    for (const name of ['capsule', 'process_api', '12-34', '12-34-x', 'a-1-2', '1-2-3-4']) {
      expect(parseCgroupName(name)).toBeNull();
    }
  });

  it('reads the start time past a command name with spaces and parentheses', () => {
    expect(processStartTime(1)).toMatch(/^\d+$/);
  });
});

const layout = detectCgroups();
const memory = layout.controllers.memory;
const skip =
  process.getuid?.() !== 0 || memory?.version !== 1 ? 'needs root and a v1 memory hierarchy' : null;

describe.skipIf(skip !== null)('gcCgroups on this machine', () => {
  const parent = testParent('gc');
  let before: string[];
  beforeAll(() => {
    before = capsuleCgroupsOnHost();
  });
  afterAll(() => {
    removeTestParent(layout, parent);
    expect(capsuleCgroupsOnHost()).toEqual(before);
  });

  it('kills and removes a dead owner’s cgroups, keeps live and foreign ones', async () => {
    const h = memory!;
    const dir = ensureV1Parent(h, parent);
    const dead = join(dir, `${2 ** 22 + 1}-12345-1`); // above pid_max: that owner cannot be alive
    const live = join(dir, nextCgroupName());
    const foreign = join(dir, 'not-capsules');
    for (const d of [dead, live, foreign]) mkdirSync(d);

    const sleeper = spawn('/bin/sh', ['-c', `echo 0 > ${dead}/cgroup.procs && exec sleep 30`], {
      stdio: 'ignore',
    });
    const exited = new Promise<NodeJS.Signals | null>((r) => sleeper.on('exit', (_c, s) => r(s)));
    for (let i = 0; i < 100; i++) {
      if (capsuleProcs(dead).length > 0) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(capsuleProcs(dead)).toEqual([sleeper.pid]);

    const result = gcCgroups(layout, { parent });
    expect(result.removed).toEqual([dead]);
    expect(result.killed).toEqual([sleeper.pid]);
    expect(result.live).toEqual([live]);
    expect(result.failed).toEqual([]);
    expect(await exited).toBe('SIGKILL');
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(live)).toBe(true);
    expect(existsSync(foreign)).toBe(true);
    rmdirSync(live);
    rmdirSync(foreign);
  });

  it('never looks outside the parent', () => {
    // Every hierarchy's own root and other top-level cgroups (process_api) are not listed.
    const result = gcCgroups(layout, { parent });
    expect([...result.removed, ...result.live, ...result.failed.map((f) => f.path)]).toEqual([]);
    expect(layoutHierarchies(layout).length).toBeGreaterThan(0);
  });
});

function capsuleProcs(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
