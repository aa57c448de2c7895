/**
 * Where does each cgroup controller live on this machine?
 *
 * Three layouts exist in the wild and capsule accepts all of them, plus mixes:
 *  - pure v2 ("unified"): one `cgroup2` mount, controllers listed in its `cgroup.controllers`;
 *  - pure v1: one `cgroup` mount per hierarchy, each carrying one or more controllers in its
 *    super options (`cpu,cpuacct` are often co-mounted, but need not be);
 *  - hybrid: v1 hierarchies plus a `cgroup2` mount (systemd's /sys/fs/cgroup/unified). A
 *    controller can be bound to only one hierarchy at a time, so each one is on v1 if a v1
 *    mount carries it and on v2 only if the unified root's `cgroup.controllers` lists it
 *    (Documentation/admin-guide/cgroup-v2.rst, "Mounting": "a controller can be moved
 *    across hierarchies only after [it is] no longer referenced in its current hierarchy").
 *
 * Sources, as the kernel documents them: /proc/self/mountinfo (proc(5): fields 5 mount point,
 * 4 root, 6 mount options, then `-` fstype source super-options) and /proc/cgroups
 * (subsys_name, hierarchy id, num_cgroups, enabled: a controller disabled with
 * `cgroup_disable=` on the kernel command line shows `enabled 0`). Nothing is guessed from
 * well-known paths: a machine that mounts cgroups elsewhere works the same.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The controllers capsule uses. `cpuacct` is v1's CPU accounting; on v2 it is `cpu.stat`.
 * `devices` is v1 only: v2 has no such controller (cgroup-v2.rst, "Device controller": a
 * BPF_PROG_TYPE_CGROUP_DEVICE program does that job), so it is never found on the unified
 * hierarchy; docs/devices.md says what gates devices there.
 */
export type CgroupController = 'memory' | 'pids' | 'cpu' | 'cpuacct' | 'cpuset' | 'devices';

export const CGROUP_CONTROLLERS: readonly CgroupController[] = [
  'memory',
  'pids',
  'cpu',
  'cpuacct',
  'cpuset',
  'devices',
];

export interface CgroupHierarchy {
  /** 1 for a `cgroup` mount, 2 for the `cgroup2` mount. */
  readonly version: 1 | 2;
  /** Absolute path where it is mounted (with `fsRoot` prepended when one was given). */
  readonly mountPoint: string;
  /** The mount's root within the hierarchy (mountinfo field 4): `/` unless a subtree is bind-mounted. */
  readonly root: string;
  /** v1: controllers from the super options (plus `name=...` for named hierarchies); v2: the root's `cgroup.controllers`. */
  readonly controllers: readonly string[];
  /** Mounted read-only: nothing can be created under it. */
  readonly readOnly: boolean;
}

export interface CgroupLayout {
  /**
   * `v2`: only a cgroup2 mount; `v1`: only v1 mounts; `hybrid`: v1 mounts plus a cgroup2 mount
   * (whether or not it carries controllers); `none`: no cgroup filesystem mounted.
   */
  readonly mode: 'v1' | 'v2' | 'hybrid' | 'none';
  /** The cgroup2 mount, or null. */
  readonly unified: CgroupHierarchy | null;
  /** The v1 mounts that carry at least one controller (named-only hierarchies like `name=systemd` excluded). */
  readonly v1: readonly CgroupHierarchy[];
  /** For each controller capsule can use, the hierarchy it lives in. Missing = not available. */
  readonly controllers: Readonly<Partial<Record<CgroupController, CgroupHierarchy>>>;
  /** Controllers /proc/cgroups lists with `enabled 0` (disabled on the kernel command line). */
  readonly disabled: readonly string[];
}

export interface DetectOptions {
  /** mountinfo file to read. @default '/proc/self/mountinfo' */
  mountinfo?: string;
  /** /proc/cgroups file to read; a missing file means "all enabled". @default '/proc/cgroups' */
  procCgroups?: string;
  /**
   * Directory prepended to every mount point, for tests that mirror a cgroup tree in a
   * temp dir (the v2 root's `cgroup.controllers` is read under it too). @default '' (none)
   */
  fsRoot?: string;
}

interface MountEntry {
  mountPoint: string;
  root: string;
  options: string[];
  fstype: string;
  superOptions: string[];
}

/** mountinfo escapes space, tab, newline and backslash as octal (`\040`). */
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parse /proc/self/mountinfo text (proc(5)); malformed lines are skipped. */
export function parseMountinfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    // The optional fields (field 7...) end at a lone "-"; the three after it are fixed.
    const sep = fields.indexOf('-', 6);
    if (sep < 0 || fields.length < sep + 4) continue;
    const [, , , root, mountPoint, options] = fields;
    if (root === undefined || mountPoint === undefined || options === undefined) continue;
    entries.push({
      root: unescapeMountField(root),
      mountPoint: unescapeMountField(mountPoint),
      options: options.split(','),
      fstype: fields[sep + 1] ?? '',
      superOptions: (fields[sep + 3] ?? '').split(','),
    });
  }
  return entries;
}

