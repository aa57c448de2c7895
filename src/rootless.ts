/**
 * Rootless runs: capsule without CAP_SYS_ADMIN in the initial user namespace (a plain user).
 *
 * The sandbox is then built inside a user namespace that clone(2) makes together with the
 * others (native/rootless.cc). Its ids: a subordinate range when /etc/subuid and /etc/subgid
 * grant the caller one (rootlessIdPlan: the sandbox's 0 is the caller, 1.. the range, written
 * by newuidmap/newgidmap), else the caller's uid alone maps to the sandbox's (`uid`, default
 * nobody), and so does its gid, with setgroups denied. Mounts, pivot_root, /proc, /dev (the host's nodes
 * bound in), binds, capabilities, seccomp and no_new_privs work as with root. What a user
 * namespace cannot do is refused up front with one line naming what to enable:
 *  - cgroup limits (memory, pids, CPU, cpuset, CPU time) need cgroups the caller may write: a
 *    cgroup v2 subtree delegated to it (systemd's Delegate=yes, or a directory root chowned to
 *    it), used when there is one (delegatedCgroupManager), else refused. Without one, rlimits
 *    and the wall timer still apply and CPU time is capsule-init's rusage, a lower bound
 *    (`accounting: 'rusage-lower-bound'`).
 *  - devices (and gpus) are the host's nodes bound in, 'rw' only: a node cannot be made, nor a BPF device program
 *    attached, from a user namespace.
 *  - `hostIds: 'unique'` leases host uids, which only root can map: every sandbox runs as the
 *    caller on the host.
 * docs/security.md says what differs.
 */
import {
  accessSync,
  existsSync,
  constants as fsConstants,
  readdirSync,
  readFileSync,
  statSync,
} from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';

import {
  type CgroupController,
  type CgroupHierarchy,
  type CgroupLayout,
  detectCgroups,
} from './cgroup/detect.js';
import { makeCgroupDir, readOptionalFile as readOptional, writeCgroupFile } from './cgroup/files.js';
import { isCgroupError } from './cgroup/errors.js';
import { CgroupManager } from './cgroup/manager.js';
import { ConfigError } from './errors.js';
import type { Limits } from './limits.js';
import type { NativeIdMap } from './native.js';
import type { RunOptions } from './options.js';

/** CAP_SYS_ADMIN's bit in /proc/self/status's CapEff (capability.h). */
const CAP_SYS_ADMIN = 21n;

let cached: boolean | undefined;

/**
 * Whether runs here are rootless: this process lacks CAP_SYS_ADMIN in its effective set
 * (a plain user, or root in a container that dropped it). Read once from /proc/self/status.
 */
export function rootlessMode(): boolean {
  if (cached === undefined) {
    const status = (() => {
      try {
        return readFileSync('/proc/self/status', 'utf8');
      } catch {
        return '';
      }
    })();
    const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
    cached =
      hex === undefined ? process.geteuid?.() !== 0 : ((BigInt(`0x${hex}`) >> CAP_SYS_ADMIN) & 1n) === 0n;
  }
  return cached;
}

/** The caller's cgroup v2 path (`0::/user.slice/...` of /proc/self/cgroup), or null. */
export function ownV2Cgroup(procRoot: string): string | null {
  for (const line of (readOptional(join(procRoot, 'self/cgroup')) ?? '').split('\n')) {
    if (line.startsWith('0::')) return line.slice(3);
  }
  return null;
}

/**
 * Where an unprivileged caller may make cgroups: the first of its own v2 cgroup and its
 * ancestors (up to the mount's root) that it owns and can write, as systemd's Delegate=yes
 * leaves it (cgroup-v2.rst, "Delegation Containment"). Null when there is none.
 */
export function delegatedCgroup(layout: CgroupLayout, uid: number, procRoot: string): string | null {
  const unified = layout.unified;
  if (!unified) return null;
  const own = ownV2Cgroup(procRoot);
  if (own === null) return null;
  const root = unified.root === '/' ? '' : unified.root;
  if (!own.startsWith(root)) return null;
  const parts = own.slice(root.length).split('/').filter(Boolean);
  for (let n = parts.length; n >= 0; n--) {
    const dir = join(unified.mountPoint, ...parts.slice(0, n));
    try {
      if (statSync(dir).uid !== uid) continue;
      accessSync(dir, fsConstants.W_OK);
      return dir;
    } catch {
      /* not there, or not ours */
    }
  }
  return null;
}

const ENABLE =
  'run capsule as root, or start it in a delegated cgroup v2 subtree (systemd-run --user --scope -p Delegate=yes capsule ...); `capsule doctor` says what this machine offers';

/** Where a rootless run may make cgroups: the caller's delegated v2 subtree, or none. */
const delegatedManagers = new Map<string, CgroupManager | null>();

