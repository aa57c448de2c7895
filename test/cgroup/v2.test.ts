/**
 * The v2 writer against a fake cgroupfs in a temp dir. This is how the v2 code is tested on
 * a v1 machine. The real-kernel half is the 'cgroup v2 only' suite of manager.test.ts (where v2
 * has controllers) and, below, the core files every cgroup2 mount has.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type CgroupHierarchy, type CgroupLayout, detectCgroups } from '../../src/cgroup/detect.js';
import { traceCgroupWrites } from '../../src/cgroup/files.js';
import { emptyUsage } from '../../src/cgroup/types.js';
import { detectV2Features, ensureV2Parent, V2Cgroup } from '../../src/cgroup/v2.js';
import { CgroupManager } from '../../src/cgroup/manager.js';
import {
  burnLoop,
  capsuleCgroupsOnHost,
  removeTestParent,
  runInCgroup,
  tempDir,
  testParent,
  timesTotalMs,
  writeTree,
} from './helpers.js';

const MiB = 1024 * 1024;

function freshV2(): Record<string, string> {
  return {
    'cgroup.procs': '',
    'cgroup.kill': '',
    'cgroup.events': 'populated 0\nfrozen 0\n',
    'memory.max': 'max\n',
    'memory.swap.max': 'max\n',
    'memory.oom.group': '0\n',
    'memory.peak': '0\n',
    'memory.current': '0\n',
    'memory.events': 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n',
    'cpu.max': 'max 100000\n',
    'cpu.stat':
      'usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n',
    'pids.max': 'max\n',
    'pids.events': 'max 0\n',
    'pids.current': '0\n',
    'cpuset.cpus': '\n',
  };
}

const hierarchy = (mountPoint: string, controllers: string[]): CgroupHierarchy => ({
  version: 2,
  mountPoint,
  root: '/',
  controllers,
  readOnly: false,
});

describe('V2Cgroup (fixture)', () => {
  let root: string;
  let cleanup: () => void;
  let writes: string[];
  let cg: V2Cgroup;
  const set = (f: string, v: string) => writeFileSync(join(root, 'capsule/s1', f), v);
  const read = (f: string) => readFileSync(join(root, 'capsule/s1', f), 'utf8');

  beforeEach(() => {
    ({ dir: root, cleanup } = tempDir('capsule-v2-'));
    writeTree(join(root, 'capsule/s1'), freshV2());
    cg = new V2Cgroup(hierarchy(root, []), join(root, 'capsule'), 's1', [
      'cpu',
      'cpuacct',
      'cpuset',
      'memory',
      'pids',
    ]);
    cg.init();
    writes = [];
    traceCgroupWrites((p, v) => writes.push(`${p.slice(root.length + 1)}=${v}`));
  });
  afterEach(() => {
    traceCgroupWrites(null);
    cg.closeFds();
    cleanup();
  });

  it('init turns on memory.oom.group and opens cgroup.procs', () => {
    expect(read('memory.oom.group')).toBe('1');
    expect(cg.joinFd).toBeGreaterThan(2);
  });

  it('prepare writes memory.max with swap off, pids.max, cpu.max and cpuset.cpus', () => {
    cg.prepare({ memoryLimitBytes: 64 * MiB, pidsLimit: 10, cpus: 1.5, cpusetCpus: '0-1' });
    expect(writes).toEqual([
      `capsule/s1/memory.max=${64 * MiB}`,
      'capsule/s1/memory.swap.max=0',
      'capsule/s1/cpu.max=150000 100000',
      'capsule/s1/pids.max=10',
      'capsule/s1/cpuset.cpus=0-1',
    ]);
    // memory.peak was reset through its own fd (a regular file here just holds the word).
    expect(read('memory.peak')).toMatch(/^reset\n/);
  });

  it('lifting the limits writes max everywhere; unchanged limits are not rewritten', () => {
    cg.prepare({ memoryLimitBytes: 64 * MiB, pidsLimit: 10, cpus: 1.5, cpusetCpus: '0-1' });
    writes = [];
    cg.prepare({ memoryLimitBytes: 64 * MiB, pidsLimit: 10, cpus: 1.5, cpusetCpus: '0-1' });
    expect(writes).toEqual([]);
    cg.prepare({});
    expect(writes).toEqual([
      'capsule/s1/memory.max=max',
      'capsule/s1/memory.swap.max=max',
      'capsule/s1/cpu.max=max 100000',
      'capsule/s1/pids.max=max',
      'capsule/s1/cpuset.cpus=\n',
    ]);
  });

  it('collect subtracts the baselines of memory.events, cpu.stat and pids.events and reads peak from its fd', () => {
    set('memory.events', 'low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n');
    set('cpu.stat', 'usage_usec 9000\nuser_usec 6000\nsystem_usec 3000\nthrottled_usec 100\n');
    set('pids.events', 'max 2\n');
    cg.prepare({ memoryLimitBytes: 64 * MiB });
    set('memory.peak', `${50 * MiB}\n`); // same inode: the fd opened at prepare sees it
    set('memory.events', 'low 0\nhigh 0\nmax 9\noom 3\noom_kill 3\noom_group_kill 1\n');
    set('cpu.stat', 'usage_usec 309000\nuser_usec 206000\nsystem_usec 103000\nthrottled_usec 2100\n');
    set('pids.events', 'max 2\n');
    const u = emptyUsage();
    cg.collect(u);
    expect(u).toEqual({
      cpuTimeMs: 300,
      userCpuMs: 200,
      systemCpuMs: 100,
      peakMemoryBytes: 50 * MiB,
      memoryLimitHit: true,
      oomKilled: true,
      oomKillCount: 2,
      pidsLimitHit: false,
      cpuThrottledMs: 2,
      memoryEvents: { low: 0, high: 0, max: 5, oom: 2, oom_kill: 2, oom_group_kill: 1 },
    });
    expect(cg.cpuTimeMs()).toBe(300);
  });

  it('cpu.stat gives CPU time even without the cpu controller (cpuacct role)', () => {
    cg.closeFds();
    cg = new V2Cgroup(hierarchy(root, []), join(root, 'capsule'), 's1', ['cpuacct']);
    cg.init();
    cg.prepare({});
    set('cpu.stat', 'usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n');
    const u = emptyUsage();
    cg.collect(u);
    expect(u.cpuTimeMs).toBe(1.5);
    expect(u.cpuThrottledMs).toBeNull();
    expect(writes).toEqual([]);
  });

  it('user + system == total: the kernel rounds each down to a µs, capsule splits the exact total', () => {
    cg.prepare({});
    set('cpu.stat', 'usage_usec 1000\nuser_usec 666\nsystem_usec 333\n');
    const u = emptyUsage();
    cg.collect(u);
    expect(u.cpuTimeMs).toBe(1);
    expect(u.userCpuMs! + u.systemCpuMs!).toBeCloseTo(1, 9);
    expect(u.userCpuMs).toBeCloseTo((1 * 666) / 999, 9);
  });

  /**
   * The v2 kernels people run, as the files a new cgroup has there (kernfs makes them at
   * mkdir; a read-only file has mode 0444): what capsule reads from each, and whether a
   * cgroup that served one run may serve the next without carrying its peak, CPU, OOM count
   * or limits along (docs/cgroups.md has the same table).
   */
  const kernels = [
    // [kernel, memory.peak, cgroup.kill, peak reported, pooled]
    ['5.10', null, false, null, true],
    ['5.15 (Ubuntu 22.04)', null, true, null, true],
    ['6.1 (Debian 12)', 0o444, true, 'all-time', false],
    ['6.8 (Ubuntu 24.04)', 0o444, true, 'all-time', false],
    ['6.12+', 0o644, true, 'this run', true],
  ] as const;
  it.each(kernels)(
    'kernel %s: peak, OOM, CPU and limits of a run never reach the next',
    (_k, peakMode, kill, peak, pooled) => {
      cg.closeFds();
      const files: Record<string, string> = freshV2();
      delete files['memory.peak'];
      if (!kill) delete files['cgroup.kill'];
      files['memory.events'] = 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n'; // no oom_group_kill before 5.17
      const dir = join(root, 'capsule/k');
      writeTree(dir, files);
      if (peakMode) {
        writeFileSync(join(dir, 'memory.peak'), '0\n');
        chmodSync(join(dir, 'memory.peak'), peakMode);
      }
      const setK = (f: string, v: string) => writeFileSync(join(dir, f), v);
      expect(detectV2Features(dir)).toEqual({
        peak: peakMode === null ? 'absent' : peakMode & 0o200 ? 'resettable' : 'fixed',
        kill,
        swapMax: true,
        oomGroup: true,
      });
      cg = new V2Cgroup(hierarchy(root, []), join(root, 'capsule'), 'k', ['cpu', 'memory', 'pids']);
      cg.init();
      cg.prepare({ memoryLimitBytes: 64 * MiB, pidsLimit: 8, cpus: 0.5 });
      // Run 1: an OOM kill, 40 MiB peak, 300 ms of CPU, the pids limit hit.
      if (peakMode) setK('memory.peak', `${40 * MiB}\n`);
      setK('memory.events', 'low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n');
      setK('cpu.stat', 'usage_usec 300000\nuser_usec 200000\nsystem_usec 100000\nthrottled_usec 5000\n');
      setK('pids.events', 'max 1\n');
      setK('memory.current', '8192\n');
      const u1 = emptyUsage();
      cg.collect(u1);
      expect(u1).toMatchObject({
        peakMemoryBytes: peak === null ? null : 40 * MiB,
        oomKillCount: 1,
        memoryLimitHit: true,
        pidsLimitHit: true,
        cpuTimeMs: 300,
        cpuThrottledMs: 5,
      });
      expect(cg.recyclable()).toBe(pooled);
      if (!pooled) return; // the manager removes it; the next run gets a fresh cgroup
      // Run 2 in the same cgroup, without limits: only its own figures, and no limit left.
      writes = [];
      cg.prepare({});
      expect(writes).toEqual([
        'capsule/k/memory.max=max',
        'capsule/k/memory.swap.max=max',
        'capsule/k/cpu.max=max 100000',
        'capsule/k/pids.max=max',
      ]);
      if (peakMode) setK('memory.peak', `${2 * MiB}\n`); // what the kernel shows through the reset fd
      setK('cpu.stat', 'usage_usec 310000\nuser_usec 208000\nsystem_usec 102000\nthrottled_usec 5000\n');
      const u2 = emptyUsage();
      cg.collect(u2);
      expect(u2).toMatchObject({
        peakMemoryBytes: peak === null ? null : 2 * MiB,
        oomKillCount: 0,
        oomKilled: false,
        memoryLimitHit: false,
        pidsLimitHit: false,
        cpuTimeMs: 10,
        cpuThrottledMs: 0,
      });
      expect(u2.userCpuMs! + u2.systemCpuMs!).toBeCloseTo(10, 9);
      // Without cgroup.kill (before 5.14) the processes are killed by pid instead.
      setK('cgroup.procs', '4194304\n');
      writes = [];
      expect(cg.kill()).toBe(true);
      expect(writes).toEqual(kill ? ['capsule/k/cgroup.kill=1'] : []);
      /* Once written to cgroup.kill, never a CLONE_INTO_CGROUP target again (see kill() in v2.ts). */
      expect(cg.recyclable()).toBe(!kill);
    },
  );

  it('a zombie still charged to pids.current keeps the cgroup from counting as empty', () => {
    expect(cg.isEmpty()).toBe(true);
    // Exited (no longer populated) but not yet reaped by its new parent: still one pid.
    set('pids.current', '1\n');
    expect(cg.isEmpty()).toBe(false);
  });

  it('pids() of a cgroup that is gone is empty', () => {
    cg.closeFds();
    const gone = new V2Cgroup(hierarchy(root, []), join(root, 'capsule'), 'gone', ['pids']);
    expect(gone.pids()).toEqual([]);
    expect(() => cg.pids()).not.toThrow();
  });

  it('recyclable: a leftover charge above the threshold retires the cgroup, without reclaiming it', () => {
    cg.prepare({});
    set('memory.current', `${4 * MiB}\n`);
    expect(cg.recyclable()).toBe(false);
    expect(writes).toEqual([]); // no memory.reclaim: it would evict the cached pages
    set('memory.current', '8192\n');
    expect(cg.recyclable()).toBe(true);
  });

  it('kill uses cgroup.kill when processes are listed', () => {
    expect(cg.kill()).toBe(false);
    set('cgroup.procs', '4194304\n'); // above any real pid: a fixture file cannot kill anyway
    expect(cg.kill()).toBe(true);
    expect(writes).toEqual(['capsule/s1/cgroup.kill=1']);
  });
});

