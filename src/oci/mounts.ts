/**
 * config.json's `mounts` into NativeOciMount: the options that are mount flags become
 * MOUNT_ATTR_* (mount_setattr(2)) or propagation (MS_*, mount(2) "Changing the propagation
 * type"), every other option is the filesystem's own and goes to fsconfig(2) as a key or a
 * key=value pair. A flag never reaches fsconfig: `ro` there would make the superblock
 * read-only, which for a shared superblock (sysfs, proc of the same namespace) is the host's.
 *
 * Options, as runc's table (libcontainer/specconv) and mount(8) name them:
 * - ro/rw, nosuid/suid, nodev/dev, noexec/exec, noatime/relatime/strictatime (and their
 *   no- forms), nodiratime/diratime, nosymfollow/symfollow: MOUNT_ATTR_*, the last of a pair wins;
 * - bind, rbind: a bind mount (whatever `type` says);
 * - private, shared, slave, unbindable and their r- forms: propagation, the last one wins;
 * - defaults, async, nomand, nolazytime, loud, noiversion: the kernel's defaults, nothing to do
 *   (notmpcopyup undoes a tmpcopyup before it);
 * - tmpcopyup (runc's and crun's: copy what the directory held into the new tmpfs; podman
 *   adds it to every --tmpfs and to the tmpfs mounts of --read-only): accepted where there is
 *   nothing to copy (the directory is absent or empty in the rootfs, as /tmp of most images),
 *   refused otherwise: capsule does not copy;
 * - refused, naming the option: sync, dirsync, mand, lazytime, silent, iversion, remount
 *   (superblock flags capsule does not set), the recursive attributes of
 *   runc 1.1 (rro, rnosuid, ...), idmap/ridmap (runtime-spec 1.2 idmapped mounts);
 * - anything else: the filesystem's option (newinstance, ptmxmode=0666, mode=755, size=65536k,
 *   gid=5, hidepid=2, ...), which the kernel checks at create: an option the filesystem does not
 *   know fails fsconfig with EINVAL there. A bind mount has no such options: they are left
 *   out with a warning, as mount(2) ignores them for MS_BIND.
 *
 * `cgroup` mounts are left as they are (type 'cgroup'): what they become depends on the cgroup
 * the container is given, which create makes; expandCgroupMount below turns one into mounts the
 * addon can make, once that is known.
 */
import { readdirSync } from 'node:fs';
import { isAbsolute, join, posix, resolve } from 'node:path';

import type { NativeOciMount } from '../native.js';
import { absent, type Fields } from './fields.js';

/** MOUNT_ATTR_* (include/uapi/linux/mount.h). */
export const MOUNT_ATTR = {
  RDONLY: 0x1,
  NOSUID: 0x2,
  NODEV: 0x4,
  NOEXEC: 0x8,
  /** The atime field: RELATIME (0), NOATIME, STRICTATIME. */
  ATIME: 0x70,
  RELATIME: 0x0,
  NOATIME: 0x10,
  STRICTATIME: 0x20,
  NODIRATIME: 0x80,
  NOSYMFOLLOW: 0x200000,
} as const;

/** MS_* propagation flags (include/uapi/linux/mount.h). */
export const MS = {
  REC: 0x4000,
  UNBINDABLE: 1 << 17,
  PRIVATE: 1 << 18,
  SLAVE: 1 << 19,
  SHARED: 1 << 20,
} as const;

export const PROPAGATION: Record<string, number> = {
  private: MS.PRIVATE,
  rprivate: MS.PRIVATE | MS.REC,
  shared: MS.SHARED,
  rshared: MS.SHARED | MS.REC,
  slave: MS.SLAVE,
  rslave: MS.SLAVE | MS.REC,
  unbindable: MS.UNBINDABLE,
  runbindable: MS.UNBINDABLE | MS.REC,
};