/**
 * A CgroupManager over the cgroup v2 subtree delegated to the caller (delegatedCgroup), its
 * sandboxes under `parent` there; null when there is none. One per parent, for the process.
 */
export function delegatedCgroupManager(parent: string): CgroupManager | null {
  let m = delegatedManagers.get(parent);
  if (m === undefined) {
    m = makeDelegatedManager(detectCgroups(), parent);
    delegatedManagers.set(parent, m);
  }
  return m;
}

/** The option that needs each controller. */
const LIMIT_OF: Partial<Record<string, string>> = {
  memory: 'memoryLimitBytes',
  pids: 'pidsLimit',
  cpu: 'cpus',
  cpuset: 'cpusetCpus',
};

/** The v2 controllers a sandbox can be limited by (cgroup/v2.ts V2_CONTROLLERS). */
const V2_LIMITS = ['memory', 'pids', 'cpu', 'cpuset'] as const;

function makeDelegatedManager(layout: CgroupLayout, parent: string): CgroupManager | null {
  const dir = delegatedCgroup(layout, process.geteuid?.() ?? 0, '/proc');
  if (!dir) return null;
  const controllers = (readOptional(join(dir, 'cgroup.controllers')) ?? '').split(/\s+/).filter(Boolean);
  leaveDelegatedRoot(layout, dir, controllers);
  /* The delegated directory stands for the hierarchy's root: capsule never writes above it. */
  const unified: CgroupHierarchy = { version: 2, mountPoint: dir, root: '/', controllers, readOnly: false };
  const byName: Partial<Record<CgroupController, CgroupHierarchy>> = { cpuacct: unified };
  for (const c of V2_LIMITS) if (controllers.includes(c)) byName[c] = unified;
  return new CgroupManager({
    layout: { mode: 'v2', unified, v1: [], controllers: byName, disabled: [] },
    parent,
  });
}

/**
 * cgroup-v2.rst, "No Internal Process Constraint": a cgroup with processes of its own cannot
 * enable controllers for its children. When this process sits in the delegated directory
 * itself (systemd-run --scope puts it there) and a controller still has to be enabled, it
 * moves into a leaf of its own, `capsule.self`, as podman does; the caller's other processes
 * in the directory stay, and the controllers they block are reported when a limit needs them.
 */
function leaveDelegatedRoot(layout: CgroupLayout, dir: string, controllers: readonly string[]): void {
  const unified = layout.unified!;
  const own = ownV2Cgroup('/proc');
  const root = unified.root === '/' ? '' : unified.root;
  if (own === null || join(unified.mountPoint, own.slice(root.length)) !== dir) return;
  const enabled = (readOptional(join(dir, 'cgroup.subtree_control')) ?? '').split(/\s+/);
  if (V2_LIMITS.every((c) => !controllers.includes(c) || enabled.includes(c))) return;
  const leaf = join(dir, 'capsule.self');
  makeCgroupDir(leaf, null, true);
  writeCgroupFile(join(leaf, 'cgroup.procs'), String(process.pid), null);
}

/**
 * A delegated cgroup that fails a rootless run fails it only when a limit needs it; for
 * accounting alone the run goes on without one (rusage figures, a lower bound).
 */
export function rootlessCgroupFailed(r: { limits: Limits }, manager: CgroupManager): (e: unknown) => null {
  const needed =
    r.limits.memoryLimitBytes !== null ||
    r.limits.pidsLimit !== null ||
    r.limits.cpus !== null ||
    r.limits.cpusetCpus !== null ||
    r.limits.cpuTimeLimitMs !== null;
  return (e) => {
    if (!needed) return null;
    /* A controller the delegated subtree does not offer: say where capsule looked. */
    if (isCgroupError(e) && e.step === 'detect' && e.controller) {
      const option = LIMIT_OF[e.controller] ?? e.controller;
      const dir = manager.layout.unified!;
      throw new ConfigError(
        `${option} needs the ${e.controller} controller, which the cgroup delegated to you (${dir.mountPoint}) does not offer ` +
          `(it offers: ${dir.controllers.join(' ') || 'none'}): ask for it to be delegated (systemd: Delegate=${e.controller}), or run capsule as root`,
        option,
      );
    }
    throw e;
  };
}

/**
 * The options a rootless run cannot honour, refused before anything starts: cgroup limits
 * when no cgroup is delegated to the caller, devices with other access than 'rw', and host
 * ids of the sandbox's own when asked for by name.
 */
