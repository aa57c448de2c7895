import { chmodSync, chownSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import {
  CLONE_NEWUSER,
  type DoctorProbes,
  type DoctorReport,
  type SyscallProbe,
  doctor,
  formatDoctor,
  subordinateRanges,
} from '../src/doctor.js';
import { native } from '../src/native.js';
import { tempDir, writeTree } from './cgroup/helpers.js';
import { fdsLeftSince, mountCount, openFds, zombieChildren } from './helpers/host.js';

/** Every check doctor makes, whatever the machine (the list). */
const EVERY_CHECK = [
  'namespace.mnt',
  'namespace.pid',
  'namespace.net',
  'namespace.uts',
  'namespace.ipc',
  'namespace.cgroup',
  'namespace.user',
  'userns.unprivileged_userns_clone',
  'userns.max_user_namespaces',
  'userns.apparmor_restrict_unprivileged_userns',
  'userns.map',
  'userns.subid',
  'cgroup.layout',
  'cgroup.controller.memory',
  'cgroup.controller.pids',
  'cgroup.controller.cpu',
  'cgroup.controller.cpuacct',
  'cgroup.controller.cpuset',
  'cgroup.controller.devices',
  'cgroup.writable',
  'cgroup.favordynmods',
  'seccomp.filter',
  'seccomp.user_notif',
  'seccomp.wait_killable_recv',
  'seccomp.libseccomp',
  'syscall.pidfd_open',
  'syscall.clone3',
  'syscall.clone_into_cgroup',
  'syscall.openat2',
  'syscall.close_range',
  'mountapi.open_tree',
  'mountapi.move_mount',
  'mountapi.mount_setattr',
  'mountapi.fsopen',
  'fs.overlay',
  'fs.proc',
  'fs.tmpfs',
  'net.loopback',
  'gpu.devices',
  'gpu.libraries',
];

const ALL_PRESENT: SyscallProbe = {
  pidfd_open: 0,
  clone3: 0,
  clone_into_cgroup: 0,
  openat2: 0,
  open_tree: 0,
  move_mount: 0,
  mount_setattr: 0,
  fsopen: 0,
  close_range: 0,
  seccomp: 0,
  seccomp_filter: 0,
  seccomp_wait_killable_recv: 0,
  seccomp_user_notif: 0,
  seccomp_notif_sizes: 0,
};

/** Probes of a machine that has everything, with the overrides given. */
function fakeProbes(over: Partial<DoctorProbes> = {}): DoctorProbes {
  return {
    syscalls: () => ALL_PRESENT,
    unshare: () => ({ errno: 0, stage: 0 }),
    seccompLibrary: () => ({
      major: 2,
      minor: 5,
      micro: 4,
      api: 6,
      newest: { nr: 456, name: 'futex_requeue' },
    }),
    ...over,
  };
}

const HYBRID = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;
const V2_FAVOR = `30 23 0:27 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot,favordynmods
`;
const PROC_CGROUPS = `#subsys_name\thierarchy\tnum_cgroups\tenabled
cpuset\t0\t1\t1
cpu\t0\t1\t1
cpuacct\t0\t1\t1
memory\t0\t1\t1
devices\t0\t1\t1
pids\t0\t1\t0
`;

/** A /proc of our making: the sysctls, filesystems, net/dev and cgroup files doctor reads. */
function fakeMachine(
  root: string,
  o: { mountinfo: string; sysctls?: Record<string, string>; filesystems?: string; selfCgroup?: string },
) {
  const proc = join(root, 'proc');
  const files: Record<string, string> = {
    'proc/self/mountinfo': o.mountinfo,
    'proc/cgroups': PROC_CGROUPS,
    'proc/filesystems': o.filesystems ?? 'nodev\tproc\nnodev\ttmpfs\nnodev\toverlay\n\text4\n',
    'proc/net/dev': 'Inter-|   Receive\n face |bytes\n    lo:  0 0 0 0\n',
    'proc/self/cgroup': o.selfCgroup ?? '0::/\n',
    'etc/passwd': 'root:x:0:0::/root:/bin/sh\nann:x:1234:1234::/home/ann:/bin/sh\n',
    'fs/sys/fs/cgroup/cgroup.controllers': 'cpu memory pids cpuset\n',
    'fs/sys/fs/cgroup/unified/cgroup.controllers': '\n',
  };
  for (const [name, value] of Object.entries(o.sysctls ?? {}))
    files[`proc/sys/${name.replace(/\./g, '/')}`] = `${value}\n`;
  writeTree(root, files);
  return {
    procRoot: proc,
    etcRoot: join(root, 'etc'),
    binDirs: [join(root, 'bin')],
    cgroup: { fsRoot: join(root, 'fs') },
    gpu: { devRoot: join(root, 'dev'), procRoot: proc, libraryRoots: [join(root, 'lib')] },
  };
}

function byId(report: DoctorReport, id: string) {
  const c = report.checks.find((x) => x.id === id);
  expect(c, id).toBeDefined();
  return c!;
}

describe('doctor on this machine', () => {
  it('makes every check, and each cross comes with a fix', () => {
    const report = doctor();
    expect(report.checks.map((c) => c.id)).toEqual(EVERY_CHECK);
    for (const c of report.checks) {
      expect(['ok', 'missing', 'warn', 'info']).toContain(c.status);
      expect(c.summary.length).toBeGreaterThan(0);
      if (c.status === 'missing' || c.status === 'warn') expect(c.fix, c.id).toBeTruthy();
    }
    expect(report.ok).toBe(report.checks.every((c) => c.status !== 'missing'));
    expect(report.uid).toBe(process.geteuid!());
  });

  it('agrees with what the kernel says through /proc (capsule runs here, so its features are present)', () => {
    const report = doctor();
    /* The tests of run() pass on this machine, so what they need must be ticked. */
    for (const id of ['namespace.pid', 'namespace.mnt', 'namespace.net', 'syscall.openat2', 'seccomp.filter'])
      expect(byId(report, id).status, id).toBe('ok');
    const lib = byId(report, 'seccomp.libseccomp').summary;
    const { major, minor, micro } = (
      native() as unknown as { seccompLibrary(): { major: number; minor: number; micro: number } }
    ).seccompLibrary();
    expect(lib).toContain(`libseccomp ${major}.${minor}.${micro}`);
    /* The newest call libseccomp names is a real one: seccomp_syscall_resolve_name gives it back. */
    const newest = /knows: (\w+) \((\d+)\)/.exec(lib);
    expect(newest).not.toBeNull();
    const auditArch = process.arch === 'arm64' ? 0xc00000b7 : 0xc000003e;
    expect(native().syscallName(Number(newest![2]), auditArch)).toBe(newest![1]);
  });

  it('leaves nothing behind: no descriptor, mount or child', () => {
    doctor(); /* the first call loads what it loads once */
    const fds = openFds();
    const mounts = mountCount();
    for (let i = 0; i < 3; i++) doctor();
    expect(fdsLeftSince(fds)).toEqual([]);
    expect(mountCount()).toBe(mounts);
    expect(zombieChildren()).toEqual([]);
  });

  it('the native unshare probe really fails where the kernel refuses: an unknown flag is EINVAL', () => {
    const addon = native() as unknown as {
      probeUnshare(f: number[], m: boolean): { errno: number; stage: number };
    };
    expect(addon.probeUnshare([CLONE_NEWUSER], true)).toEqual({ errno: 0, stage: 0 });
    /* CLONE_PARENT is a clone(2) flag unshare(2) does not take: EINVAL, at the second step. */
    expect(addon.probeUnshare([CLONE_NEWUSER, 0x00008000 /* CLONE_PARENT */], false)).toEqual({
      errno: 22,
      stage: 1,
    });
  });
});

describe('doctor on a machine of our making', () => {
  let cleanup: (() => void) | undefined;
  afterEach(() => cleanup?.());

  function machine(o: Parameters<typeof fakeMachine>[1]) {
    const t = tempDir('capsule-doctor-');
    cleanup = t.cleanup;
    return { root: t.dir, opts: fakeMachine(t.dir, o) };
  }

  it('reads a hybrid layout: controllers on v1, favordynmods off as a suggestion with its trade-off', () => {
    const { opts } = machine({ mountinfo: HYBRID });
    const r = doctor({ ...opts, uid: 0, probes: fakeProbes() });
    expect(byId(r, 'cgroup.layout').summary).toMatch(/^hybrid: v2 at .*unified/);
    expect(byId(r, 'cgroup.controller.memory').summary).toContain('v1 at');
    /* pids is disabled in this /proc/cgroups. */
    const pids = byId(r, 'cgroup.controller.pids');
    expect(pids.status).toBe('missing');
    expect(pids.fix).toContain('cgroup_disable=pids');
    const favor = byId(r, 'cgroup.favordynmods');
    expect(favor.status).toBe('warn');
    expect(favor.fix).toContain('mount -o remount,favordynmods');
    expect(favor.fix).toContain('fork and exit of every process');
    expect(r.ok).toBe(false);
  });

  it('on cgroup v1 alone, suggests favordynmods by a hierarchy of its own: v1 refuses it on remount', () => {
    /* The HYBRID machine without its v2 mount. cgroup1_reconfigure refuses flag changes at remount. */
    const { opts } = machine({
      mountinfo: HYBRID.split('\n')
        .filter((l) => !l.includes('cgroup2'))
        .join('\n'),
    });
    const r = doctor({ ...opts, uid: 0, probes: fakeProbes() });
    expect(byId(r, 'cgroup.layout').summary).toMatch(/^v1:/);
    const favor = byId(r, 'cgroup.favordynmods');
    expect(favor.status).toBe('warn');
    expect(favor.fix).not.toContain('remount');
    expect(favor.fix).toContain('mount -t cgroup -o none,name=capsule-favordynmods,favordynmods cgroup');
    expect(favor.fix).toContain('fork and exit of every process');
  });

  it('reads a v1 layout with a favordynmods hierarchy of its own as on', () => {
    const fav =
      '50 23 0:40 / /run/capsule-favordynmods rw,relatime - cgroup cgroup rw,favordynmods,name=capsule-favordynmods\n';
    const { opts } = machine({
      mountinfo:
        HYBRID.split('\n')
          .filter((l) => !l.includes('cgroup2'))
          .join('\n') + fav,
    });
    const r = doctor({ ...opts, uid: 0, probes: fakeProbes() });
    expect(byId(r, 'cgroup.favordynmods').status).toBe('ok');
  });

  it('reads a pure v2 layout with favordynmods on', () => {
    const { opts } = machine({ mountinfo: V2_FAVOR });
    const r = doctor({ ...opts, uid: 0, probes: fakeProbes() });
    expect(byId(r, 'cgroup.layout').summary).toMatch(
      /^v2: v2 at .*\/sys\/fs\/cgroup \(cpu memory pids cpuset\)/,
    );
    expect(byId(r, 'cgroup.favordynmods').status).toBe('ok');
    expect(byId(r, 'cgroup.controller.memory').summary).toContain('v2 at');
    expect(byId(r, 'syscall.clone_into_cgroup').status).toBe('ok');
  });

  it('finds a cgroup v2 subtree delegated to an unprivileged caller, and says what to do without one', () => {
    const { root, opts } = machine({
      mountinfo: V2_FAVOR,
      selfCgroup: '0::/user.slice/user-1234.slice/app.scope\n',
    });
    const base = join(root, 'fs/sys/fs/cgroup/user.slice/user-1234.slice');
    mkdirSync(join(base, 'app.scope'), { recursive: true });
    let r = doctor({ ...opts, uid: 1234, probes: fakeProbes() });
    let w = byId(r, 'cgroup.writable');
    expect(w.status).toBe('missing');
    expect(w.fix).toContain('Delegate=yes');
    chownSync(base, 1234, 1234);
    chownSync(join(base, 'app.scope'), 1234, 1234);
    r = doctor({ ...opts, uid: 1234, probes: fakeProbes() });
    w = byId(r, 'cgroup.writable');
    expect(w.status).toBe('ok');
    expect(w.summary).toContain(join(base, 'app.scope'));
  });

  it('crosses each user-namespace blocker for an unprivileged caller, with its fix', () => {
    const { opts } = machine({
      mountinfo: V2_FAVOR,
      sysctls: {
        'kernel.unprivileged_userns_clone': '0',
        'user.max_user_namespaces': '0',
        'kernel.apparmor_restrict_unprivileged_userns': '1',
      },
    });
    const r = doctor({ ...opts, uid: 1234, probes: fakeProbes({ unshare: () => ({ errno: 1, stage: 0 }) }) });
    expect(byId(r, 'userns.unprivileged_userns_clone')).toMatchObject({ status: 'missing' });
    expect(byId(r, 'userns.unprivileged_userns_clone').fix).toContain(
      'sysctl -w kernel.unprivileged_userns_clone=1',
    );
    expect(byId(r, 'userns.max_user_namespaces').fix).toContain('user.max_user_namespaces');
    expect(byId(r, 'userns.apparmor_restrict_unprivileged_userns').fix).toContain('userns,');
    expect(byId(r, 'userns.map')).toMatchObject({ status: 'missing' });
    expect(byId(r, 'userns.map').summary).toContain('EPERM');
    /* Every other namespace needs the user one without root: each says so. */
    expect(byId(r, 'namespace.pid').summary).toContain('at CLONE_NEWUSER');
    expect(byId(r, 'userns.subid')).toMatchObject({ status: 'info' });
    expect(byId(r, 'userns.subid').summary).toContain(
      'no newuidmap/newgidmap; no /etc/subuid and /etc/subgid range for ann',
    );
    expect(byId(r, 'userns.subid').summary).toContain("the sandbox's uid is yours on the host");
    /* The same machine for root: only max_user_namespaces matters (hostIds use user namespaces). */
    const asRoot = doctor({ ...opts, uid: 0, probes: fakeProbes() });
    expect(byId(asRoot, 'userns.unprivileged_userns_clone').status).toBe('info');
    expect(byId(asRoot, 'userns.apparmor_restrict_unprivileged_userns').status).toBe('info');
    expect(byId(asRoot, 'userns.max_user_namespaces').status).toBe('missing');
  });

  it('ticks subordinate ids when newuidmap and /etc/subuid grant a range', () => {
    const { root, opts } = machine({ mountinfo: V2_FAVOR });
    writeTree(root, {
      'etc/subuid': 'ann:100000:65536\n',
      'etc/subgid': '1234:200000:65536\n',
      'bin/newuidmap': '',
      'bin/newgidmap': '',
    });
    chownSync(join(root, 'bin'), 0, 0);
    for (const b of ['newuidmap', 'newgidmap']) chmodSync(join(root, 'bin', b), 0o755);
    const r = doctor({ ...opts, uid: 1234, probes: fakeProbes() });
    expect(byId(r, 'userns.subid')).toMatchObject({ status: 'ok' });
    expect(byId(r, 'userns.subid').summary).toContain('100000+65536');
    expect(byId(r, 'userns.subid').summary).toContain("the sandbox's ids are mapped from that range");
    expect(subordinateRanges('ann:1:2\n#x\nbob:3:4\n1234:5:6\n', 'ann', 1234)).toEqual([
      { first: 1, count: 2 },
      { first: 5, count: 6 },
    ]);
  });

  it('a kernel without a system call or namespace gets a cross and the fix', () => {
    const { opts } = machine({ mountinfo: HYBRID, filesystems: 'nodev\tproc\nnodev\ttmpfs\n' });
    const r = doctor({
      ...opts,
      uid: 0,
      probes: fakeProbes({
        syscalls: () => ({ ...ALL_PRESENT, openat2: 38, mount_setattr: 38, seccomp_wait_killable_recv: 22 }),
        unshare: (flags) => (flags.includes(0x20000000) ? { errno: 22, stage: 0 } : { errno: 0, stage: 0 }),
        seccompLibrary: () => ({ major: 2, minor: 4, micro: 1, api: 3, newest: { nr: 400, name: 'x' } }),
      }),
    });
    expect(byId(r, 'syscall.openat2')).toMatchObject({ status: 'missing', fix: 'needs Linux 5.6 or later' });
    expect(byId(r, 'syscall.openat2').summary).toContain('ENOSYS');
    expect(byId(r, 'mountapi.mount_setattr').fix).toContain('5.12');
    expect(byId(r, 'seccomp.wait_killable_recv').status).toBe('warn');
    expect(byId(r, 'namespace.pid')).toMatchObject({ status: 'missing' });
    expect(byId(r, 'namespace.pid').fix).toContain('CONFIG_PID_NS');
    expect(byId(r, 'namespace.net').status).toBe('ok');
    expect(byId(r, 'fs.overlay')).toMatchObject({ status: 'missing' });
    expect(byId(r, 'fs.overlay').fix).toContain('modprobe overlay');
    expect(byId(r, 'seccomp.libseccomp').status).toBe('missing');
    const text = formatDoctor(r);
    expect(text).toContain('✗ openat2(2)');
    expect(text).toContain('fix: needs Linux 5.6 or later');
    expect(text).toMatch(/\d+ missing/);
  });
});