describe('ensureV2Parent (fixture)', () => {
  it('enables the controllers top-down, one write each, and creates the parent', () => {
    const { dir, cleanup } = tempDir('capsule-v2p-');
    const writes: string[] = [];
    traceCgroupWrites((p, v) => writes.push(`${p.slice(dir.length + 1)}=${v}`));
    try {
      writeTree(dir, {
        'cgroup.controllers': 'cpuset cpu io memory hugetlb pids\n',
        'cgroup.subtree_control': 'cpu memory\n',
        // kernfs makes these at mkdir; the fixture provides them ahead.
        'capsule/cgroup.subtree_control': '\n',
      });
      const parent = ensureV2Parent(
        hierarchy(dir, ['cpuset', 'cpu', 'io', 'memory', 'hugetlb', 'pids']),
        'capsule',
      );
      expect(parent.dir).toBe(join(dir, 'capsule'));
      expect([...parent.enabled].sort()).toEqual(['cpu', 'cpuset', 'memory', 'pids']);
      expect(writes).toEqual([
        'cgroup.subtree_control=+pids',
        'cgroup.subtree_control=+cpuset',
        'capsule/cgroup.subtree_control=+memory',
        'capsule/cgroup.subtree_control=+pids',
        'capsule/cgroup.subtree_control=+cpu',
        'capsule/cgroup.subtree_control=+cpuset',
      ]);
    } finally {
      traceCgroupWrites(null);
      cleanup();
    }
  });

  it('a controller the kernel refuses is reported per controller, not thrown', () => {
    const { dir, cleanup } = tempDir('capsule-v2p-');
    try {
      writeTree(dir, {
        'cgroup.controllers': 'cpu memory pids\n',
        'cgroup.subtree_control': 'cpu memory pids\n',
      });
      mkdirSync(join(dir, 'capsule'));
      // Readable but never writable, even for root: every "+controller" write is refused.
      symlinkSync('/proc/version', join(dir, 'capsule/cgroup.subtree_control'));
      const parent = ensureV2Parent(hierarchy(dir, ['cpu', 'memory', 'pids']), 'capsule');
      expect(parent.enabled.size).toBe(0);
      expect([...parent.failures.keys()].sort()).toEqual(['cpu', 'memory', 'pids']);
      expect(parent.failures.get('memory')).toMatchObject({ controller: 'memory', step: 'write' });
      expect(parent.failures.get('memory')?.message).toMatch(
        /^cgroup memory: cannot (open|write) .*subtree_control/,
      );
    } finally {
      cleanup();
    }
  });
});