export function checkRootless(
  o: RunOptions,
  r: { limits: Limits; devices: readonly { access: string; target: string }[] },
  delegated: boolean,
): void {
  const limits = [
    ['memoryLimitBytes', r.limits.memoryLimitBytes],
    ['pidsLimit', r.limits.pidsLimit],
    ['cpus', r.limits.cpus],
    ['cpusetCpus', r.limits.cpusetCpus],
    ['cpuTimeLimitMs', r.limits.cpuTimeLimitMs],
  ] as const;
  for (const [name, value] of limits) {
    if (value === null || delegated) continue;
    throw new ConfigError(
      `${name} needs a cgroup, and without root capsule has none it may write: ${ENABLE} (rlimits and wallTimeLimitMs work without one)`,
      name,
    );
  }
  /*
   * Without root a device is the host's own node bound in (bind_dev_node, as bubblewrap's
   * --dev-bind): no node can be made in a user namespace, and no cgroup device rule set. The
   * program can then open it as far as the node's own mode lets the caller, and no further;
   * but a read-only bind does not stop writes to a device (the kernel's read-only checks are
   * for files, directories and links), so only 'rw' can be given as asked.
   */
  const partial = r.devices.find((d) => d.access !== 'rw');
  if (partial) {
    const name = o.gpus !== undefined ? 'gpus' : o.cdiDevices !== undefined ? 'cdiDevices' : 'devices';
    throw new ConfigError(
      `${name}: ${partial.target} with access '${partial.access}' needs root: without root a device is the host's node bound in, and a read-only or write-only bind cannot stop the other access: ask for 'rw' (the node's own mode still applies) or run as root (${ENABLE})`,
      name,
    );
  }
  if (o.hostIds === 'unique')
    throw new ConfigError(
      "hostIds: 'unique' needs root to map leased host ids; without root every sandbox runs as your uid on the host: leave hostIds unset or 'shared'",
      'hostIds',
    );
}

/** A caller's entry in /etc/subuid or /etc/subgid: `count` ids from `start`, its own to map. */
export interface SubordinateRange {
  start: number;
  count: number;
}

/**
 * The first entry of a subid file (subuid(5): `name-or-uid:start:count` per line) that names
 * the user by login name or by uid, as newuidmap(1) reads it; null when none does.
 */
export function subordinateRange(text: string, uid: number, name: string | null): SubordinateRange | null {
  for (const line of text.split('\n')) {
    const [who, start, count] = line.trim().split(':');
    if (who === undefined || start === undefined || count === undefined || who.startsWith('#')) continue;
    if (who !== String(uid) && (name === null || who !== name)) continue;
    const s = Number(start);
    const c = Number(count);
    if (!Number.isInteger(s) || !Number.isInteger(c) || s < 0 || c <= 0 || s + c > 2 ** 32 - 1) continue;
    return { start: s, count: c };
  }
  return null;
}

/** Where newuidmap and newgidmap are looked for (the uidmap package puts them in /usr/bin). */
const TOOL_DIRS = ['/usr/bin', '/bin', '/usr/sbin', '/sbin', '/usr/local/bin'];

