/**
 * The v1 devices controller: what the writer writes (fake cgroupfs in a temp dir), and what the
 * kernel then enforces (a real v1 devices hierarchy, where this machine has one).
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { ConfigError } from '../../src/errors.js';
import { type CgroupHierarchy, detectCgroups } from '../../src/cgroup/detect.js';
import { traceCgroupWrites } from '../../src/cgroup/files.js';
import { CgroupManager } from '../../src/cgroup/manager.js';
import type { CgroupDeviceRule, DeviceProgramSetter } from '../../src/cgroup/types.js';
import { V1Cgroup } from '../../src/cgroup/v1.js';
import { V2Cgroup } from '../../src/cgroup/v2.js';
import { setDeviceProgram as bpfSetter } from '../../src/devices/index.js';
import {
  capsuleCgroupsOnHost,
  removeTestParent,
  runInCgroup,
  tempDir,
  testParent,
  writeTree,
} from './helpers.js';

const NULL_RWM: CgroupDeviceRule = { type: 'c', major: 1, minor: 3, access: 'rwm' };
const ZERO_RM: CgroupDeviceRule = { type: 'c', major: 1, minor: 5, access: 'rm' };

describe('v1 devices writer (fixture)', () => {
  let root: string;
  let cleanup: () => void;
  let cg: V1Cgroup;
  let writes: string[];

  beforeEach(() => {
    ({ dir: root, cleanup } = tempDir('capsule-v1-devices-'));
    writeTree(join(root, 'capsule/s1'), {
      'cgroup.procs': '',
      'devices.allow': '',
      'devices.deny': '',
      'devices.list': 'a *:* rwm\n',
    });
    const h: CgroupHierarchy = {
      version: 1,
      mountPoint: root,
      root: '/',
      controllers: ['devices'],
      readOnly: false,
    };
    cg = new V1Cgroup(h, join(root, 'capsule'), 's1', ['devices']);
    cg.init();
    writes = [];
    traceCgroupWrites((p, v) => writes.push(`${p.slice(root.length + 1)}=${v}`));
  });
  afterEach(() => {
    traceCgroupWrites(null);
    cg.closeFds();
    cleanup();
  });

  it('denies everything, then allows each rule, one write per rule', () => {
    cg.prepare({ devices: [NULL_RWM, ZERO_RM, { type: 'c', major: 136, minor: '*', access: 'rwm' }] });
    expect(writes).toEqual([
      'capsule/s1/devices.deny=a',
      'capsule/s1/devices.allow=c 1:3 rwm',
      'capsule/s1/devices.allow=c 1:5 rm',
      'capsule/s1/devices.allow=c 136:* rwm',
    ]);
  });

  it('writes nothing when a reused cgroup already holds the same rules', () => {
    cg.prepare({ devices: [NULL_RWM] });
    writes = [];
    cg.prepare({ devices: [NULL_RWM] });
    expect(writes).toEqual([]);
  });

  it('rewrites the whole list, deny first, when the rules differ: nothing of the last run is left', () => {
    cg.prepare({ devices: [NULL_RWM, ZERO_RM] });
    writes = [];
    cg.prepare({ devices: [NULL_RWM] });
    expect(writes).toEqual(['capsule/s1/devices.deny=a', 'capsule/s1/devices.allow=c 1:3 rwm']);
  });

  it('without rules allows everything again, as a fresh cgroup', () => {
    cg.prepare({ devices: [NULL_RWM] });
    writes = [];
    cg.prepare({});
    expect(writes).toEqual(['capsule/s1/devices.allow=a']);
  });

  it('rejects malformed rules before writing anything', () => {
    for (const bad of [
      { type: 'x', major: 1, minor: 3, access: 'r' },
      { type: 'c', major: -1, minor: 3, access: 'r' },
      { type: 'c', major: 1, minor: 3, access: 'wr' },
      { type: 'c', major: 1, minor: 3, access: '' },
      { type: 'c', major: 4096, minor: 3, access: 'r' },
    ]) {
      const manager = new CgroupManager({
        layout: { mode: 'none', unified: null, v1: [], controllers: {}, disabled: [] },
        cleanupOnExit: false,
      });
      expect(() => manager.acquire({ devices: [bad as CgroupDeviceRule] })).toThrow(ConfigError);
    }
    expect(writes).toEqual([]);
  });
});

const layout = detectCgroups();
const devicesHierarchy = layout.controllers.devices;
const skip =
  process.getuid?.() !== 0
    ? 'not root'
    : devicesHierarchy?.version !== 1
      ? 'no v1 devices hierarchy here'
      : null;
if (skip) console.warn(`skipping the real devices cgroup tests: ${skip}`);

describe.skipIf(skip !== null)('v1 devices controller (real)', () => {
  const parent = testParent('devices');
  let before: string[];
  let manager: CgroupManager;

  beforeAll(() => {
    before = capsuleCgroupsOnHost();
    manager = new CgroupManager({ layout, parent, poolSize: 2 });
  });
  afterAll(() => {
    expect(manager.close().failed).toEqual([]);
    removeTestParent(layout, parent);
    expect(capsuleCgroupsOnHost()).toEqual(before);
  });

  const devicesPath = (paths: readonly string[]) =>
    paths.find((p) => p.startsWith(devicesHierarchy!.mountPoint))!;

  it('the kernel enforces the list: r allows reading and denies writing; an unlisted node is denied', async () => {
    const cg = manager.acquire({ devices: [NULL_RWM, ZERO_RM] }, { accounting: false })!;
    expect(cg.controllers).toContain('devices');
    expect(readFileSync(join(devicesPath(cg.paths), 'devices.list'), 'utf8')).toBe('c 1:3 rwm\nc 1:5 rm\n');
    const exit = await runInCgroup(
      cg,
      'echo x > /dev/null && echo null-write-ok; ' +
        'head -c 1 /dev/zero > /dev/null && echo zero-read-ok; ' +
        '(echo x > /dev/zero) 2>/dev/null || echo zero-write-denied; ' +
        '(head -c 1 /dev/urandom) 2>/dev/null || echo urandom-denied',
    );
    expect(exit.stdout.trim().split('\n')).toEqual([
      'null-write-ok',
      'zero-read-ok',
      'zero-write-denied',
      'urandom-denied',
    ]);
    await cg.release();
  });

  it("a pooled cgroup reused for other rules keeps nothing of the last run's", async () => {
    const first = manager.acquire(
      { devices: [NULL_RWM, { type: 'c', major: 1, minor: 9, access: 'rwm' }] },
      { accounting: false },
    )!;
    const path = devicesPath(first.paths);
    await first.release();
    const second = manager.acquire({ devices: [NULL_RWM] }, { accounting: false })!;
    expect(devicesPath(second.paths)).toBe(path); // the same cgroup, from the pool
    expect(readFileSync(join(path, 'devices.list'), 'utf8')).toBe('c 1:3 rwm\n');
    const exit = await runInCgroup(second, '(head -c 1 /dev/urandom) 2>/dev/null || echo urandom-denied');
    expect(exit.stdout.trim()).toBe('urandom-denied');
    await second.release();
  });

  it('a device the parent cgroup denies fails the acquire, saying where to allow it; nothing is left', () => {
    const denying = testParent('devdeny');
    const dir = join(devicesHierarchy!.mountPoint, denying);
    mkdirSync(dir);
    writeFileSync(join(dir, 'devices.deny'), 'c 1:9 rwm');
    const strict = new CgroupManager({ layout, parent: denying, cleanupOnExit: false });
    try {
      expect(() =>
        strict.acquire(
          { devices: [NULL_RWM, { type: 'c', major: 1, minor: 9, access: 'rwm' }] },
          { accounting: false },
        ),
      ).toThrow(
        new RegExp(
          `^cgroup devices: ${dir} does not allow "c 1:9 rwm", so no sandbox under it can have it \\(EPERM\\)`,
        ),
      );
      expect(readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory())).toEqual([]);
    } finally {
      expect(strict.close().failed).toEqual([]);
      removeTestParent(layout, denying);
    }
  });

  it('a run without device rules never joins the devices hierarchy', () => {
    const cg = manager.acquire({}, { accounting: true });
    expect(cg?.controllers ?? []).not.toContain('devices');
    void cg?.release();
  });
});

describe('v2 devices: a BPF program through the setter (fixture)', () => {
  let root: string;
  let cleanup: () => void;
  let calls: (readonly CgroupDeviceRule[] | null)[];
  const make = (setter?: DeviceProgramSetter) => {
    writeTree(join(root, 'capsule/s1'), { 'cgroup.procs': '', 'cpu.stat': 'usage_usec 0\n' });
    const h: CgroupHierarchy = { version: 2, mountPoint: root, root: '/', controllers: [], readOnly: false };
    const cg = new V2Cgroup(h, join(root, 'capsule'), 's1', ['devices'], { setDeviceProgram: setter });
    cg.init();
    return cg;
  };
  beforeEach(() => {
    ({ dir: root, cleanup } = tempDir('capsule-v2-devices-'));
    calls = [];
  });
  afterEach(() => cleanup());

  it('attaches the rules to the directory fd, again only when they change, and detaches without rules', () => {
    let fd = -1;
    const cg = make((dirFd, rules) => {
      fd = dirFd;
      calls.push(rules);
    });
    cg.prepare({ devices: [NULL_RWM] });
    cg.prepare({ devices: [NULL_RWM] });
    cg.prepare({ devices: [NULL_RWM, ZERO_RM] });
    cg.prepare({});
    expect(fd).toBe(cg.dirFd);
    expect(calls).toEqual([[NULL_RWM], [NULL_RWM, ZERO_RM], null]);
    cg.closeFds();
  });

  it('fails closed: no setter, or a setter that fails, is a CgroupError naming devices', () => {
    const none = make();
    expect(() => none.prepare({ devices: [NULL_RWM] })).toThrow(/cgroup v2 has no devices controller/);
    none.closeFds();
    const failing = make(() => {
      throw Object.assign(
        new Error('bpf(BPF_PROG_LOAD, BPF_PROG_TYPE_CGROUP_DEVICE): Operation not permitted'),
        {
          errno: 1,
        },
      );
    });
    expect(() => failing.prepare({ devices: [NULL_RWM] })).toThrow(
      /^cgroup devices: cannot gate devices in .*: bpf\(BPF_PROG_LOAD, BPF_PROG_TYPE_CGROUP_DEVICE\): Operation not permitted$/,
    );
    failing.closeFds();
  });
});

const unified = layout.unified;
const skipV2 =
  process.getuid?.() !== 0
    ? 'not root'
    : !unified || unified.readOnly
      ? 'no writable cgroup2 mount here'
      : null;
if (skipV2) console.warn(`skipping the real BPF device program tests: ${skipV2}`);

describe.skipIf(skipV2 !== null)('v2 devices: the BPF device program (real, on the cgroup2 mount)', () => {
  const parent = testParent('bpfdev');
  // Only the unified hierarchy, as on a pure v2 machine: devices and cpu.stat there.
  const v2Layout = {
    mode: 'v2' as const,
    unified: unified!,
    v1: [],
    controllers: { devices: unified!, cpuacct: unified! },
    disabled: [],
  };
  let before: string[];
  let manager: CgroupManager;
  beforeAll(() => {
    before = capsuleCgroupsOnHost();
    manager = new CgroupManager({ layout: v2Layout, parent, poolSize: 2, setDeviceProgram: bpfSetter });
  });
  afterAll(() => {
    expect(manager.close().failed).toEqual([]);
    removeTestParent(v2Layout, parent);
    expect(capsuleCgroupsOnHost()).toEqual(before);
  });

  it('the kernel enforces the program: r allows reading and denies writing; an unlisted node is denied', async () => {
    const cg = manager.acquire({ devices: [NULL_RWM, ZERO_RM] }, { accounting: false })!;
    expect(cg.paths[0]!.startsWith(unified!.mountPoint)).toBe(true);
    const exit = await runInCgroup(
      cg,
      'echo x > /dev/null && echo null-write-ok; ' +
        'head -c 1 /dev/zero > /dev/null && echo zero-read-ok; ' +
        '(echo x > /dev/zero) 2>/dev/null || echo zero-write-denied; ' +
        '(head -c 1 /dev/urandom > /dev/null) 2>/dev/null || echo urandom-denied',
    );
    expect(exit.stdout.trim().split('\n')).toEqual([
      'null-write-ok',
      'zero-read-ok',
      'zero-write-denied',
      'urandom-denied',
    ]);
    await cg.release();
  });

  it('a pooled cgroup gets the next list only, and no program without rules', async () => {
    const first = manager.acquire(
      { devices: [NULL_RWM, { type: 'c', major: 1, minor: 9, access: 'rwm' }] },
      { accounting: false },
    )!;
    const path = first.paths[0];
    await first.release();
    const second = manager.acquire({ devices: [NULL_RWM] }, { accounting: false })!;
    expect(second.paths[0]).toBe(path);
    const denied = await runInCgroup(
      second,
      '(head -c 1 /dev/urandom > /dev/null) 2>/dev/null || echo urandom-denied',
    );
    expect(denied.stdout.trim()).toBe('urandom-denied');
    await second.release();
  });
});