/**
 * The v2 writer on the real unified hierarchy, with only what every v2 cgroup has (cpu.stat,
 * cgroup.events, cgroup.kill): that much runs even on this hybrid machine, whose cgroup2
 * mount carries no controller capsule limits with.
 */
const machine = detectCgroups();
const unified = machine.unified;
const coreOnly: CgroupLayout | null =
  unified && !unified.readOnly
    ? { mode: 'v2', unified, v1: [], controllers: { cpuacct: unified }, disabled: [] }
    : null;
const skipCore = process.getuid?.() !== 0 ? 'not root' : coreOnly ? null : 'no writable cgroup2 mount';

describe.skipIf(skipCore !== null)('V2Cgroup on the real cgroup2 mount (core files only)', () => {
  const parent = testParent('v2core');
  let before: string[];
  let manager: CgroupManager | undefined;
  beforeAll(() => {
    before = capsuleCgroupsOnHost();
  });
  afterEach(() => {
    expect(manager?.close().failed ?? []).toEqual([]);
  });
  afterAll(() => {
    removeTestParent(coreOnly!, parent);
    expect(capsuleCgroupsOnHost()).toEqual(before);
  });

  it('joins through one fd, measures CPU from cpu.stat, and a reused cgroup starts from zero', async () => {
    manager = new CgroupManager({ layout: coreOnly!, parent, poolSize: 1 });
    const first = manager.acquire({})!;
    expect(first.joinFds).toHaveLength(1);
    expect(first.controllers).toEqual(['cpuacct']);
    const exit = await runInCgroup(first, `cat /proc/self/cgroup; ${burnLoop(100_000)}; times`);
    expect(exit.stdout).toContain(`0::/${parent}/`);
    const u1 = first.usage();
    // About 180 ms here, less on a faster machine: compare with the processes' own rusage.
    const rusageMs = timesTotalMs(exit.stdout);
    expect(rusageMs).toBeGreaterThan(20);
    expect(u1.cpuTimeMs).toBeGreaterThan(rusageMs * 0.8);
    expect(u1.cpuTimeMs).toBeLessThan(rusageMs * 1.2 + 10);
    expect(u1.peakMemoryBytes).toBeNull();
    await first.release();

    const second = manager.acquire({})!;
    expect(second.paths).toEqual(first.paths);
    await runInCgroup(second, 'true');
    // cpu.stat baseline subtracted: only sh's own start-up (20-50 ms on an emulated CPU).
    expect(second.usage().cpuTimeMs).toBeLessThan(u1.cpuTimeMs! / 2);
    await second.release();
  });

  it('cloneInto.dirFd works with clone3(CLONE_INTO_CGROUP): the child starts in the cgroup', async (ctx) => {
    const t = tempDir('capsule-clone-into-');
    try {
      writeFileSync(join(t.dir, 'clone-into.c'), CLONE_INTO_C);
      try {
        execFileSync('cc', [
          '-O2',
          '-Wall',
          '-Werror',
          '-o',
          join(t.dir, 'clone-into'),
          join(t.dir, 'clone-into.c'),
        ]);
      } catch {
        ctx.skip(); // no C compiler here
      }
      manager = new CgroupManager({ layout: coreOnly!, parent, poolSize: 1 });
      const cg = manager.acquire({})!;
      expect(cg.cloneInto).not.toBeNull();
      expect(cg.cloneInto!.otherJoinFds).toEqual([]);
      const out = execFileSync(join(t.dir, 'clone-into'), {
        stdio: ['ignore', 'pipe', 'inherit', cg.cloneInto!.dirFd],
      });
      expect(out.toString()).toContain(`0::${cg.paths[0]!.slice(unified!.mountPoint.length)}\n`);
      expect(cg.cpuTimeMs()).toBeGreaterThan(0); // cat ran inside, accounted without any "0" write
      await cg.release();
    } finally {
      t.cleanup();
    }
  });

  it('killAll uses cgroup.kill; release waits on cgroup.events populated', async () => {
    manager = new CgroupManager({ layout: coreOnly!, parent, poolSize: 1 });
    const cg = manager.acquire({})!;
    const exit = runInCgroup(cg, 'sleep 30');
    for (let i = 0; i < 100 && cg.pids().length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(cg.pids().length).toBeGreaterThan(0);
    cg.killAll();
    expect((await exit).signal).toBe('SIGKILL');
    const dir = cg.paths[0]!;
    await cg.release();
    /* Killed through cgroup.kill: removed, not pooled (a clone3 into it could be killed at birth). */
    expect(manager.stats()).toMatchObject({ free: 0, inUse: 0, removed: 1 });
    expect(existsSync(dir)).toBe(false);
  });
});

/** clone3 with CLONE_INTO_CGROUP into the cgroup directory fd 3, then cat /proc/self/cgroup. */
const CLONE_INTO_C = `#define _GNU_SOURCE
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
  struct clone_args a;
  memset(&a, 0, sizeof a);
  a.flags = CLONE_INTO_CGROUP;
  a.exit_signal = SIGCHLD;
  a.cgroup = 3;
  long pid = syscall(SYS_clone3, &a, sizeof a);
  if (pid < 0) { perror("clone3"); return 1; }
  if (pid == 0) { execl("/bin/cat", "cat", "/proc/self/cgroup", (char *)0); _exit(127); }
  int st;
  waitpid((pid_t)pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
`;