export interface ProcCgroupsEntry {
  name: string;
  hierarchy: number;
  enabled: boolean;
}

/** Parse /proc/cgroups: `#subsys_name hierarchy num_cgroups enabled`. */
export function parseProcCgroups(text: string): ProcCgroupsEntry[] {
  const out: ProcCgroupsEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const [name, hierarchy, , enabled] = line.trim().split(/\s+/);
    if (name === undefined || hierarchy === undefined) continue;
    out.push({ name, hierarchy: Number(hierarchy), enabled: enabled !== '0' });
  }
  return out;
}

function readOptional(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/**
 * Find the cgroup hierarchies and, for each controller capsule uses, the one it lives in.
 * Never throws for a machine without cgroups: it returns `mode: 'none'` and no controllers;
 * whether a missing controller is an error is the caller's decision (see CgroupManager).
 */
export function detectCgroups(opts: DetectOptions = {}): CgroupLayout {
  const fsRoot = opts.fsRoot ?? '';
  const mountinfo = readOptional(opts.mountinfo ?? '/proc/self/mountinfo') ?? '';
  const procCgroups = parseProcCgroups(readOptional(opts.procCgroups ?? '/proc/cgroups') ?? '');
  const disabled = procCgroups.filter((c) => !c.enabled).map((c) => c.name);
  const known = new Set(procCgroups.map((c) => c.name));
  const isController = (opt: string): boolean =>
    known.size > 0 ? known.has(opt) : (CGROUP_CONTROLLERS as readonly string[]).includes(opt);

  let unified: CgroupHierarchy | null = null;
  const v1: CgroupHierarchy[] = [];
  const seen = new Set<string>();
  for (const m of parseMountinfo(mountinfo)) {
    const readOnly = m.options.includes('ro');
    if (m.fstype === 'cgroup2') {
      // A hierarchy can be mounted more than once (bind mounts); the first rw one wins.
      if (unified && !(unified.readOnly && !readOnly)) continue;
      const mountPoint = fsRoot + m.mountPoint;
      const list = readOptional(join(mountPoint, 'cgroup.controllers')) ?? '';
      unified = {
        version: 2,
        mountPoint,
        root: m.root,
        controllers: list.split(/\s+/).filter(Boolean),
        readOnly,
      };
    } else if (m.fstype === 'cgroup') {
      const controllers = m.superOptions.filter((o) => isController(o) || o.startsWith('name='));
      const key = [...controllers].sort().join(',');
      if (!controllers.some(isController) || seen.has(key)) continue;
      seen.add(key);
      v1.push({ version: 1, mountPoint: fsRoot + m.mountPoint, root: m.root, controllers, readOnly });
    }
  }

  const controllers: Partial<Record<CgroupController, CgroupHierarchy>> = {};
  for (const name of CGROUP_CONTROLLERS) {
    if (disabled.includes(name)) continue;
    const onV1 = v1.find((h) => h.controllers.includes(name));
    if (onV1) {
      controllers[name] = onV1;
    } else if (unified) {
      // v2 has no cpuacct controller: `cpu.stat` (usage_usec, user_usec, system_usec) is a
      // core file present in every non-root cgroup, with or without the cpu controller
      // (cgroup-v2.rst, "CPU Interface Files": "cpu.stat ... exists whether the controller
      // is enabled or not"). It only counts when cpuacct is not bound to a v1 hierarchy.
      // v2 has no devices controller, but every v2 cgroup can carry a BPF device program,
      // which does its job (v2.ts prepareDevices): no cgroup.controllers entry is needed.
      if (name === 'devices') {
        controllers[name] = unified;
        continue;
      }
      const wanted = name === 'cpuacct' ? null : name;
      if (wanted === null || unified.controllers.includes(wanted)) controllers[name] = unified;
    }
  }
  // cpuacct on v2 is only worth joining when the v2 tree is usable for something else or
  // nothing else is available: an empty unified hierarchy (this machine's hybrid layout)
  // still gives usage_usec, so keep it; the manager decides what to join.

  const mode = unified ? (v1.length > 0 ? 'hybrid' : 'v2') : v1.length > 0 ? 'v1' : 'none';
  return { mode, unified, v1, controllers, disabled };
}

/** One line per controller, for `--explain` and error messages. */
export function describeLayout(layout: CgroupLayout): string {
  const lines = [`cgroup layout: ${layout.mode}`];
  for (const name of CGROUP_CONTROLLERS) {
    const h = layout.controllers[name];
    const where = h ? `v${h.version} at ${h.mountPoint}${h.readOnly ? ' (read-only)' : ''}` : 'not available';
    lines.push(
      `  ${name}: ${where}${layout.disabled.includes(name) ? ' (disabled on the kernel command line)' : ''}`,
    );
  }
  return lines.join('\n');
}