/** option -> [attribute bits it concerns, bits it sets]. */
const ATTRS: Record<string, [number, number]> = {
  ro: [MOUNT_ATTR.RDONLY, MOUNT_ATTR.RDONLY],
  rw: [MOUNT_ATTR.RDONLY, 0],
  nosuid: [MOUNT_ATTR.NOSUID, MOUNT_ATTR.NOSUID],
  suid: [MOUNT_ATTR.NOSUID, 0],
  nodev: [MOUNT_ATTR.NODEV, MOUNT_ATTR.NODEV],
  dev: [MOUNT_ATTR.NODEV, 0],
  noexec: [MOUNT_ATTR.NOEXEC, MOUNT_ATTR.NOEXEC],
  exec: [MOUNT_ATTR.NOEXEC, 0],
  noatime: [MOUNT_ATTR.ATIME, MOUNT_ATTR.NOATIME],
  atime: [MOUNT_ATTR.ATIME, MOUNT_ATTR.RELATIME],
  relatime: [MOUNT_ATTR.ATIME, MOUNT_ATTR.RELATIME],
  norelatime: [MOUNT_ATTR.ATIME, MOUNT_ATTR.RELATIME],
  strictatime: [MOUNT_ATTR.ATIME, MOUNT_ATTR.STRICTATIME],
  nostrictatime: [MOUNT_ATTR.ATIME, MOUNT_ATTR.RELATIME],
  nodiratime: [MOUNT_ATTR.NODIRATIME, MOUNT_ATTR.NODIRATIME],
  diratime: [MOUNT_ATTR.NODIRATIME, 0],
  nosymfollow: [MOUNT_ATTR.NOSYMFOLLOW, MOUNT_ATTR.NOSYMFOLLOW],
  symfollow: [MOUNT_ATTR.NOSYMFOLLOW, 0],
};

/** Options that ask for what the kernel does anyway. */
const DEFAULTS = new Set(['defaults', 'async', 'nomand', 'nolazytime', 'loud', 'noiversion']);

const REFUSED: Record<string, string> = {
  sync: 'a superblock flag capsule does not set',
  dirsync: 'a superblock flag capsule does not set',
  mand: 'mandatory locking, which Linux 5.15 removed',
  lazytime: 'a superblock flag capsule does not set',
  silent: 'a superblock flag capsule does not set',
  iversion: 'a superblock flag capsule does not set',
  remount: 'a remount, which a new container has nothing to apply to',
  idmap: 'an idmapped mount (runtime-spec 1.2), which capsule does not support',
  ridmap: 'an idmapped mount (runtime-spec 1.2), which capsule does not support',
};

/** The filesystems the addon mounts with fsopen(2) (and 'cgroup', see expandCgroupMount). */
export const MOUNT_TYPES = ['proc', 'tmpfs', 'devpts', 'mqueue', 'sysfs', 'cgroup', 'cgroup2'];

const MOUNT_KEYS = ['destination', 'type', 'source', 'options', 'uidMappings', 'gidMappings'];

/**
 * Does the directory at `destination` in the rootfs hold anything (for tmpcopyup)? Read on the
 * host below the rootfs; a symlink on the way is followed there, not inside the rootfs, so the
 * answer errs towards "yes" (an error) rather than a silent loss.
 */
function hasContent(rootfs: string, destination: string): boolean {
  try {
    return readdirSync(join(rootfs, destination)).length > 0;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code !== 'ENOENT' && code !== 'ENOTDIR';
  }
}

/*
 * Mount points inside /proc that runc allows (libcontainer/rootfs_linux.go, checkProcMount):
 * the files lxcfs emulates. A mount anywhere else under /proc could hide what the kernel
 * reports about the container (CVE-2019-19921 replaced /proc/self/attr/* so); onto /proc
 * itself only a proc filesystem goes.
 */
const PROC_MOUNTS_ALLOWED = new Set([
  '/proc/cpuinfo',
  '/proc/diskstats',
  '/proc/meminfo',
  '/proc/stat',
  '/proc/swaps',
  '/proc/uptime',
  '/proc/loadavg',
  '/proc/slabinfo',
  '/proc/net/dev',
  '/proc/sys/kernel/ns_last_pid',
]);

