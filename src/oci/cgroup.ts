/**
 * An OCI container's cgroup: made at linux.cgroupsPath in every hierarchy (v1) or in the
 * unified one (v2), with linux.resources written, and owned by the container, not by this
 * process: nothing here is pooled or registered for removal at exit (src/cgroup/exit.ts),
 * since the container outlives the command that made it. `delete` removes it.
 *
 * cgroupsPath: runc reads a relative path as relative to its own cgroup; capsule reads every
 * path as relative to each hierarchy's root, because the calling process may sit in a cgroup
 * that is not its to write (on this machine, a memory cgroup of the host's own). The
 * default is /capsule-oci/<id>.
 *
 * The file writes, the v1 cpuset inheritance and the v2 subtree_control enabling are the
 * cgroup layer's (src/cgroup/files.ts, v1.ts ensureV1Parent, v2.ts ensureV2Parent).
 */
import { closeSync, constants, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { type CgroupHierarchy, type CgroupLayout, detectCgroups } from '../cgroup/detect.js';
import { isCgroupError } from '../cgroup/errors.js';
import { makeCgroupDir, readPidsOf, writeCgroupFile } from '../cgroup/files.js';
import { killPids } from '../cgroup/kill.js';
import { ensureV1Parent } from '../cgroup/v1.js';
import { ensureV2Parent } from '../cgroup/v2.js';
import { removeDirWithRetry, sleep } from '../cgroup/wait.js';
import { setDeviceProgram } from '../devices/index.js';
import { CapsuleError, ConfigError } from '../errors.js';
import type { OciResources } from './plan.js';

export interface ContainerCgroup {
  /** The directories, absolute: one per v1 hierarchy, or the v2 one. */
  paths: string[];
  /** O_WRONLY fds of each v1 directory's cgroup.procs (the child joins them before exec). */
  joinFds: number[];
  /** v2: the directory's fd for clone3(CLONE_INTO_CGROUP); -1 on v1. */
  dirFd: number;
  freezerPath: string;
  freezerVersion: 0 | 1 | 2;
  /** Close the fds (the directories stay: the container owns them). */
  closeFds(): void;
}

/** linux.cgroupsPath as a relative path below each hierarchy's root; '' or absent: /capsule-oci/<id>. */
export function normalizeCgroupsPath(path: string, id: string): string {
  if (path.includes(':')) {
    throw new ConfigError(
      `linux.cgroupsPath ${JSON.stringify(path)} is a systemd slice:prefix:name: capsule manages cgroupfs paths only (use a path such as /capsule-oci/${id})`,
      'linux.cgroupsPath',
    );
  }
  const parts = (path || `/capsule-oci/${id}`).split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0 || parts.includes('..')) {
    throw new ConfigError(
      `linux.cgroupsPath ${JSON.stringify(path)} must name a cgroup below the hierarchy's root, without '..'`,
      'linux.cgroupsPath',
    );
  }
  return parts.join('/');
}

/** The hierarchies a container's cgroup spans: every v1 one with a controller, or the unified one. */
export function containerHierarchies(layout: CgroupLayout): CgroupHierarchy[] {
  const v1 = layout.v1.filter((h) => !h.readOnly);
  if (v1.length > 0) return v1;
  return layout.unified && !layout.unified.readOnly ? [layout.unified] : [];
}

/**
 * mkdir the container's cgroup in each hierarchy, write `resources`, open what the addon
 * joins. On failure everything made here is removed again.
 */
