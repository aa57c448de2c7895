import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { describeLayout, detectCgroups, parseMountinfo, parseProcCgroups } from '../../src/cgroup/detect.js';
import { tempDir, writeTree } from './helpers.js';

const PROC_CGROUPS_V1 = `#subsys_name\thierarchy\tnum_cgroups\tenabled
cpuset\t3\t1\t1
cpu\t1\t1\t1
cpuacct\t2\t1\t1
blkio\t7\t1\t1
memory\t4\t16\t1
devices\t5\t1\t1
freezer\t6\t1\t1
net_cls\t0\t1\t1
perf_event\t0\t1\t1
hugetlb\t0\t1\t1
pids\t8\t1\t1
`;

const PROC_CGROUPS_V2 = PROC_CGROUPS_V1.replace(/\t\d+\t(\d+)\t1\n/g, '\t0\t$1\t1\n');

/** This machine: separate cpu and cpuacct mounts plus an empty cgroup2 at unified/. */
const HYBRID = `24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;

/** Classic systemd v1 (Debian 10, CentOS 7): cpu,cpuacct co-mounted; shared: optional fields. */
const PURE_V1 = `25 24 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,name=systemd
29 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
30 25 0:28 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
31 25 0:29 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,pids
32 25 0:30 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,cpuset
33 25 0:31 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,net_cls,net_prio
`;

/** Modern systemd (Debian 12, Ubuntu 22.04+, Fedora). */
const PURE_V2 = `22 26 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw
30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`;

const NO_CGROUPS = `22 26 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw
`;

describe('parseMountinfo', () => {
  it('reads fields around the optional-field separator and unescapes octal', () => {
    const [m] = parseMountinfo(
      '36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 shared:2 - cgroup cgroup rw,memory\n',
    );
    expect(m).toEqual({
      root: '/mnt1',
      mountPoint: '/mnt two',
      options: ['rw', 'noatime'],
      fstype: 'cgroup',
      superOptions: ['rw', 'memory'],
    });
  });

  it('skips malformed lines', () => {
    expect(parseMountinfo('garbage\n\n1 2 3\n')).toEqual([]);
  });
});

describe('parseProcCgroups', () => {
  it('reads name, hierarchy and enabled', () => {
    expect(parseProcCgroups('#subsys_name\thierarchy\tnum_cgroups\tenabled\nmemory\t4\t16\t0\n')).toEqual([
      { name: 'memory', hierarchy: 4, enabled: false },
    ]);
  });
});

describe('detectCgroups', () => {
  let cleanup = (): void => {};
  afterEach(() => cleanup());

  /** Write a fixture: mountinfo, /proc/cgroups and files under a fake root. */
  function fixture(mountinfo: string, procCgroups: string | null, files: Record<string, string> = {}) {
    const t = tempDir('capsule-detect-');
    cleanup = t.cleanup;
    writeFileSync(join(t.dir, 'mountinfo'), mountinfo);
    if (procCgroups !== null) writeFileSync(join(t.dir, 'cgroups'), procCgroups);
    writeTree(join(t.dir, 'fs'), files);
    return detectCgroups({
      mountinfo: join(t.dir, 'mountinfo'),
      procCgroups: join(t.dir, 'cgroups'),
      fsRoot: join(t.dir, 'fs'),
    });
  }

  it("this machine's hybrid layout: separate cpu and cpuacct, empty unified", () => {
    const layout = fixture(HYBRID, PROC_CGROUPS_V1, {
      'sys/fs/cgroup/unified/cgroup.controllers': 'hugetlb\n',
    });
    expect(layout.mode).toBe('hybrid');
    const at = (c: keyof typeof layout.controllers) =>
      layout.controllers[c]?.mountPoint.replace(/^.*?\/fs(?=\/sys\/)/, '');
    expect(at('memory')).toBe('/sys/fs/cgroup/memory');
    expect(at('cpu')).toBe('/sys/fs/cgroup/cpu');
    expect(at('cpuacct')).toBe('/sys/fs/cgroup/cpuacct');
    expect(at('pids')).toBe('/sys/fs/cgroup/pids');
    expect(at('cpuset')).toBe('/sys/fs/cgroup/cpuset');
    expect(layout.controllers.memory?.version).toBe(1);
    expect(layout.unified?.controllers).toEqual(['hugetlb']);
    // name=systemd has no controller: not a hierarchy capsule uses.
    expect(layout.v1.map((h) => h.controllers.join(','))).not.toContain('name=systemd');
    expect(layout.v1).toHaveLength(8);
  });

  it('pure v1 with cpu,cpuacct co-mounted: both map to one hierarchy', () => {
    const layout = fixture(PURE_V1, PROC_CGROUPS_V1);
    expect(layout.mode).toBe('v1');
    expect(layout.unified).toBeNull();
    expect(layout.controllers.cpu).toBe(layout.controllers.cpuacct);
    expect(layout.controllers.cpu?.controllers).toEqual(['cpu', 'cpuacct']);
    expect(layout.controllers.memory?.mountPoint).toMatch(/\/sys\/fs\/cgroup\/memory$/);
    expect(layout.controllers.memory?.readOnly).toBe(false);
  });

  it('pure v2: controllers from the root cgroup.controllers, cpuacct as cpu.stat', () => {
    const layout = fixture(PURE_V2, PROC_CGROUPS_V2, {
      'sys/fs/cgroup/cgroup.controllers': 'cpuset cpu io memory hugetlb pids rdma misc\n',
    });
    expect(layout.mode).toBe('v2');
    expect(layout.v1).toEqual([]);
    for (const c of ['memory', 'pids', 'cpu', 'cpuacct', 'cpuset'] as const) {
      expect(layout.controllers[c]).toBe(layout.unified);
    }
    expect(layout.unified?.version).toBe(2);
  });

  it('v2 without the memory controller enabled at the root: memory is missing, cpu.stat still there', () => {
    const layout = fixture(PURE_V2, PROC_CGROUPS_V2, { 'sys/fs/cgroup/cgroup.controllers': 'cpu pids\n' });
    expect(layout.controllers.memory).toBeUndefined();
    expect(layout.controllers.cpuacct).toBe(layout.unified);
    expect(describeLayout(layout)).toMatch(/memory: not available/);
  });

  it('no cgroups at all', () => {
    const layout = fixture(NO_CGROUPS, null);
    expect(layout).toMatchObject({ mode: 'none', unified: null, v1: [], controllers: {}, disabled: [] });
  });

  it('a controller disabled on the kernel command line is not available', () => {
    const layout = fixture(PURE_V1, PROC_CGROUPS_V1.replace('memory\t4\t16\t1', 'memory\t0\t1\t0'));
    expect(layout.controllers.memory).toBeUndefined();
    expect(layout.disabled).toEqual(['memory']);
    expect(describeLayout(layout)).toMatch(/memory: not available \(disabled on the kernel command line\)/);
  });

  it('a read-only cgroup mount (a container) is marked read-only', () => {
    const layout = fixture(
      PURE_V1.replace('/sys/fs/cgroup/memory rw,', '/sys/fs/cgroup/memory ro,'),
      PROC_CGROUPS_V1,
    );
    expect(layout.controllers.memory?.readOnly).toBe(true);
    expect(layout.controllers.pids?.readOnly).toBe(false);
  });

  it('the real machine parses without throwing', () => {
    const layout = detectCgroups();
    expect(['v1', 'v2', 'hybrid', 'none']).toContain(layout.mode);
  });
});