function findTool(name: string): string | null {
  for (const dir of TOOL_DIRS) {
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

let userName: string | null | undefined;

/** The caller's login name (getpwuid(3) through os.userInfo), or null when no entry names its uid. */
function callerName(): string | null {
  if (userName === undefined) {
    try {
      userName = userInfo().username;
    } catch {
      userName = null;
    }
  }
  return userName;
}

/** How a rootless sandbox's ids are mapped, and why that way (for --explain and doctor). */
export interface RootlessIdPlan {
  /** The range maps newuidmap and newgidmap write; null: the child maps one id each. */
  map: NativeIdMap | null;
  why: string;
}

/**
 * The maps of a rootless sandbox. With an entry for the caller in both /etc/subuid and
 * /etc/subgid and both tools installed, the range: the sandbox's 0 is the caller (so the
 * files the caller owns, the rootfs among them, are root's inside), and 1..count are the
 * subordinate ids, so the sandbox's nobody (65534) is a host id of no one's, not the caller.
 * Otherwise one id each: the sandbox's uid is the caller on the host. A sandbox uid or gid the
 * range does not cover is refused (ConfigError) rather than quietly mapped the weaker way.
 */
export function rootlessIdPlan(
  ids: { uid: number; gid: number },
  env: {
    etc?: string;
    uid?: number;
    gid?: number;
    name?: string | null;
    tools?: [string, string] | null;
  } = {},
): RootlessIdPlan {
  const uid = env.uid ?? process.geteuid?.() ?? 0;
  const gid = env.gid ?? process.getegid?.() ?? 0;
  const name = env.name !== undefined ? env.name : callerName();
  const etc = env.etc ?? '/etc';
  const read = (file: string) => readOptional(join(etc, file)) ?? '';
  const subuid = subordinateRange(read('subuid'), uid, name);
  const subgid = subordinateRange(read('subgid'), uid, name);
  const single = `one id each: the sandbox's uid ${ids.uid} is your uid ${uid} on the host`;
  if (!subuid || !subgid)
    return {
      map: null,
      why: `${single} (${!subuid ? `${etc}/subuid` : `${etc}/subgid`} grants ${name ?? `uid ${uid}`} no range)`,
    };
  const tools =
    env.tools !== undefined ? env.tools : ([findTool('newuidmap'), findTool('newgidmap')] as const);
  if (!tools || !tools[0] || !tools[1])
    return {
      map: null,
      why: `${single} (newuidmap and newgidmap are not installed: apt-get install uidmap)`,
    };
  for (const [option, id, range, file] of [
    ['uid', ids.uid, subuid, 'subuid'],
    ['gid', ids.gid, subgid, 'subgid'],
  ] as const) {
    if (id > range.count)
      throw new ConfigError(
        `${option} ${id} lies outside the ids ${etc}/${file} grants ${name ?? `uid ${uid}`} (${range.count}, mapped to the sandbox's 1-${range.count}): ` +
          `choose a ${option} from 1 to ${range.count}, or ask for a range of 65536 (usermod --add-sub${option}s START-END ${name ?? ''})`.trimEnd(),
        option,
      );
  }
  const map: NativeIdMap = {
    newuidmap: tools[0],
    newgidmap: tools[1],
    uids: [
      { inside: 0, outside: uid, count: 1 },
      { inside: 1, outside: subuid.start, count: subuid.count },
    ],
    gids: [
      { inside: 0, outside: gid, count: 1 },
      { inside: 1, outside: subgid.start, count: subgid.count },
    ],
  };
  const host = ids.uid === 0 ? uid : subuid.start + ids.uid - 1;
  return {
    map,
    why: `the range ${etc}/subuid and ${etc}/subgid grant ${name ?? `uid ${uid}`}: the sandbox's uid ${ids.uid} is host uid ${host}${ids.uid === 0 ? ' (you)' : ', not yours'}`,
  };
}

/** The addon's rootless fields for a run: the user namespace, and the range when there is one. */
export function rootlessNativeOptions(o: { uid: number; gid: number }): {
  rootless: true;
  idMap?: NativeIdMap;
} {
  const { map } = rootlessIdPlan(o);
  return map ? { rootless: true, idMap: map } : { rootless: true };
}

/** The hint for newuidmap or newgidmap refusing the range (map_user_ids with a range). */
export const ID_MAP_TOOL_HINT =
  'newuidmap or newgidmap refused the range /etc/subuid or /etc/subgid grants you: check that both files name you (user:start:count, subuid(5)), that the range overlaps no other user, and that the tools are setuid root (ls -l /usr/bin/newuidmap); or remove your entries to run with one id mapped';

/**
 * Where `capsule gc` looks without root: every cgroup under the topmost directory on the way
 * from the caller's own v2 cgroup up that it owns (systemd's user@UID.service with
 * Delegate=yes, or a directory root chowned to it), that holds a `parent` directory. A crashed
 * capsule's sandboxes sit under the delegated directory it ran in, which is another scope than
 * the one gc runs in, so the whole owned subtree is searched (`depth` levels, directories
 * only). Each is returned as a layout whose unified hierarchy starts there, for gcCgroups.
 */
export function delegatedGcLayouts(
  layout: CgroupLayout,
  uid: number,
  procRoot: string,
  parent: string,
  depth = 8,
): CgroupLayout[] {
  const unified = layout.unified;
  const own = unified ? ownV2Cgroup(procRoot) : null;
  if (!unified || own === null) return [];
  const root = unified.root === '/' ? '' : unified.root;
  if (!own.startsWith(root)) return [];
  const parts = own.slice(root.length).split('/').filter(Boolean);
  let top: string | null = null;
  for (let n = parts.length; n >= 0; n--) {
    const dir = join(unified.mountPoint, ...parts.slice(0, n));
    try {
      if (statSync(dir).uid !== uid) break;
    } catch {
      break;
    }
    top = dir;
  }
  if (top === null) return [];
  const found: string[] = [];
  const walk = (dir: string, left: number) => {
    if (existsSync(join(dir, parent))) found.push(dir);
    if (left === 0) return;
    let entries: string[];
    try {
      entries = readdirSync(dir, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
    } catch {
      return;
    }
    /* Not into capsule's own parent: its sandboxes are what gc judges, not more roots. */
    for (const e of entries) if (join(dir, e) !== join(dir, parent)) walk(join(dir, e), left - 1);
  };
  walk(top, depth);
  return found.map((dir) => {
    const h: CgroupHierarchy = { ...unified, mountPoint: dir, root: '/' };
    return { mode: 'v2', unified: h, v1: [], controllers: {}, disabled: [] };
  });
}