export function makeContainerCgroup(
  rel: string,
  resources: OciResources,
  layout = detectCgroups(),
): ContainerCgroup {
  const hierarchies = containerHierarchies(layout);
  if (hierarchies.length === 0) {
    throw new CapsuleError(
      `no writable cgroup hierarchy is mounted: ${layout.mode}; mount cgroupfs (v1 or v2) read-write`,
    );
  }
  const made: string[] = [];
  const fds: number[] = [];
  let dirFd = -1;
  let freezerPath = '';
  let freezerVersion: 0 | 1 | 2 = 0;
  try {
    for (const h of hierarchies) {
      let dir: string;
      if (h.version === 1) {
        /* cpuset's cpus and mems are copied down level by level: cpusets.txt §1.9. */
        dir = ensureV1Parent(h, rel);
      } else {
        const parent = rel.split('/').slice(0, -1).join('/');
        /*
         * Controllers are enabled in every ancestor's subtree_control, not the container's own:
         * a cgroup that enables them for children can hold no process (cgroup-v2.rst "No
         * Internal Process Constraint").
         */
        const p = ensureV2Parent(h, parent);
        dir = join(p.dir, rel.split('/').at(-1)!);
        makeCgroupDir(dir, null, true);
      }
      made.push(dir);
      if (readPidsOf(dir, null).length > 0) {
        throw new CapsuleError(
          `cgroup ${dir} (linux.cgroupsPath) already has processes in it: give each container its own`,
        );
      }
      if (h.version === 1) {
        writeV1(h, dir, resources);
        fds.push(openSync(join(dir, 'cgroup.procs'), constants.O_WRONLY));
        if (h.controllers.includes('freezer')) {
          freezerPath = dir;
          freezerVersion = 1;
        }
      } else {
        writeV2(dir, resources);
        dirFd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
        if (v2DeviceRules(resources) !== null) setDeviceProgram(dirFd, v2DeviceRules(resources));
        freezerPath = dir;
        freezerVersion = 2;
      }
    }
    /*
     * A v1 host's hierarchies without controllers (a hybrid host's cgroup2, name=systemd): the
     * container gets a directory there too, with no limit in it, so that /proc/PID/cgroup names
     * its own cgroup on every line and tools that read those lines (systemd, containerd) find
     * it where cgroupsPath says, as runc does on such a host.
     */
    if (hierarchies[0]?.version === 1) {
      for (const mountPoint of controllerless(layout)) {
        /* Parents stay, as the v1 ones do (shared by the engine's containers); the leaf is ours. */
        const dir = join(mountPoint, rel);
        let at = mountPoint;
        for (const part of rel.split('/')) makeCgroupDir((at = join(at, part)), null, true);
        made.push(dir);
        fds.push(openSync(join(dir, 'cgroup.procs'), constants.O_WRONLY));
      }
    }
  } catch (e) {
    for (const fd of fds) closeSync(fd);
    if (dirFd >= 0) closeSync(dirFd);
    removeCgroupDirsSync(made);
    throw e;
  }
  return {
    paths: made,
    joinFds: fds,
    dirFd,
    freezerPath,
    freezerVersion,
    closeFds() {
      for (const fd of fds.splice(0)) closeSync(fd);
      if (dirFd >= 0) closeSync(dirFd);
      dirFd = -1;
    },
  };
}

/** The writable cgroup mounts of the host's /sys/fs/cgroup that carry no controller (mountinfo). */
function controllerless(layout: CgroupLayout): string[] {
  const found: string[] = [];
  if (layout.unified && !layout.unified.readOnly) found.push(layout.unified.mountPoint);
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep < 0 || f[sep + 1] !== 'cgroup' || !f[4]?.startsWith('/sys/fs/cgroup/')) continue;
    const opts = (f[sep + 3] ?? '').split(',');
    if (opts.includes('ro') || !opts.some((o) => o.startsWith('name='))) continue;
    if (layout.v1.some((h) => h.mountPoint === f[4])) continue; /* named, but with controllers too */
    found.push(f[4]);
  }
  return found;
}

/** runc's default device allow list (libcontainer/specconv AllowedDevices): what every container's /dev needs. */
const DEFAULT_ALLOWED: string[] = [
  'c *:* m',
  'b *:* m',
  'c 1:3 rwm' /* null */,
  'c 1:8 rwm' /* random */,
  'c 1:7 rwm' /* full */,
  'c 5:0 rwm' /* tty */,
  'c 1:5 rwm' /* zero */,
  'c 1:9 rwm' /* urandom */,
  'c 136:* rwm' /* /dev/pts/* */,
  'c 5:2 rwm' /* ptmx */,
];

function deviceLine(r: OciResources['devices'][number]): string {
  return `${r.type} ${r.major ?? '*'}:${r.minor ?? '*'} ${r.access || 'rwm'}`;
}

