/**
 * CgroupManager against the real cgroup tree of this machine: processes join through the
 * cgroup.procs fds exactly as the native child will. The same suite runs twice: with the
 * machine's own layout (v1 here and on CI, v2 on most desktops), and with only the unified
 * hierarchy, which is skipped, with the reason, where cgroup v2 has no controllers (this
 * machine's /sys/fs/cgroup/unified lists none of memory, pids, cpu).
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CGROUP_CONTROLLERS,
  type CgroupController,
  type CgroupHierarchy,
  type CgroupLayout,
  describeLayout,
  detectCgroups,
} from '../../src/cgroup/detect.js';
import { CgroupError } from '../../src/cgroup/errors.js';
import { CgroupManager } from '../../src/cgroup/manager.js';
import { detectV2Features } from '../../src/cgroup/v2.js';
import { ConfigError } from '../../src/errors.js';
import {
  capsuleCgroupsOnHost,
  removeTestParent,
  burnLoop,
  runInCgroup,
  tempDir,
  testParent,
  timesTotalMs,
} from './helpers.js';

const MiB = 1024 * 1024;
const needed = ['memory', 'cpuacct', 'pids', 'cpu'] as const;
const isRoot = process.getuid?.() === 0;

function skipReasonFor(layout: CgroupLayout | null, what: string): string | null {
  if (!isRoot) return 'not root';
  if (!layout) return `no ${what} here`;
  const missing = needed.filter((c) => !layout.controllers[c]);
  return missing.length > 0
    ? `no ${what} here (${missing.join(', ')} missing):\n${describeLayout(layout)}`
    : null;
}

/** The unified hierarchy alone, as on a pure v2 machine; null when there is none. */
function unifiedOnly(layout: CgroupLayout): CgroupLayout | null {
  const u = layout.unified;
  if (!u) return null;
  const on = (c: CgroupController) => c === 'cpuacct' || u.controllers.includes(c);
  const controllers = Object.fromEntries(CGROUP_CONTROLLERS.filter(on).map((c) => [c, u]));
  return { mode: 'v2', unified: u, v1: [], controllers, disabled: layout.disabled };
}

const machine = detectCgroups();
const v2 = unifiedOnly(machine);
const suites: [string, CgroupLayout | null, string | null][] = [
  [`this machine's layout (${machine.mode})`, machine, skipReasonFor(machine, 'cgroup hierarchy')],
  [
    'cgroup v2 only',
    v2,
    machine.mode === 'v2'
      ? 'same as the machine layout'
      : skipReasonFor(v2, 'cgroup v2 hierarchy with controllers'),
  ],
];
for (const [name, , reason] of suites)
  if (reason) console.warn(`skipping CgroupManager on ${name}: ${reason}`);

