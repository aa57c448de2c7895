/** The v1 writer against a fake cgroupfs in a temp dir: what it writes, in which order, and what it reads. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CgroupHierarchy } from '../../src/cgroup/detect.js';
import { traceCgroupWrites } from '../../src/cgroup/files.js';
import { emptyUsage } from '../../src/cgroup/types.js';
import { ensureV1Parent, V1Cgroup } from '../../src/cgroup/v1.js';
import { tempDir, writeTree } from './helpers.js';

const UNLIMITED = '9223372036854771712\n';
const MiB = 1024 * 1024;

/** The files a fresh v1 cgroup has, with the kernel's initial values. */
function freshV1(): Record<string, string> {
  return {
    'cgroup.procs': '',
    'memory.limit_in_bytes': UNLIMITED,
    'memory.memsw.limit_in_bytes': UNLIMITED,
    'memory.max_usage_in_bytes': '4096\n',
    'memory.memsw.max_usage_in_bytes': '4096\n',
    'memory.failcnt': '0\n',
    'memory.memsw.failcnt': '0\n',
    'memory.usage_in_bytes': '4096\n',
    'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 0\n',
    'cpuacct.usage': '0\n',
    'cpuacct.usage_all': 'cpu user system\n0 0 0\n1 0 0\n',
    'cpu.cfs_period_us': '100000\n',
    'cpu.cfs_quota_us': '-1\n',
    'cpu.stat': 'nr_periods 0\nnr_throttled 0\nthrottled_time 0\n',
    'pids.max': 'max\n',
    'pids.events': 'max 0\n',
    'pids.current': '0\n',
    'cpuset.cpus': '\n',
    'cpuset.mems': '\n',
  };
}