/** Write linux.resources to one v1 directory: only the files of the controllers it carries. */
function writeV1(h: CgroupHierarchy, dir: string, r: OciResources, update = false): void {
  const has = (c: string) => h.controllers.includes(c);
  const w = (file: string, value: string | number, c: string) =>
    writeCgroupFile(join(dir, file), String(value), c);
  if (has('memory') && r.memory) {
    const m = r.memory;
    if (m.limit !== undefined) {
      /* memsw must stay >= the limit: raise in the order that keeps it so (memory.txt §2.5). */
      try {
        w('memory.limit_in_bytes', m.limit, 'memory');
        if (m.swap !== undefined) w('memory.memsw.limit_in_bytes', m.swap, 'memory');
      } catch (e) {
        if (m.swap === undefined || !update) throw e;
        w('memory.memsw.limit_in_bytes', m.swap, 'memory');
        w('memory.limit_in_bytes', m.limit, 'memory');
      }
    } else if (m.swap !== undefined) w('memory.memsw.limit_in_bytes', m.swap, 'memory');
    if (m.reservation !== undefined) w('memory.soft_limit_in_bytes', m.reservation, 'memory');
    if (m.swappiness !== undefined) w('memory.swappiness', m.swappiness, 'memory');
    if (m.disableOOMKiller) w('memory.oom_control', 1, 'memory');
  }
  if (has('pids') && r.pids) w('pids.max', r.pids.limit <= 0 ? 'max' : r.pids.limit, 'pids');
  if (r.cpu) {
    const c = r.cpu;
    if (has('cpu')) {
      if (c.shares !== undefined) w('cpu.shares', c.shares, 'cpu');
      if (c.period !== undefined) w('cpu.cfs_period_us', c.period, 'cpu');
      if (c.quota !== undefined) w('cpu.cfs_quota_us', c.quota, 'cpu');
      if (c.realtimePeriod !== undefined) w('cpu.rt_period_us', c.realtimePeriod, 'cpu');
      if (c.realtimeRuntime !== undefined) w('cpu.rt_runtime_us', c.realtimeRuntime, 'cpu');
    }
    if (has('cpuset')) {
      if (c.cpus) w('cpuset.cpus', c.cpus, 'cpuset');
      if (c.mems) w('cpuset.mems', c.mems, 'cpuset');
    }
  }
  if (has('devices') && !update) {
    /* devices.txt §3: `a` to devices.deny drops every exception; then the rules in order, then runc's defaults. */
    w('devices.deny', 'a', 'devices');
    for (const d of r.devices) w(d.allow ? 'devices.allow' : 'devices.deny', deviceLine(d), 'devices');
    for (const line of DEFAULT_ALLOWED) w('devices.allow', line, 'devices');
  }
}

/** OCI cpu.shares (2..262144) to cgroup v2 cpu.weight (1..10000), as runc and crun convert. */
export function sharesToWeight(shares: number): number {
  if (shares === 0) return 100;
  return 1 + Math.floor(((Math.max(2, Math.min(262144, shares)) - 2) * 9999) / 262142);
}

function writeV2(dir: string, r: OciResources, current?: { period: number }): void {
  const w = (file: string, value: string | number, c: string | null) =>
    writeCgroupFile(join(dir, file), String(value), c);
  if (r.memory) {
    const m = r.memory;
    if (m.limit !== undefined) w('memory.max', m.limit < 0 ? 'max' : m.limit, 'memory');
    /* OCI swap is memory+swap; v2's memory.swap.max is swap alone. */
    if (m.swap !== undefined && m.limit !== undefined) {
      w('memory.swap.max', m.swap < 0 ? 'max' : Math.max(0, m.swap - m.limit), 'memory');
    }
    if (m.reservation !== undefined) w('memory.low', m.reservation, 'memory');
  }
  if (r.pids) w('pids.max', r.pids.limit <= 0 ? 'max' : r.pids.limit, 'pids');
  if (r.cpu) {
    const c = r.cpu;
    if (c.shares !== undefined) w('cpu.weight', sharesToWeight(c.shares), 'cpu');
    if (c.quota !== undefined || c.period !== undefined) {
      const period = c.period ?? current?.period ?? 100_000;
      w('cpu.max', `${c.quota === undefined || c.quota < 0 ? 'max' : c.quota} ${period}`, 'cpu');
    }
    if (c.cpus) w('cpuset.cpus', c.cpus, 'cpuset');
    if (c.mems) w('cpuset.mems', c.mems, 'cpuset');
  }
  for (const [file, value] of Object.entries(r.unified ?? {})) {
    if (file.includes('/') || file.startsWith('.')) {
      throw new ConfigError(
        `linux.resources.unified key ${JSON.stringify(file)} is not a cgroup file name`,
        'linux.resources.unified',
      );
    }
    w(file, value, null);
  }
}

/**
 * linux.resources.devices as the allow list of a v2 BPF device program (native/devices.cc
 * takes allow rules only): deny-all resets the list, a deny that matches an earlier allow
 * exactly removes it; any other deny cannot be expressed and is an error naming the field.
 * null: no rules at all (nothing attached).
 */
function v2DeviceRules(
  r: OciResources,
): { type: 'c' | 'b'; major: number | '*'; minor: number | '*'; access: string }[] | null {
  if (r.devices.length === 0) return null;
  let allow: { type: 'c' | 'b' | 'a'; major: number | '*'; minor: number | '*'; access: string }[] = [];
  for (const d of r.devices) {
    const rule = {
      type: d.type,
      major: d.major ?? ('*' as const),
      minor: d.minor ?? ('*' as const),
      access: d.access || 'rwm',
    };
    if (d.allow) allow.push(rule);
    else if (d.type === 'a' && rule.major === '*' && rule.minor === '*') allow = [];
    else {
      const before = allow.length;
      allow = allow.filter(
        (a) => !(a.type === rule.type && a.major === rule.major && a.minor === rule.minor),
      );
      if (allow.length === before) {
        throw new ConfigError(
          `linux.resources.devices: a deny rule (${deviceLine(d)}) after allow rules it does not undo exactly cannot be expressed on cgroup v2 by capsule`,
          'linux.resources.devices',
        );
      }
    }
  }
  const out: { type: 'c' | 'b'; major: number | '*'; minor: number | '*'; access: string }[] = [];
  for (const a of allow) {
    if (a.type === 'a') out.push({ ...a, type: 'c' }, { ...a, type: 'b' });
    else out.push({ ...a, type: a.type });
  }
  for (const line of DEFAULT_ALLOWED) {
    const [type, mm, access] = line.split(' ') as ['c' | 'b', string, string];
    const [ma, mi] = mm.split(':') as [string, string];
    out.push({ type, major: ma === '*' ? '*' : Number(ma), minor: mi === '*' ? '*' : Number(mi), access });
  }
  return out;
}