describe.each(suites)('CgroupManager on %s', (_name, maybeLayout, skipReason) => {
  if (skipReason !== null || !maybeLayout) {
    it.skip(`skipped: ${skipReason}`, () => {});
    return;
  }
  const layout = maybeLayout;
  const parent = testParent('mgr');
  let before: string[];
  let manager: CgroupManager;

  beforeAll(() => {
    before = capsuleCgroupsOnHost();
  });
  afterEach(() => {
    expect(manager?.close().failed ?? []).toEqual([]);
  });
  afterAll(() => {
    removeTestParent(layout, parent);
    expect(capsuleCgroupsOnHost()).toEqual(before);
  });

  const make = (poolSize = 4): CgroupManager => (manager = new CgroupManager({ layout, parent, poolSize }));

  it('joins one cgroup per hierarchy through the fds and measures CPU time of a burner', async () => {
    const cg = make().acquire({})!;
    expect(cg.joinFds.length).toBe(new Set(needed.map((c) => layout.controllers[c])).size);
    const inV2 =
      layout.unified !== null && cg.paths.some((p) => p.startsWith(`${layout.unified!.mountPoint}/`));
    expect(cg.cloneInto !== null).toBe(inV2);
    const exit = await runInCgroup(cg, `cat /proc/self/cgroup; ${burnLoop(150_000)}; times`);
    expect(exit.code).toBe(0);
    // Every path of the handle shows up in the child's own view of its cgroups.
    for (const p of cg.paths) expect(exit.stdout).toContain(p.slice(p.indexOf(`/${parent}/`)));
    const usage = cg.usage();
    // About 270 ms here, less on a faster machine: compare with the processes' own rusage.
    const rusageMs = timesTotalMs(exit.stdout);
    expect(rusageMs).toBeGreaterThan(30);
    expect(usage.cpuTimeMs).toBeGreaterThan(rusageMs * 0.8);
    expect(usage.cpuTimeMs).toBeLessThan(rusageMs * 1.2 + 10);
    // The split adds up to the total (v1 samples user/system per tick; capsule scales them).
    expect(Math.abs(usage.userCpuMs! + usage.systemCpuMs! - usage.cpuTimeMs!)).toBeLessThan(0.01);
    expect(cg.cpuTimeMs()).toBeCloseTo(usage.cpuTimeMs!, 0);
    expect(usage.oomKilled).toBe(false);
    await cg.release();
  });

  it('reports the peak memory of a process touching 100 MiB', async () => {
    const cg = make().acquire({})!;
    const exit = await runInCgroup(cg, 'head -c 100M /dev/zero | tail >/dev/null; ');
    expect(exit.code).toBe(0);
    const usage = cg.usage();
    expect(usage.peakMemoryBytes).toBeGreaterThan(100 * MiB);
    expect(usage.peakMemoryBytes).toBeLessThan(180 * MiB);
    expect(usage.memoryLimitHit).toBe(false);
    await cg.release();
  });

  it('detects an OOM kill under a 64 MiB limit from the cgroup counters', async () => {
    const cg = make().acquire({ memoryLimitBytes: 64 * MiB })!;
    const exit = await runInCgroup(cg, 'head -c 200M /dev/zero | tail >/dev/null; exit 3');
    const usage = cg.usage();
    expect(usage.oomKilled).toBe(true);
    if (layout.controllers.memory!.version === 1) {
      expect(exit.code).toBe(3); // the shell survives: only tail was killed
      expect(usage.oomKillCount).toBe(1);
    } else {
      // memory.oom.group (v2.ts): the OOM killer takes the whole sandbox, the shell too.
      expect(exit.signal).toBe('SIGKILL');
      expect(usage.oomKillCount).toBeGreaterThanOrEqual(1);
    }
    expect(usage.memoryLimitHit).toBe(true);
    expect(usage.peakMemoryBytes).toBeLessThanOrEqual(64 * MiB);
    await cg.release();
  });

  it('stops a fork loop at the pids limit and says so', async () => {
    const cg = make().acquire({ pidsLimit: 8 })!;
    // dash gives up at the first failed fork ("Cannot fork"), as most programs would.
    const exit = await runInCgroup(cg, 'i=0; while [ $i -lt 30 ]; do sleep 0.3 & i=$((i+1)); done; wait');
    expect(exit.code).not.toBe(0);
    expect(exit.stderr).toMatch(/fork/i);
    expect(cg.usage().pidsLimitHit).toBe(true);
    await cg.release();
  });

  it('applies a CPU quota: 0.2 CPUs throttles a busy loop', async () => {
    const cg = make().acquire({ cpus: 0.2 })!;
    const t0 = performance.now();
    await runInCgroup(cg, 'timeout 0.5 sh -c "while :; do :; done"; true');
    const wallMs = performance.now() - t0;
    const usage = cg.usage();
    // 20 ms per 100 ms of wall time, however long the run took (the quota slows the shells'
    // start-up too: 2.2 s of wall on an emulated CPU), far below the 100% of one CPU the loop
    // would take unthrottled; the margin is for the period in progress at each end.
    expect(usage.cpuTimeMs).toBeLessThan(wallMs * 0.2 * 1.25 + 30);
    expect(usage.cpuThrottledMs).toBeGreaterThan(0);
    await cg.release();
  });

  it('reuses a pooled cgroup without leaking peak, CPU, OOM or limits into the next run', async () => {
    const m = make(1);
    const first = m.acquire({ memoryLimitBytes: 64 * MiB, pidsLimit: 8, cpus: 0.5 })!;
    await runInCgroup(first, `${burnLoop(100_000)}; head -c 200M /dev/zero | tail >/dev/null; true`);
    const u1 = first.usage();
    expect(u1.oomKilled).toBe(true);
    expect(u1.cpuTimeMs).toBeGreaterThan(20);
    const firstMemDir = first.paths.find((p) => p.includes(layout.controllers.memory!.mountPoint))!;
    // A v2 memory.peak that cannot be reset (5.19 to 6.11) makes a memory cgroup single-use.
    const pooled = layout.controllers.memory!.version === 1 || detectV2Features(firstMemDir).peak !== 'fixed';
    await first.release();

    const second = m.acquire({})!;
    if (pooled) {
      expect(second.paths).toEqual(first.paths);
      expect(m.stats()).toMatchObject({ created: 1, reused: 1 });
    } else {
      expect(second.paths).not.toEqual(first.paths);
      expect(existsSync(firstMemDir)).toBe(false);
      expect(m.stats()).toMatchObject({ created: 2, reused: 0, removed: 1 });
    }
    const memDir = second.paths.find((p) => p.includes(layout.controllers.memory!.mountPoint))!;
    const pidsDir = second.paths.find((p) => p.includes(layout.controllers.pids!.mountPoint))!;
    if (layout.controllers.memory!.version === 1) {
      expect(Number(readFileSync(join(memDir, 'memory.limit_in_bytes'), 'utf8'))).toBeGreaterThan(2 ** 60);
    } else {
      expect(readFileSync(join(memDir, 'memory.max'), 'utf8').trim()).toBe('max');
    }
    expect(readFileSync(join(pidsDir, 'pids.max'), 'utf8').trim()).toBe('max');
    const exit = await runInCgroup(second, 'head -c 100M /dev/zero | tail >/dev/null; true');
    expect(exit.code).toBe(0);
    const u2 = second.usage();
    expect(u2.oomKilled).toBe(false);
    expect(u2.oomKillCount).toBe(0);
    expect(u2.memoryLimitHit).toBe(false);
    expect(u2.pidsLimitHit).toBe(false);
    // The limit is gone: 100 MiB fits now, and the peak is this run's.
    expect(u2.peakMemoryBytes).toBeGreaterThan(100 * MiB);

    await second.release();
    const third = m.acquire({})!;
    if (pooled) expect(third.paths).toEqual(first.paths);
    await runInCgroup(third, 'true');
    const u3 = third.usage();
    // Neither the 100 MiB nor the CPU of the runs before show; only the leftover charge
    // (<= 1 MiB, maxLeftoverBytes) plus what sh itself uses (20-50 ms on an emulated CPU).
    expect(u3.peakMemoryBytes).toBeLessThan(8 * MiB);
    expect(u3.cpuTimeMs).toBeLessThan(u1.cpuTimeMs! / 2);
    expect(u3.oomKilled).toBe(false);
    await third.release();

    // A shape without memory is pooled on every kernel: its pids count and limits start afresh
    // too (whether the quota throttled depends on the machine's load: the fixtures test that).
    const a = m.acquire({ pidsLimit: 8, cpus: 0.5 }, { accounting: false })!;
    await runInCgroup(a, 'i=0; while [ $i -lt 12 ]; do sleep 0.2 & i=$((i+1)); done; wait');
    expect(a.usage().pidsLimitHit).toBe(true);
    /*
     * A sleep dash started may still be alive when it returns (seen on the v2 VM's emulated
     * CPU): release() would kill it, and a cgroup killed through cgroup.kill is removed, not
     * pooled. Wait until no process is left, so that this run's cgroup is the one reused.
     */
    for (
      let i = 0;
      i < 300 && a.paths.some((p) => readFileSync(join(p, 'cgroup.procs'), 'utf8').trim() !== '');
      i++
    )
      await new Promise((r) => setTimeout(r, 10));
    await a.release();
    // The sleeps dash left behind are killed, then reaped by the host's init: until then the
    // cgroup waits aside (their zombies still count in pids.current).
    const aPids = a.paths.find((p) => p.includes(layout.controllers.pids!.mountPoint))!;
    for (let i = 0; i < 300 && readFileSync(join(aPids, 'pids.current'), 'utf8').trim() !== '0'; i++)
      await new Promise((r) => setTimeout(r, 10));
    const b = m.acquire({ pidsLimit: 100, cpus: 1 }, { accounting: false })!;
    expect(b.paths).toEqual(a.paths);
    const bPids = b.paths.find((p) => p.includes(layout.controllers.pids!.mountPoint))!;
    expect(readFileSync(join(bPids, 'pids.max'), 'utf8').trim()).toBe('100');
    const cpuDir = b.paths.find((p) => p.includes(layout.controllers.cpu!.mountPoint))!;
    if (layout.controllers.cpu!.version === 1) {
      expect(readFileSync(join(cpuDir, 'cpu.cfs_quota_us'), 'utf8').trim()).toBe('100000');
    } else {
      expect(readFileSync(join(cpuDir, 'cpu.max'), 'utf8').trim()).toBe('100000 100000');
    }
    await runInCgroup(b, 'true');
    const ub = b.usage();
    expect(ub.pidsLimitHit).toBe(false);
    expect(ub.cpuThrottledMs).toBe(0);
    await b.release();
  });

  /*
   * Leftover charge above maxLeftoverBytes: 8 MiB of page cache a run wrote into a file stays
   * charged to its cgroup until the file goes. A cgroup held back by that alone waits aside and
   * is taken again once the charge is gone; one whose charge stays is removed after coolingMs.
   */
  /* A manager with coolingMs, and its first cgroup released with 8 MiB charged to it by a file in `dir`. */
  const releasedCharged = async (dir: string, coolingMs: number) => {
    const m = (manager = new CgroupManager({ layout, parent, poolSize: 2, coolingMs }));
    const first = m.acquire({})!;
    const memDir = first.paths.find((p) => p.includes(layout.controllers.memory!.mountPoint))!;
    const pooled = layout.controllers.memory!.version === 1 || detectV2Features(memDir).peak !== 'fixed';
    expect((await runInCgroup(first, `head -c 8M /dev/zero > ${dir}/charged`)).code).toBe(0);
    await first.release();
    return { m, first, memDir, pooled };
  };

  it('a cgroup left charged waits aside and is reused once the charge is freed, not removed at once', async () => {
    const t = tempDir('capsule-cooling-');
    try {
      const { m, first, memDir, pooled } = await releasedCharged(t.dir, 60_000);
      if (!pooled) {
        /* A v2 memory.peak that cannot be reset (5.19 to 6.11): single-use, removed at once. */
        expect(existsSync(memDir)).toBe(false);
        return;
      }
      expect(existsSync(memDir)).toBe(true);
      expect(m.stats()).toMatchObject({ created: 1, removed: 0, free: 0, cooling: 1 });
      rmSync(`${t.dir}/charged`); /* its pages, and their charge, go with it */
      const second = m.acquire({})!;
      expect(second.paths).toEqual(first.paths);
      expect(m.stats()).toMatchObject({ created: 1, reused: 1, removed: 0, cooling: 0 });
      /* Its peak counts from the run's own start, not from the 8 MiB of the one before. */
      expect((await runInCgroup(second, 'true')).code).toBe(0);
      expect(second.usage().peakMemoryBytes!).toBeLessThan(4 * MiB);
      await second.release();
    } finally {
      t.cleanup();
    }
  });

  it('a cgroup whose leftover charge is not freed within coolingMs is removed', async () => {
    const t = tempDir('capsule-cooling-');
    try {
      const { m, first, memDir, pooled } = await releasedCharged(t.dir, 100);
      if (pooled) expect(m.stats()).toMatchObject({ cooling: 1, removed: 0 });
      for (let i = 0; i < 100 && existsSync(memDir); i++) await new Promise((r) => setTimeout(r, 20));
      expect(existsSync(memDir)).toBe(false);
      expect(m.stats()).toMatchObject({ cooling: 0, removed: 1, free: 0 });
      /* The next run gets a new one. */
      const second = m.acquire({})!;
      expect(second.paths).not.toEqual(first.paths);
      await second.release();
    } finally {
      t.cleanup();
    }
  });

  it('release kills what is left and close removes every cgroup it made', async () => {
    const m = make(2);
    const cg = m.acquire({ pidsLimit: 50 })!;
    const exit = runInCgroup(cg, 'sleep 30 & sleep 30 & wait');
    for (let i = 0; i < 100 && cg.pids().length < 3; i++) await new Promise((r) => setTimeout(r, 10));
    expect(cg.pids().length).toBe(3);
    // Read before release, which may remove it: a v2 memory.peak that cannot be reset.
    const memDir = cg.paths.find((p) => p.includes(layout.controllers.memory!.mountPoint))!;
    const pooled = layout.controllers.memory!.version === 1 || detectV2Features(memDir).peak !== 'fixed';
    const t0 = Date.now();
    await cg.release();
    // The two sleeps are orphans reaped by the host's init, maybe much later: release does
    // not wait for that; the cgroup waits on the side until pids.current is back to 0.
    expect(Date.now() - t0).toBeLessThan(500);
    expect((await exit).signal).toBe('SIGKILL');
    expect(cg.pids()).toEqual([]);
    const stats = m.stats();
    // Pooled, or waiting aside for the orphans' zombies; where memory.peak cannot be reset
    // (v2, 5.19 to 6.11) it may be gone already.
    if (pooled) expect(stats.free + stats.draining).toBe(1);
    else expect(stats.free + stats.draining).toBeLessThanOrEqual(1);
    expect(stats.inUse).toBe(0);
    const paths = [...cg.paths];
    expect(m.close().failed).toEqual([]);
    expect(capsuleCgroupsOnHost().filter((p) => paths.includes(p))).toEqual([]);
  });

  it('pins to the cpuset asked for, and back to all CPUs on reuse', async () => {
    if (!layout.controllers.cpuset) return;
    const m = make(1);
    const cpusOf = async (cg: ReturnType<CgroupManager['acquire']>) =>
      (await runInCgroup(cg, 'grep Cpus_allowed_list /proc/self/status')).stdout.split(/\s+/)[1];
    // Without accounting (no memory cgroup, which 5.19 to 6.11 cannot pool on v2), so that
    // the reuse is tested on every kernel.
    const pinned = m.acquire({ cpusetCpus: '0' }, { accounting: false })!;
    expect(pinned.controllers).toContain('cpuset');
    expect(await cpusOf(pinned)).toBe('0');
    await pinned.release();
    const again = m.acquire({ cpusetCpus: '1' }, { accounting: false })!;
    expect(again.paths).toEqual(pinned.paths);
    expect(await cpusOf(again)).toBe('1');
    await again.release();
    // Without cpusetCpus the sandbox does not join the cpuset hierarchy at all: all CPUs.
    const plain = m.acquire({})!;
    expect(plain.controllers).not.toContain('cpuset');
    const all = readFileSync('/proc/self/status', 'utf8').match(/Cpus_allowed_list:\s*(\S+)/)![1];
    expect(await cpusOf(plain)).toBe(all);
    await plain.release();
  });

  it('runs 2 × cores sandboxes in parallel, each with its own accounting', async () => {
    const m = make(8);
    const n = 4;
    const cgs = Array.from({ length: n }, () => m.acquire({ memoryLimitBytes: 256 * MiB })!);
    expect(new Set(cgs.map((c) => c.paths[0])).size).toBe(n);
    // Sandbox i touches (i + 1) × 20 MiB; each peak must reflect its own run only.
    await Promise.all(
      cgs.map((cg, i) => runInCgroup(cg, `head -c ${(i + 1) * 20}M /dev/zero | tail >/dev/null`)),
    );
    cgs.forEach((cg, i) => {
      const peak = cg.usage().peakMemoryBytes!;
      expect(peak).toBeGreaterThan((i + 1) * 20 * MiB);
      expect(peak).toBeLessThan((i + 1) * 20 * MiB * 1.3 + 8 * MiB);
    });
    await Promise.all(cgs.map((cg) => cg.release()));
  });

  it('adopt moves a running process in by pid, without blocking the event loop', async () => {
    const m = make();
    const cg = m.acquire({ pidsLimit: 10 })!;
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_c, sig) => r(sig)));
    await cg.adopt(child.pid!);
    const own = readFileSync(`/proc/${child.pid}/cgroup`, 'utf8');
    for (const p of cg.paths) expect(own).toContain(p.slice(p.indexOf(`/${parent}/`)));
    expect(cg.pids()).toEqual([child.pid]);
    await cg.release(); // kills it
    expect(await exited).toBe('SIGKILL');
    const other = m.acquire({})!;
    await expect(other.adopt(2 ** 22 + 1)).rejects.toMatchObject({ code: 'ESRCH', step: 'write' });
    await other.release();
  });

  it('prewarm makes the first runs take pooled cgroups', async () => {
    const m = make(3);
    expect(m.prewarm()).toBe(3);
    expect(m.prewarm()).toBe(0);
    expect(m.stats()).toMatchObject({ created: 3, free: 3 });
    const cg = m.acquire({ memoryLimitBytes: 64 * MiB })!;
    expect(m.stats()).toMatchObject({ created: 3, reused: 1, free: 2, inUse: 1 });
    await cg.release();
  });

  it('a run that asks no limit and no accounting gets no cgroup', () => {
    expect(make().acquire({}, { accounting: false })).toBeNull();
  });

  it('rejects invalid limits before touching anything', () => {
    const m = make();
    expect(() => m.acquire({ memoryLimitBytes: 100 })).toThrow(/>= 1 MiB/);
    expect(() => m.acquire({ cpus: 0 })).toThrow(ConfigError);
    expect(() => m.acquire({ cpusetCpus: '0-1; rm' })).toThrow(/CPU list/);
    expect(m.stats().created).toBe(0);
  });

  it('fails with a CgroupError naming the controller when a limit has no controller', () => {
    const noMemory = { ...layout, controllers: { ...layout.controllers, memory: undefined } };
    const m = (manager = new CgroupManager({ layout: noMemory, parent }));
    let err: unknown;
    try {
      m.acquire({ memoryLimitBytes: 64 * MiB });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CgroupError);
    expect(err).toMatchObject({ controller: 'memory', step: 'detect' });
    expect((err as Error).message).toMatch(
      /^cgroup memory controller not found \(no v1 hierarchy with "memory" and no v2 cgroup.controllers listing it\): .* or drop --memory-limit$/,
    );
    // Without a memory limit the same manager still works, minus memory accounting.
    const cg = m.acquire({})!;
    expect(cg.controllers).not.toContain('memory');
    return cg.release();
  });
});