describe('V1Cgroup (fixture)', () => {
  let root: string;
  let cleanup: () => void;
  let writes: [string, string][];
  let cg: V1Cgroup;
  const read = (f: string) => readFileSync(join(root, 'capsule/s1', f), 'utf8');
  const set = (f: string, v: string) => writeFileSync(join(root, 'capsule/s1', f), v);
  const written = () => writes.map(([p, v]) => `${p.slice(root.length + 1)}=${v}`);

  beforeEach(() => {
    ({ dir: root, cleanup } = tempDir('capsule-v1-'));
    writeTree(root, { 'capsule/cpuset.cpus': '0-1\n', 'capsule/cpuset.mems': '0\n' });
    writeTree(join(root, 'capsule/s1'), freshV1());
    // One fake hierarchy carrying every controller, so one directory exercises all writers.
    const h: CgroupHierarchy = { version: 1, mountPoint: root, root: '/', controllers: [], readOnly: false };
    cg = new V1Cgroup(h, join(root, 'capsule'), 's1', ['memory', 'cpu', 'cpuacct', 'pids', 'cpuset']);
    cg.init();
    writes = [];
    traceCgroupWrites((p, v) => writes.push([p, v]));
  });
  afterEach(() => {
    traceCgroupWrites(null);
    cg.closeFds();
    cleanup();
  });

  it('init copies the parent cpuset and opens cgroup.procs', () => {
    expect(read('cpuset.cpus')).toBe('0-1');
    expect(read('cpuset.mems')).toBe('0');
    expect(cg.joinFd).toBeGreaterThan(2);
  });

  it('prepare writes every limit and resets the counters', () => {
    cg.prepare({ memoryLimitBytes: 64 * MiB, pidsLimit: 10, cpus: 1.5, cpusetCpus: '1' });
    expect(written()).toEqual([
      // lowering from unlimited: limit_in_bytes first, memsw after (memsw >= limit at all times)
      `capsule/s1/memory.limit_in_bytes=${64 * MiB}`,
      `capsule/s1/memory.memsw.limit_in_bytes=${64 * MiB}`,
      'capsule/s1/memory.max_usage_in_bytes=0',
      'capsule/s1/memory.failcnt=0',
      'capsule/s1/memory.memsw.max_usage_in_bytes=0',
      'capsule/s1/memory.memsw.failcnt=0',
      'capsule/s1/cpuacct.usage=0',
      'capsule/s1/cpu.cfs_quota_us=150000',
      'capsule/s1/pids.max=10',
      'capsule/s1/cpuset.cpus=1',
    ]);
  });

  it('raising or lifting the memory limit writes memsw first', () => {
    cg.prepare({ memoryLimitBytes: 64 * MiB });
    writes = [];
    cg.prepare({ memoryLimitBytes: 128 * MiB });
    expect(written().slice(0, 2)).toEqual([
      `capsule/s1/memory.memsw.limit_in_bytes=${128 * MiB}`,
      `capsule/s1/memory.limit_in_bytes=${128 * MiB}`,
    ]);
    writes = [];
    cg.prepare({});
    expect(written().slice(0, 2)).toEqual([
      'capsule/s1/memory.memsw.limit_in_bytes=-1',
      'capsule/s1/memory.limit_in_bytes=-1',
    ]);
    writes = [];
    cg.prepare({ memoryLimitBytes: 32 * MiB });
    expect(written().slice(0, 2)).toEqual([
      `capsule/s1/memory.limit_in_bytes=${32 * MiB}`,
      `capsule/s1/memory.memsw.limit_in_bytes=${32 * MiB}`,
    ]);
  });

  it('an unchanged limit is not rewritten; counters are reset every time', () => {
    cg.prepare({ memoryLimitBytes: 64 * MiB, pidsLimit: 10, cpus: 1 });
    writes = [];
    cg.prepare({ memoryLimitBytes: 64 * MiB, pidsLimit: 10, cpus: 1 });
    expect(written()).toEqual([
      'capsule/s1/memory.max_usage_in_bytes=0',
      'capsule/s1/memory.failcnt=0',
      'capsule/s1/memory.memsw.max_usage_in_bytes=0',
      'capsule/s1/memory.memsw.failcnt=0',
      'capsule/s1/cpuacct.usage=0',
    ]);
  });

  it('collect reports this run only: non-resettable counters minus their baseline', () => {
    // Counters as a previous run left them.
    set('memory.oom_control', 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n');
    set('pids.events', 'max 5\n');
    set('cpu.stat', 'nr_periods 9\nnr_throttled 3\nthrottled_time 1000000\n');
    cg.prepare({ memoryLimitBytes: 64 * MiB, pidsLimit: 10, cpus: 0.5 });
    // What this run adds.
    set('memory.max_usage_in_bytes', `${60 * MiB}\n`);
    set('memory.memsw.max_usage_in_bytes', `${60 * MiB}\n`);
    set('memory.oom_control', 'oom_kill_disable 0\nunder_oom 0\noom_kill 3\n');
    set('pids.events', 'max 6\n');
    set('cpuacct.usage_all', 'cpu user system\n0 100000000 50000000\n1 20000000 0\n');
    set('cpuacct.usage', '170000000\n');
    set('cpu.stat', 'nr_periods 19\nnr_throttled 5\nthrottled_time 5000000\n');
    const u = emptyUsage();
    cg.collect(u);
    expect(u).toEqual({
      cpuTimeMs: 170,
      userCpuMs: 120,
      systemCpuMs: 50,
      peakMemoryBytes: 60 * MiB,
      memoryLimitHit: true,
      oomKilled: true,
      oomKillCount: 1,
      pidsLimitHit: true,
      cpuThrottledMs: 4,
    });
    expect(cg.cpuTimeMs()).toBe(170);
  });

  it('splits the exact total between user and system by the sampled ratio, so the three agree', () => {
    cg.prepare({});
    // As measured here: usage_all counts whole 4 ms ticks (24 + 4 ms), cpuacct.usage the exact
    // runtime (29.32008 ms). The kernel scales the same way for /proc/PID/stat and cgroup v2's
    // cpu.stat (cputime_adjust): user + system is the exact total.
    set('cpuacct.usage_all', 'cpu user system\n0 24000000 4000000\n1 0 0\n');
    set('cpuacct.usage', '29320080\n');
    const u = emptyUsage();
    cg.collect(u);
    expect(u.cpuTimeMs).toBe(29.32008);
    expect(u.userCpuMs).toBeCloseTo((29.32008 * 24) / 28, 6);
    expect(u.userCpuMs! + u.systemCpuMs!).toBeCloseTo(u.cpuTimeMs!, 6);
    // No tick at all in a short run: all of it is user time, as the kernel's cputime_adjust says.
    set('cpuacct.usage_all', 'cpu user system\n0 0 0\n1 0 0\n');
    set('cpuacct.usage', '1500000\n');
    const short = emptyUsage();
    cg.collect(short);
    expect(short).toMatchObject({ cpuTimeMs: 1.5, userCpuMs: 1.5, systemCpuMs: 0 });
  });

  it('without swap accounting: swappiness 0, and only memory.limit_in_bytes is written', () => {
    cg.closeFds();
    const { dir, cleanup: c2 } = tempDir('capsule-v1-noswap-');
    const files = freshV1();
    for (const k of Object.keys(files)) if (k.includes('memsw')) delete files[k];
    files['memory.swappiness'] = '60\n';
    writeTree(join(dir, 's2'), files);
    const h: CgroupHierarchy = {
      version: 1,
      mountPoint: dir,
      root: '/',
      controllers: ['memory'],
      readOnly: false,
    };
    cg = new V1Cgroup(h, dir, 's2', ['memory']);
    cg.init();
    cg.prepare({ memoryLimitBytes: 64 * MiB });
    expect(writes.map(([p]) => p.slice(dir.length + 1))).toEqual([
      's2/memory.swappiness', // 0: the limit cannot cap swap, so no swapping at the limit
      's2/memory.limit_in_bytes',
      's2/memory.max_usage_in_bytes',
      's2/memory.failcnt',
    ]);
    cg.closeFds();
    c2();
  });

  it('recyclable: a leftover charge above the threshold retires the cgroup, without reclaiming it', () => {
    set('memory.usage_in_bytes', `${512 * 1024}\n`);
    expect(cg.recyclable()).toBe(true);
    set('memory.usage_in_bytes', `${8 * MiB}\n`);
    expect(cg.recyclable()).toBe(false);
    expect(writes).toEqual([]); // no memory.force_empty: it would evict the cached pages
  });

  it('kill signals every pid in cgroup.procs', () => {
    expect(cg.kill()).toBe(false);
  });
});

describe('ensureV1Parent (fixture)', () => {
  it('creates each level and copies cpus and mems down a cpuset hierarchy', () => {
    const { dir, cleanup } = tempDir('capsule-v1p-');
    try {
      writeTree(dir, { 'cpuset.cpus': '0-3\n', 'cpuset.mems': '0\n' });
      const h: CgroupHierarchy = {
        version: 1,
        mountPoint: dir,
        root: '/',
        controllers: ['cpuset'],
        readOnly: false,
      };
      // kernfs would create these at mkdir; a fixture cannot, so they are made in advance.
      writeTree(dir, { 'a/cpuset.cpus': '\n', 'a/cpuset.mems': '\n' });
      expect(ensureV1Parent(h, 'a')).toBe(join(dir, 'a'));
      // b is created for real, without the files kernfs would add: the copy fails loudly
      // (ENOENT) rather than creating files.
      expect(() => ensureV1Parent(h, 'a/b')).toThrow(
        /cgroup cpuset: cannot read .*a\/b\/cpuset.cpus: ENOENT/,
      );
    } finally {
      cleanup();
    }
  });
});