/** One entry of config.json's mounts; `rootfs` is root.path resolved (for tmpcopyup). */
export function readMount(
  f: Fields,
  field: string,
  raw: unknown,
  bundle: string,
  rootfs: string,
): NativeOciMount {
  const m = f.object(field, raw, MOUNT_KEYS);
  f.unsupported(
    `${field}.uidMappings`,
    m.uidMappings,
    'idmapped mounts (runtime-spec 1.2) are not supported by capsule: remove uidMappings and gidMappings',
  );
  f.unsupported(
    `${field}.gidMappings`,
    m.gidMappings,
    'idmapped mounts (runtime-spec 1.2) are not supported by capsule: remove uidMappings and gidMappings',
  );
  /* normalize keeps a trailing '/'; the addon resolves the path component by component. */
  const destination = posix
    .normalize(f.absolute(`${field}.destination`, m.destination))
    .replace(/(.)\/+$/, '$1');
  let type = f.optString(`${field}.type`, m.type, '');
  const options = f.strings(`${field}.options`, m.options);

  let bind = type === 'bind';
  let recursive = false;
  let attrs = 0;
  let propagation = 0;
  const data: [string, string | null][] = [];
  let copyUp = -1;
  options.forEach((opt, j) => {
    const of = `${field}.options[${j}]`;
    if (opt === 'tmpcopyup' || opt === 'notmpcopyup') {
      copyUp = opt === 'tmpcopyup' ? j : -1;
    } else if (opt === 'bind' || opt === 'rbind') {
      bind = true;
      recursive = opt === 'rbind';
    } else if (opt in ATTRS) {
      const [mask, set] = ATTRS[opt]!;
      attrs = (attrs & ~mask) | set;
    } else if (opt in PROPAGATION) {
      propagation = PROPAGATION[opt]!;
    } else if (DEFAULTS.has(opt)) {
      /* the kernel's default already */
    } else if (opt in REFUSED) {
      f.fail(of, `${JSON.stringify(opt)} is ${REFUSED[opt]}: remove it`);
    } else if (opt.startsWith('r') && opt.slice(1) in ATTRS) {
      f.fail(
        of,
        `${JSON.stringify(opt)} (runc's recursive mount attribute) is not supported: give ${JSON.stringify(opt.slice(1))}, which applies to the mount itself`,
      );
    } else if (opt === '') {
      f.fail(of, 'is empty');
    } else {
      const eq = opt.indexOf('=');
      if (eq === 0) f.fail(of, `${JSON.stringify(opt)} has no key before '='`);
      data.push(eq < 0 ? [opt, null] : [opt.slice(0, eq), opt.slice(eq + 1)]);
    }
  });

  let source = f.optString(`${field}.source`, m.source, '');
  if (bind) {
    /*
     * mount(2) ignores the data of an MS_BIND mount, so runc and crun accept filesystem options
     * on a bind (runtime-tools' mounts test gives mode=755,size=1k to binds of /etc): left out
     * here, with a warning.
     */
    if (data.length > 0) {
      f.warnings.push(
        `config.json: ${field}.options: ${data.map(([k, v]) => (v === null ? k : `${k}=${v}`)).join(', ')} left out: a bind mount takes no filesystem options (mount(2) ignores them with MS_BIND)`,
      );
      data.length = 0;
    }
    if (source === '') f.fail(`${field}.source`, 'a bind mount needs the host path to bind');
    if (source.includes('\0')) f.fail(`${field}.source`, 'must not contain a NUL byte');
    /* A relative source is relative to the bundle, as runc reads it. */
    source = isAbsolute(source) ? posix.normalize(source) : resolve(bundle, source);
    type = 'bind';
  } else {
    if (type === '')
      f.fail(`${field}.type`, "is required unless the mount is a bind mount (options 'bind' or 'rbind')");
    if (!MOUNT_TYPES.includes(type)) {
      f.fail(
        `${field}.type`,
        `${JSON.stringify(type)} is not a filesystem capsule mounts: use one of ${MOUNT_TYPES.join(', ')}, or a bind mount of a host path`,
      );
    }
    if (source === '') source = type;
  }
  if (destination === '/')
    f.fail(`${field}.destination`, "is the container's root: give the root in root.path");
  if (destination === '/proc' && type !== 'proc')
    f.fail(`${field}.destination`, `only a proc filesystem can be mounted on /proc, not ${type}`);
  if (destination.startsWith('/proc/') && !PROC_MOUNTS_ALLOWED.has(destination))
    f.fail(
      `${field}.destination`,
      `${destination} is inside /proc, where only ${[...PROC_MOUNTS_ALLOWED].join(', ')} may be mounted over (as runc allows, for lxcfs)`,
    );
  if (copyUp >= 0) {
    const of = `${field}.options[${copyUp}]`;
    if (type !== 'tmpfs') f.fail(of, `"tmpcopyup" is for tmpfs mounts, not ${type}`);
    if (hasContent(rootfs, destination)) {
      f.fail(
        of,
        `"tmpcopyup" would copy what ${destination} holds in the rootfs into the tmpfs, which capsule does not do: remove the option (the tmpfs then starts empty) or the mount`,
      );
    }
  }
  return { destination, type, source, recursive, attrs, propagation, data };
}