describe('CgroupManager without usable cgroups', () => {
  const none: CgroupLayout = { mode: 'none', unified: null, v1: [], controllers: {}, disabled: [] };

  it('no cgroup filesystem: a run without limits gets null, a limit fails naming its controller', () => {
    const m = new CgroupManager({ layout: none, cleanupOnExit: false });
    expect(m.acquire({})).toBeNull();
    expect(() => m.acquire({ pidsLimit: 10 })).toThrow(
      /^cgroup pids controller not found \(no cgroup filesystem is mounted .*\): run on a machine with the pids controller \(run `capsule doctor` to see this machine's cgroups\), or drop --pids-limit$/,
    );
    m.close();
  });

  it('read-only mounts (a container): null without limits, EROFS with one, nothing written', () => {
    const ro = (h: CgroupHierarchy): CgroupHierarchy => ({
      ...h,
      mountPoint: '/nonexistent' + h.mountPoint,
      readOnly: true,
    });
    const hierarchy: CgroupHierarchy = {
      version: 1,
      mountPoint: '/sys/fs/cgroup/memory',
      root: '/',
      controllers: ['memory'],
      readOnly: false,
    };
    const layout: CgroupLayout = {
      mode: 'v1',
      unified: null,
      v1: [ro(hierarchy)],
      controllers: { memory: ro(hierarchy) },
      disabled: [],
    };
    const m = new CgroupManager({ layout, cleanupOnExit: false });
    expect(m.acquire({})).toBeNull();
    let err: unknown;
    try {
      m.acquire({ memoryLimitBytes: 64 * MiB });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CgroupError);
    expect(err).toMatchObject({ controller: 'memory', code: 'EROFS' });
    expect((err as Error).message).toMatch(/^cgroup memory controller is on a read-only mount/);
    m.close();
  });

  it('an unwritable hierarchy: the mkdir error names the controller and the errno', () => {
    // A mount point under /proc: mkdir fails (ENOENT/EACCES), as on a tree capsule may not write.
    const hierarchy: CgroupHierarchy = {
      version: 1,
      mountPoint: '/proc/1/nonexistent',
      root: '/',
      controllers: ['pids'],
      readOnly: false,
    };
    const layout: CgroupLayout = {
      mode: 'v1',
      unified: null,
      v1: [hierarchy],
      controllers: { pids: hierarchy },
      disabled: [],
    };
    const m = new CgroupManager({ layout, parent: 'capsule-never', cleanupOnExit: false });
    expect(m.acquire({})).toBeNull();
    expect(() => m.acquire({ pidsLimit: 5 })).toThrow(
      /^cgroup pids: cannot create \/proc\/1\/nonexistent\/capsule-never: E/,
    );
    m.close();
  });
});
