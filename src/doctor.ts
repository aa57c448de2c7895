/**
 * `capsule doctor`: every kernel feature capsule uses, checked on this machine for the caller,
 * with a tick or a cross and, for each cross, what to do. The CLI (src/cli/doctor.ts) prints
 * it; a run that fails for want of a feature says "run `capsule doctor`" (src/diagnose.ts).
 *
 * How each is asked, so that nothing is left behind (native/probe.cc): system calls with
 * arguments the kernel rejects once it knows the call; namespaces by a throwaway child that
 * unshares them and exits; files under /proc and /sys read, never written. Every source can
 * be pointed elsewhere (DoctorOptions), which is how test/doctor.test.ts builds machines that
 * lack a feature.
 */
import { accessSync, constants as fsConstants, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';

import {
  CGROUP_CONTROLLERS,
  type CgroupLayout,
  type DetectOptions,
  detectCgroups,
  parseMountinfo,
} from './cgroup/detect.js';
import { type GpuDiscoveryOptions, listNvidiaGpus, nvidiaDriverFiles } from './devices/gpu.js';
import { errnoName } from './diagnose.js';
import { native } from './native.js';
import { delegatedCgroup, rootlessMode } from './rootless.js';

/**
 * `ok`: the feature is there and capsule can use it. `missing`: it is not, and something
 * capsule does fails without it (the check's `fix` says what to do). `warn`: usable, with a
 * suggestion (`fix`) that is the caller's choice. `info`: nothing to act on (a GPU-less machine).
 */
export type DoctorStatus = 'ok' | 'missing' | 'warn' | 'info';

export interface DoctorCheck {
  /** Stable name for scripts: `namespace.pid`, `cgroup.favordynmods`, ... */
  id: string;
  /** The group it is printed under: namespaces, user namespaces, cgroups, seccomp, system calls, filesystems, devices. */
  section: string;
  status: DoctorStatus;
  /** What was found, in one line. */
  summary: string;
  /** For `missing` and `warn`: what to do, and what it costs where it changes the host. */
  fix?: string;
}

export interface DoctorReport {
  /** The caller's effective uid, for which the checks were made. */
  uid: number;
  /** The caller holds CAP_SYS_ADMIN: false means capsule runs rootless here (src/rootless.ts). */
  privileged: boolean;
  kernel: string;
  checks: DoctorCheck[];
  /** No check is `missing`. */
  ok: boolean;
}

/** What native/probe.cc returns: 0 or an errno per system call. */
export interface SyscallProbe {
  pidfd_open: number;
  clone3: number;
  clone_into_cgroup: number;
  openat2: number;
  open_tree: number;
  move_mount: number;
  mount_setattr: number;
  fsopen: number;
  close_range: number;
  seccomp: number;
  seccomp_filter: number;
  seccomp_wait_killable_recv: number;
  seccomp_user_notif: number;
  seccomp_notif_sizes: number;
  notifSizes?: { notif: number; resp: number; data: number };
}

export interface SeccompLibraryProbe {
  major: number;
  minor: number;
  micro: number;
  api: number;
  newest: { nr: number; name: string };
}

/** The native probes; tests replace them to build a machine that lacks something. */
export interface DoctorProbes {
  syscalls(): SyscallProbe;
  /** unshare each flag in a throwaway child (map: write a single-id map after the first). */
  unshare(flags: number[], map: boolean): { errno: number; stage: number };
  seccompLibrary(): SeccompLibraryProbe;
}

export interface DoctorOptions {
  /** The caller's effective uid and gid. @default process.geteuid(), process.getegid() */
  uid?: number;
  /**
   * Whether the caller holds CAP_SYS_ADMIN (runs as root does) or runs rootless.
   * @default uid === 0 when `uid` is given, else what src/rootless.ts finds
   */
  privileged?: boolean;
  gid?: number;
  /** The caller's user name, for /etc/subuid. @default from /etc/passwd */
  user?: string;
  /** Where /proc is (sysctls, filesystems, net/dev, self/cgroup). @default '/proc' */
  procRoot?: string;
  /** Where /etc is (subuid, subgid). @default '/etc' */
  etcRoot?: string;
  /** Directories searched for newuidmap and newgidmap. @default PATH's, plus /usr/bin and /bin */
  binDirs?: string[];
  /** Where cgroups are found (src/cgroup/detect.ts). @default this machine's */
  cgroup?: DetectOptions;
  /** Where GPUs are found (src/devices/gpu.ts). @default this machine's */
  gpu?: GpuDiscoveryOptions;
  /** Replacements for the native probes. @default native/probe.cc's */
  probes?: Partial<DoctorProbes>;
}

/** clone(2) flags of the namespaces capsule uses, in the order of namespaces(7)'s table. */
export const NAMESPACES = [
  { name: 'mnt', flag: 0x00020000, config: 'CONFIG_NAMESPACES', why: 'the sandbox’s own mounts and root' },
  { name: 'pid', flag: 0x20000000, config: 'CONFIG_PID_NS', why: 'the sandbox’s own process ids' },
  { name: 'net', flag: 0x40000000, config: 'CONFIG_NET_NS', why: 'no network but its own loopback' },
  { name: 'uts', flag: 0x04000000, config: 'CONFIG_UTS_NS', why: 'its own hostname' },
  { name: 'ipc', flag: 0x08000000, config: 'CONFIG_IPC_NS', why: 'its own System V IPC and POSIX queues' },
  { name: 'cgroup', flag: 0x02000000, config: 'CONFIG_CGROUPS', why: 'its own view of /proc/self/cgroup' },
  {
    name: 'user',
    flag: 0x10000000,
    config: 'CONFIG_USER_NS',
    why: 'a host uid of its own (hostIds), and rootless runs',
  },
] as const;

export const CLONE_NEWUSER = 0x10000000;

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function sysctl(procRoot: string, name: string): string | null {
  return readText(join(procRoot, 'sys', name.replace(/\./g, '/')))?.trim() ?? null;
}

function errText(errno: number): string {
  return `${errnoName(errno)} (${native().strerror(errno)})`;
}

function nativeProbes(): DoctorProbes {
  const addon = native() as unknown as {
    probeSyscalls(): SyscallProbe;
    probeUnshare(flags: number[], map: boolean): { errno: number; stage: number };
    seccompLibrary(): SeccompLibraryProbe;
  };
  return {
    syscalls: () => addon.probeSyscalls(),
    unshare: (flags, map) => addon.probeUnshare(flags, map),
    seccompLibrary: () => addon.seccompLibrary(),
  };
}

function userName(uid: number, etcRoot: string): string | null {
  for (const line of (readText(join(etcRoot, 'passwd')) ?? '').split('\n')) {
    const f = line.split(':');
    if (f.length > 2 && Number(f[2]) === uid) return f[0]!;
  }
  return null;
}

/** The ranges /etc/subuid (or subgid) grants to `user` or `uid` (subuid(5)). */
export function subordinateRanges(
  text: string,
  user: string | null,
  uid: number,
): { first: number; count: number }[] {
  const out: { first: number; count: number }[] = [];
  for (const line of text.split('\n')) {
    const [who, first, count] = line.trim().split(':');
    if (who === undefined || first === undefined || count === undefined) continue;
    if (who === user || who === String(uid)) out.push({ first: Number(first), count: Number(count) });
  }
  return out;
}

function findBinary(name: string, dirs: string[]): string | null {
  for (const dir of dirs) {
    const path = join(dir, name);
    try {
      accessSync(path, fsConstants.X_OK);
      return path;
    } catch {
      /* not here */
    }
  }
  return null;
}

function check(
  id: string,
  section: string,
  status: DoctorStatus,
  summary: string,
  fix?: string,
): DoctorCheck {
  return fix === undefined ? { id, section, status, summary } : { id, section, status, summary, fix };
}

function namespaceChecks(p: DoctorProbes, root: boolean): DoctorCheck[] {
  return NAMESPACES.map(({ name, flag, config, why }) => {
    /* Without CAP_SYS_ADMIN every namespace but the user one is made inside a user namespace. */
    const viaUser = !root && flag !== CLONE_NEWUSER;
    const r = p.unshare(viaUser ? [CLONE_NEWUSER, flag] : [flag], viaUser);
    const how = viaUser ? ' inside a user namespace' : '';
    if (r.errno === 0)
      return check(`namespace.${name}`, 'namespaces', 'ok', `${name} namespace${how}: ${why}`);
    const failedUser = viaUser && r.stage !== 1;
    const code = errnoName(r.errno);
    let fix: string;
    if (failedUser) fix = 'user namespaces are not available to you: see the user namespace checks below';
    else if (code === 'EINVAL') fix = `this kernel was built without ${config}: use a kernel with it`;
    else if (code === 'ENOSPC')
      fix = `the limit on ${name} namespaces is reached or 0: raise the sysctl user.max_${name}_namespaces`;
    else if (code === 'EPERM')
      fix = root
        ? 'something around capsule (a container’s seccomp profile or an LSM) refuses it: run capsule outside it'
        : 'run capsule as root, or allow unprivileged user namespaces (see below)';
    else fix = 'see unshare(2) for this errno';
    return check(
      `namespace.${name}`,
      'namespaces',
      'missing',
      `${name} namespace${how}: unshare failed${failedUser ? ' at CLONE_NEWUSER' : ''}: ${errText(r.errno)}`,
      fix,
    );
  });
}

function usernsChecks(
  p: DoctorProbes,
  o: Required<Pick<DoctorOptions, 'procRoot' | 'etcRoot'>> & {
    uid: number;
    privileged: boolean;
    user: string | null;
    binDirs: string[];
  },
): DoctorCheck[] {
  const root = o.privileged;
  const out: DoctorCheck[] = [];
  const S = 'user namespaces';
  /* Debian and Ubuntu's switch (kernel/fork.c patch): 0 keeps user namespaces to CAP_SYS_ADMIN. */
  const clone = sysctl(o.procRoot, 'kernel.unprivileged_userns_clone');
  if (clone === null)
    out.push(
      check(
        'userns.unprivileged_userns_clone',
        S,
        'ok',
        'kernel.unprivileged_userns_clone: not in this kernel (no such restriction)',
      ),
    );
  else if (clone === '0')
    out.push(
      check(
        'userns.unprivileged_userns_clone',
        S,
        root ? 'info' : 'missing',
        'kernel.unprivileged_userns_clone = 0: only root may make user namespaces',
        root
          ? undefined
          : 'as root: sysctl -w kernel.unprivileged_userns_clone=1 (and in /etc/sysctl.d/ to keep it)',
      ),
    );
  else
    out.push(
      check('userns.unprivileged_userns_clone', S, 'ok', `kernel.unprivileged_userns_clone = ${clone}`),
    );

  const max = sysctl(o.procRoot, 'user.max_user_namespaces');
  if (max === '0')
    out.push(
      check(
        'userns.max_user_namespaces',
        S,
        'missing',
        'user.max_user_namespaces = 0: user namespaces are off for everyone',
        'as root: sysctl -w user.max_user_namespaces=15000 (and in /etc/sysctl.d/ to keep it)',
      ),
    );
  else
    out.push(
      check(
        'userns.max_user_namespaces',
        S,
        'ok',
        `user.max_user_namespaces = ${max ?? 'not in this kernel'}`,
      ),
    );

  /* Ubuntu 23.10+: an AppArmor profile must allow `userns` for an unprivileged caller. */
  const aa = sysctl(o.procRoot, 'kernel.apparmor_restrict_unprivileged_userns');
  if (aa === '1')
    out.push(
      check(
        'userns.apparmor_restrict_unprivileged_userns',
        S,
        root ? 'info' : 'missing',
        'kernel.apparmor_restrict_unprivileged_userns = 1: unconfined programs get no capabilities in a user namespace',
        root
          ? undefined
          : 'as root, either give node an AppArmor profile with `userns,` (/etc/apparmor.d/, see Ubuntu’s "unprivileged user namespace restrictions"), or sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 for every program',
      ),
    );
  else
    out.push(
      check(
        'userns.apparmor_restrict_unprivileged_userns',
        S,
        'ok',
        `kernel.apparmor_restrict_unprivileged_userns = ${aa ?? 'not in this kernel'}`,
      ),
    );

  /* The proof: a user namespace with our own ids mapped, as a rootless run makes it. */
  const r = p.unshare([CLONE_NEWUSER], true);
  const stage = [
    '',
    'CLONE_NEWUSER',
    'writing /proc/self/setgroups',
    'writing /proc/self/uid_map',
    'writing /proc/self/gid_map',
  ];
  if (r.errno === 0)
    out.push(
      check('userns.map', S, 'ok', `a user namespace with a single-id map (0 -> uid ${o.uid}) works for you`),
    );
  else
    out.push(
      check(
        'userns.map',
        S,
        'missing',
        `a user namespace with a single-id map fails at ${stage[r.stage === 0 ? 1 : -r.stage + 1] ?? 'unshare'}: ${errText(r.errno)}`,
        'fix the sysctls above; inside a container, its seccomp profile or LSM must allow CLONE_NEWUSER',
      ),
    );

  /* newuidmap/newgidmap (shadow's uidmap package) map a whole /etc/subuid range (src/rootless.ts rootlessIdPlan). */
  const uidmap = findBinary('newuidmap', o.binDirs);
  const gidmap = findBinary('newgidmap', o.binDirs);
  const subuid = subordinateRanges(readText(join(o.etcRoot, 'subuid')) ?? '', o.user, o.uid);
  const subgid = subordinateRanges(readText(join(o.etcRoot, 'subgid')) ?? '', o.user, o.uid);
  if (root) out.push(check('userns.subid', S, 'info', 'newuidmap and /etc/subuid: not needed as root'));
  else if (uidmap && gidmap && subuid.length > 0 && subgid.length > 0)
    out.push(
      check(
        'userns.subid',
        S,
        'ok',
        `${uidmap} and /etc/subuid grant ${subuid.map((s) => `${s.first}+${s.count}`).join(', ')}: the sandbox's ids are mapped from that range, so its nobody is not you on the host (newuidmap and newgidmap write the maps)`,
      ),
    );
  else
    out.push(
      check(
        'userns.subid',
        S,
        'info',
        `${uidmap && gidmap ? '' : 'no newuidmap/newgidmap; '}${subuid.length > 0 && subgid.length > 0 ? '' : `no /etc/subuid and /etc/subgid range for ${o.user ?? o.uid}; `}capsule maps one id: the sandbox's uid is yours on the host, so a program can write the files you own that it reaches; for a range of its own, install uidmap and run usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${o.user ?? o.uid}`,
      ),
    );
  return out;
}

function favordynmods(o: { procRoot: string; cgroup: DetectOptions }, layout: CgroupLayout): DoctorCheck {
  const mounts = parseMountinfo(
    readText(o.cgroup.mountinfo ?? join(o.procRoot, 'self/mountinfo')) ?? '',
  ).filter((m) => m.fstype === 'cgroup2' || m.fstype === 'cgroup');
  const on = mounts.filter((m) => m.superOptions.includes('favordynmods'));
  if (on.length > 0)
    return check(
      'cgroup.favordynmods',
      'cgroups',
      'ok',
      `favordynmods is on (${on[0]!.mountPoint}): moving a process between cgroups does not wait for an RCU grace period`,
    );
  if (layout.mode === 'none')
    return check('cgroup.favordynmods', 'cgroups', 'info', 'favordynmods: no cgroup mounted');
  /*
   * cgroup_threadgroup_rwsem is one for the whole host, so favordynmods on any hierarchy
   * turns it on for all (kernel/cgroup/cgroup.c cgroup_favor_dynmods). A v2 mount takes it on
   * remount; a v1 hierarchy refuses flag changes on remount (cgroup1_reconfigure), so where
   * there is no v2 mount the way is a named v1 hierarchy of its own, without controllers.
   */
  const cost =
    'It changes the whole host: fork and exit of every process pay a little more (the cgroup_threadgroup_rwsem stays in its slow-reader mode), in return for fast moves between cgroups; capsule never sets it (docs/performance.md)';
  const how = layout.unified
    ? `mount -o remount,favordynmods ${layout.unified.mountPoint}`
    : 'mkdir -p /run/capsule-favordynmods && mount -t cgroup -o none,name=capsule-favordynmods,favordynmods cgroup /run/capsule-favordynmods (undone by umount, once no cgroup was made in it)';
  const v2only = layout.mode === 'v2';
  return check(
    'cgroup.favordynmods',
    'cgroups',
    'warn',
    `favordynmods is off: ${v2only ? 'a run born in its cgroup (clone3 CLONE_INTO_CGROUP) does not need it, but moving' : 'moving'} a process into a cgroup can wait for an RCU grace period (~6 ms measured here, docs/cgroups.md)`,
    `your choice, as root: ${how}. ${cost}`,
  );
}

function cgroupChecks(o: { uid: number; privileged: boolean; procRoot: string; cgroup: DetectOptions }): {
  checks: DoctorCheck[];
  layout: CgroupLayout;
} {
  const S = 'cgroups';
  const layout = detectCgroups({
    mountinfo: o.cgroup.mountinfo ?? join(o.procRoot, 'self/mountinfo'),
    procCgroups: o.cgroup.procCgroups ?? join(o.procRoot, 'cgroups'),
    ...(o.cgroup.fsRoot !== undefined ? { fsRoot: o.cgroup.fsRoot } : {}),
  });
  const out: DoctorCheck[] = [];
  if (layout.mode === 'none')
    out.push(
      check(
        'cgroup.layout',
        S,
        'missing',
        'no cgroup filesystem is mounted',
        'as root: mount -t cgroup2 none /sys/fs/cgroup',
      ),
    );
  else {
    const where = [
      ...(layout.unified
        ? [`v2 at ${layout.unified.mountPoint} (${layout.unified.controllers.join(' ') || 'no controllers'})`]
        : []),
      ...layout.v1.map((h) => `v1 ${h.controllers.join(',')} at ${h.mountPoint}`),
    ];
    out.push(check('cgroup.layout', S, 'ok', `${layout.mode}: ${where.join('; ')}`));
  }
  for (const name of CGROUP_CONTROLLERS) {
    const h = layout.controllers[name];
    if (h)
      out.push(
        check(
          `cgroup.controller.${name}`,
          S,
          'ok',
          `${name}: v${h.version} at ${h.mountPoint}${h.readOnly ? ' (read-only)' : ''}`,
        ),
      );
    else
      out.push(
        check(
          `cgroup.controller.${name}`,
          S,
          'missing',
          `${name}: not available${layout.disabled.includes(name) ? ' (disabled on the kernel command line)' : ''}`,
          layout.disabled.includes(name)
            ? `remove cgroup_disable=${name} from the kernel command line`
            : layout.unified && !layout.v1.length
              ? `enable it for the subtree: echo +${name} > ${layout.unified.mountPoint}/cgroup.subtree_control (as root)`
              : `mount a hierarchy with it (mount -t cgroup -o ${name} none /sys/fs/cgroup/${name}) or use cgroup v2`,
        ),
      );
  }
  /* Who may make cgroups: root where a hierarchy is writable, anyone else in a delegated v2 subtree. */
  const hierarchies = [...(layout.unified ? [layout.unified] : []), ...layout.v1];
  if (o.privileged) {
    const writable = hierarchies.filter((h) => {
      try {
        accessSync(h.mountPoint, fsConstants.W_OK);
        return !h.readOnly;
      } catch {
        return false;
      }
    });
    const ro = hierarchies.filter((h) => !writable.includes(h));
    out.push(
      ro.length === 0 && hierarchies.length > 0
        ? check('cgroup.writable', S, 'ok', 'every cgroup hierarchy is writable by you (root)')
        : check(
            'cgroup.writable',
            S,
            hierarchies.length === 0 ? 'missing' : 'warn',
            `not writable: ${ro.map((h) => h.mountPoint).join(', ') || 'no hierarchy'}`,
            'a read-only cgroup mount (a container?) leaves limits to the hierarchies that are writable: mount it read-write, or run capsule outside the container',
          ),
    );
  } else {
    const dir = delegatedCgroup(layout, o.uid, o.procRoot);
    out.push(
      dir
        ? check(
            'cgroup.writable',
            S,
            'ok',
            `delegated to you: ${dir} (cgroup v2), so limits work without root`,
          )
        : check(
            'cgroup.writable',
            S,
            'missing',
            'no cgroup is delegated to you: a run without root cannot set memory, pids or CPU limits (rlimits and the wall timer still apply)',
            layout.unified
              ? `run capsule in a delegated scope (systemd-run --user --scope -p Delegate=yes capsule ...), or as root: mkdir ${layout.unified.mountPoint}/capsule-${o.uid} && chown -R ${o.uid} ${layout.unified.mountPoint}/capsule-${o.uid} and start capsule from inside it`
              : 'cgroup v1 cannot be delegated safely: boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1) and use systemd’s Delegate=yes',
          ),
    );
  }
  out.push(favordynmods(o, layout));
  return { checks: out, layout };
}

function present(
  id: string,
  section: string,
  e: number,
  what: string,
  fix: string,
  unavailable: DoctorStatus = 'missing',
): DoctorCheck {
  if (e === 0) return check(id, section, 'ok', what);
  return check(id, section, unavailable, `${what}: ${errText(e)}`, fix);
}

function syscallChecks(s: SyscallProbe, layout: CgroupLayout, lib: SeccompLibraryProbe): DoctorCheck[] {
  const SC = 'seccomp';
  const SY = 'system calls';
  const v = `${lib.major}.${lib.minor}.${lib.micro}`;
  const old = lib.major < 2 || (lib.major === 2 && lib.minor < 5);
  return [
    present(
      'seccomp.filter',
      SC,
      s.seccomp !== 0 ? s.seccomp : s.seccomp_filter,
      'seccomp filter mode (seccomp(2) SECCOMP_SET_MODE_FILTER)',
      "use a kernel with CONFIG_SECCOMP_FILTER, or run with seccomp: 'none' (--seccomp none)",
    ),
    present(
      'seccomp.user_notif',
      SC,
      s.seccomp_user_notif !== 0 ? s.seccomp_user_notif : s.seccomp_notif_sizes,
      `user notification (SECCOMP_RET_USER_NOTIF, SECCOMP_GET_NOTIF_SIZES${s.notifSizes ? `: notif ${s.notifSizes.notif}, resp ${s.notifSizes.resp}, data ${s.notifSizes.data} bytes` : ''})`,
      'needs Linux 5.0 or later: profiles with the notify action cannot be used',
    ),
    present(
      'seccomp.wait_killable_recv',
      SC,
      s.seccomp_wait_killable_recv,
      'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (a notified call waits killably once received)',
      'needs Linux 5.19 or later: a supervised call can be interrupted by a non-fatal signal',
      'warn',
    ),
    check(
      'seccomp.libseccomp',
      SC,
      old ? 'missing' : 'ok',
      `libseccomp ${v} (API level ${lib.api}); the newest system call it knows: ${lib.newest.name} (${lib.newest.nr}), and capsule's filters answer ENOSYS for any call numbered above it`,
      old
        ? 'capsule needs libseccomp 2.5 or later: apt-get install libseccomp2 (and libseccomp-dev to build)'
        : undefined,
    ),
    present(
      'syscall.pidfd_open',
      SY,
      s.pidfd_open,
      'pidfd_open(2): signals and waits by descriptor',
      'needs Linux 5.3 or later',
    ),
    present(
      'syscall.clone3',
      SY,
      s.clone3,
      'clone3(2)',
      'needs Linux 5.3 or later (or a container whose seccomp profile allows clone3)',
    ),
    layout.unified
      ? present(
          'syscall.clone_into_cgroup',
          SY,
          s.clone_into_cgroup,
          'clone3(2) CLONE_INTO_CGROUP: the sandbox is born in its cgroup v2',
          'needs Linux 5.7 or later: capsule moves the child into its cgroup instead (slower)',
          'warn',
        )
      : check(
          'syscall.clone_into_cgroup',
          SY,
          'info',
          'clone3(2) CLONE_INTO_CGROUP: not used here (no cgroup v2 mounted)',
        ),
    present(
      'syscall.openat2',
      SY,
      s.openat2,
      'openat2(2) with RESOLVE_* flags: host paths resolved safely',
      'needs Linux 5.6 or later',
    ),
    present('syscall.close_range', SY, s.close_range, 'close_range(2)', 'needs Linux 5.9 or later'),
    present(
      'mountapi.open_tree',
      SY,
      s.open_tree,
      'open_tree(2): binds by descriptor',
      'needs Linux 5.2 or later',
    ),
    present('mountapi.move_mount', SY, s.move_mount, 'move_mount(2)', 'needs Linux 5.2 or later'),
    present(
      'mountapi.mount_setattr',
      SY,
      s.mount_setattr,
      'mount_setattr(2): read-only and nosuid binds, recursively',
      'needs Linux 5.12 or later',
    ),
    present(
      'mountapi.fsopen',
      SY,
      s.fsopen,
      'fsopen(2), fsmount(2): /proc, /tmp and /dev made by descriptor',
      'needs Linux 5.2 or later',
    ),
  ];
}

function fsAndDeviceChecks(procRoot: string, gpu: GpuDiscoveryOptions): DoctorCheck[] {
  const out: DoctorCheck[] = [];
  const filesystems = readText(join(procRoot, 'filesystems')) ?? '';
  const has = (fs: string) => filesystems.split('\n').some((l) => l.split('\t').pop() === fs);
  out.push(
    has('overlay')
      ? check('fs.overlay', 'filesystems', 'ok', 'overlayfs (in /proc/filesystems)')
      : check(
          'fs.overlay',
          'filesystems',
          'missing',
          'overlayfs: not in /proc/filesystems',
          'as root: modprobe overlay (or a kernel with CONFIG_OVERLAY_FS)',
        ),
  );
  for (const fs of ['proc', 'tmpfs']) {
    out.push(
      has(fs)
        ? check(`fs.${fs}`, 'filesystems', 'ok', `${fs} (in /proc/filesystems)`)
        : check(
            `fs.${fs}`,
            'filesystems',
            'missing',
            `${fs}: not in /proc/filesystems`,
            `a kernel with ${fs} support`,
          ),
    );
  }
  const netdev = readText(join(procRoot, 'net/dev')) ?? '';
  out.push(
    /^\s*lo:/m.test(netdev)
      ? check(
          'net.loopback',
          'devices',
          'ok',
          'loopback network device (lo), which every sandbox gets its own of',
        )
      : check(
          'net.loopback',
          'devices',
          'missing',
          'no loopback network device (lo) in /proc/net/dev',
          'a kernel with networking (CONFIG_NET): a sandbox’s network namespace brings up its own lo',
        ),
  );
  const gpus = listNvidiaGpus(gpu);
  const libs = nvidiaDriverFiles(gpu);
  if (gpus.length === 0)
    out.push(
      check('gpu.devices', 'devices', 'info', 'no NVIDIA GPU (/dev/nvidia*): --gpu cannot be used here'),
    );
  else
    out.push(
      check(
        'gpu.devices',
        'devices',
        'ok',
        `${gpus.length} NVIDIA GPU(s): ${gpus.map((g) => `${g.index}${g.model ? ` ${g.model}` : ''}`).join(', ')}`,
      ),
    );
  if (libs.length > 0)
    out.push(
      check('gpu.libraries', 'devices', 'ok', `${libs.length} NVIDIA driver libraries and utilities found`),
    );
  else
    out.push(
      check(
        'gpu.libraries',
        'devices',
        gpus.length > 0 ? 'missing' : 'info',
        'no NVIDIA driver libraries in the ld.so cache',
        gpus.length > 0
          ? 'install the NVIDIA driver’s user-space libraries (libcuda, libnvidia-ml) and run ldconfig'
          : undefined,
      ),
    );
  return out;
}

/** Check every feature capsule uses, for the caller. Never throws for a missing feature. */
export function doctor(opts: DoctorOptions = {}): DoctorReport {
  const uid = opts.uid ?? process.geteuid?.() ?? 0;
  const privileged = opts.privileged ?? (opts.uid !== undefined ? uid === 0 : !rootlessMode());
  const procRoot = opts.procRoot ?? '/proc';
  const etcRoot = opts.etcRoot ?? '/etc';
  const probes = { ...nativeProbesLazy(), ...opts.probes } as DoctorProbes;
  const binDirs = opts.binDirs ?? [
    ...(process.env.PATH ?? '').split(':').filter(Boolean),
    '/usr/bin',
    '/bin',
  ];
  const user = opts.user ?? userName(uid, etcRoot);
  const cg = cgroupChecks({ uid, privileged, procRoot, cgroup: opts.cgroup ?? {} });
  const checks = [
    ...namespaceChecks(probes, privileged),
    ...usernsChecks(probes, { uid, privileged, user, procRoot, etcRoot, binDirs }),
    ...cg.checks,
    ...syscallChecks(probes.syscalls(), cg.layout, probes.seccompLibrary()),
    ...fsAndDeviceChecks(procRoot, opts.gpu ?? {}),
  ];
  return { uid, privileged, kernel: release(), checks, ok: checks.every((c) => c.status !== 'missing') };
}

/** The native probes, loaded only for those the caller did not replace. */
function nativeProbesLazy(): DoctorProbes {
  let loaded: DoctorProbes | undefined;
  const get = () => (loaded ??= nativeProbes());
  return {
    syscalls: () => get().syscalls(),
    unshare: (f, m) => get().unshare(f, m),
    seccompLibrary: () => get().seccompLibrary(),
  };
}

const MARK: Record<DoctorStatus, string> = { ok: '✓', missing: '✗', warn: '!', info: '-' };

/** The report as text: a section heading, then one line per check and an indented fix. */
export function formatDoctor(report: DoctorReport): string {
  const lines = [
    `capsule doctor: Linux ${report.kernel}, uid ${report.uid}${report.privileged ? ' (root)' : ' (rootless)'}`,
  ];
  let section = '';
  for (const c of report.checks) {
    if (c.section !== section) {
      section = c.section;
      lines.push('', `${section}:`);
    }
    lines.push(`  ${MARK[c.status]} ${c.summary}`);
    if (c.fix && c.status !== 'ok') lines.push(`      fix: ${c.fix}`);
  }
  const missing = report.checks.filter((c) => c.status === 'missing').length;
  const warn = report.checks.filter((c) => c.status === 'warn').length;
  lines.push(
    '',
    missing === 0
      ? `everything capsule uses is here${warn ? ` (${warn} suggestion${warn > 1 ? 's' : ''})` : ''}`
      : `${missing} missing${warn ? `, ${warn} suggestion${warn > 1 ? 's' : ''}` : ''}: see the fixes above`,
  );
  return `${lines.join('\n')}\n`;
}