/** Where the container's cgroup is, for expandCgroupMount. */
export type CgroupView =
  /** Pure cgroup v2: the container's directory, and whether it has a cgroup namespace of its own. */
  | { mode: 'v2'; dir: string; cgroupNamespace: boolean }
  /**
   * v1 or hybrid: the container's directory in each hierarchy it has one in, and the name it
   * gets under the mount (the hierarchy's mount point's last component: cpu, memory, cpu,cpuacct,
   * unified). Hierarchies the container has no cgroup of its own in are left out, so that no
   * host cgroup shows.
   */
  | { mode: 'v1'; hierarchies: { name: string; dir: string }[] };

/**
 * A `cgroup` mount (type 'cgroup' from readMount) as mounts the addon makes, once create knows
 * the container's cgroup; what runc does (libcontainer/rootfs_linux.go, mountCgroupV1/V2):
 * - pure v2 with a cgroup namespace: a new cgroup2 mount, which shows the namespace's root,
 *   the container's own cgroup;
 * - pure v2 without: a bind of the container's own directory;
 * - v1 and hybrid: a tmpfs (mode 755, nosuid, nodev, noexec) with a bind of the container's
 *   directory of each hierarchy under it, carrying the mount's flags (ro as podman sends it).
 *   The tmpfs itself stays writable: NativeOciMount applies attributes before the mount is
 *   attached, and its binds are made in it after that (runc remounts it read-only last).
 */
export function expandCgroupMount(m: NativeOciMount, view: CgroupView): NativeOciMount[] {
  const hardening = MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV | MOUNT_ATTR.NOEXEC;
  if (view.mode === 'v2') {
    if (view.cgroupNamespace) return [{ ...m, type: 'cgroup2', source: 'cgroup2', data: [] }];
    return [{ ...m, type: 'bind', source: view.dir, recursive: false, data: [] }];
  }
  return [
    {
      destination: m.destination,
      type: 'tmpfs',
      source: 'tmpfs',
      recursive: false,
      attrs: (m.attrs & ~MOUNT_ATTR.RDONLY) | hardening,
      propagation: m.propagation,
      data: [['mode', '755']],
    },
    ...view.hierarchies.map((h): NativeOciMount => ({
      destination: posix.join(m.destination, h.name),
      type: 'bind',
      source: h.dir,
      recursive: false,
      attrs: m.attrs | hardening,
      propagation: 0,
      data: [],
    })),
  ];
}

/** linux.rootfsPropagation: MS_PRIVATE | MS_REC when absent or empty, as the addon's contract says. */
export function rootPropagation(f: Fields, v: unknown): number {
  if (absent(v) || v === '') return MS.PRIVATE | MS.REC;
  const s = f.string('linux.rootfsPropagation', v);
  if (!(s in PROPAGATION))
    f.fail(
      'linux.rootfsPropagation',
      `must be one of ${Object.keys(PROPAGATION).join(', ')}, got ${JSON.stringify(s)}`,
    );
  return PROPAGATION[s]!;
}