/** `update`: write new resources into an existing container's cgroup. */
export function updateContainerCgroup(paths: string[], r: OciResources, layout = detectCgroups()): void {
  for (const dir of paths) {
    const h = hierarchyOf(dir, layout);
    if (!h) continue;
    if (h.version === 1) writeV1(h, dir, r, true);
    else {
      let period = 100_000;
      try {
        period = Number(readFileSync(join(dir, 'cpu.max'), 'utf8').trim().split(' ')[1]) || period;
      } catch {
        /* no cpu controller: cpu.max is not written either */
      }
      writeV2(dir, r, { period });
    }
  }
}

function hierarchyOf(dir: string, layout: CgroupLayout): CgroupHierarchy | undefined {
  return containerHierarchies(layout).find((h) => dir === h.mountPoint || dir.startsWith(h.mountPoint + '/'));
}

/** Every pid in the container's cgroup (the union over hierarchies; v1's may differ for a moment). */
export function cgroupPids(paths: string[]): number[] {
  const all = new Set<number>();
  for (const p of paths) for (const pid of readPidsOf(p, null)) all.add(pid);
  return [...all].sort((a, b) => a - b);
}

/** The freezer: v1 freezer.state FROZEN/THAWED (freezer-subsystem.txt), v2 cgroup.freeze 1/0. */
export async function setFrozen(path: string, version: 0 | 1 | 2, frozen: boolean): Promise<void> {
  if (version === 0)
    throw new CapsuleError(
      'this container has no freezer cgroup (no v1 freezer hierarchy, no cgroup v2): pause and resume need one',
    );
  if (version === 1) {
    writeCgroupFile(join(path, 'freezer.state'), frozen ? 'FROZEN' : 'THAWED', 'freezer');
    /* FREEZING is transient: wait until the kernel says FROZEN (or THAWED). */
    for (let i = 0; i < 500; i++) {
      const now = readFileSync(join(path, 'freezer.state'), 'utf8').trim();
      if (now === (frozen ? 'FROZEN' : 'THAWED')) return;
      await sleep(2);
    }
    throw new CapsuleError(`cgroup ${path} did not become ${frozen ? 'FROZEN' : 'THAWED'} within 1 s`);
  }
  writeCgroupFile(join(path, 'cgroup.freeze'), frozen ? '1' : '0', null);
  for (let i = 0; i < 500; i++) {
    const events = readFileSync(join(path, 'cgroup.events'), 'utf8');
    if (events.includes(`frozen ${frozen ? 1 : 0}`)) return;
    await sleep(2);
  }
  throw new CapsuleError(`cgroup ${path} did not become ${frozen ? 'frozen' : 'thawed'} within 1 s`);
}

/** Is the container frozen (paused)? */
export function isFrozen(path: string, version: 0 | 1 | 2): boolean {
  try {
    if (version === 1) return readFileSync(join(path, 'freezer.state'), 'utf8').trim() !== 'THAWED';
    if (version === 2) return readFileSync(join(path, 'cgroup.freeze'), 'utf8').trim() === '1';
  } catch {
    /* the cgroup is gone: not paused */
  }
  return false;
}

/**
 * Remove the container's cgroup directories: SIGKILL whatever is still inside (a frozen
 * cgroup is thawed first, or its tasks never die), wait until each is empty, rmdir.
 * Parent directories made for it (/capsule-oci) stay, as runc leaves them.
 */
export function removeCgroupDirsSync(paths: string[]): void {
  for (const p of paths) {
    try {
      writeCgroupFile(join(p, 'freezer.state'), 'THAWED', 'freezer');
    } catch {
      /* not a freezer hierarchy, or gone */
    }
    try {
      writeCgroupFile(join(p, 'cgroup.freeze'), '0', null);
    } catch {
      /* not v2, or gone */
    }
  }
  for (const p of paths) {
    try {
      killPids(readPidsOf(p, null));
      removeDirWithRetry(p, () => killPids(readPidsOf(p, null)), 5000);
    } catch (e) {
      if (isCgroupError(e) && e.code === 'ENOENT') continue;
      throw e;
    }
  }
}
