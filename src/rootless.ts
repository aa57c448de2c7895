/**
 * Rootless runs: capsule without CAP_SYS_ADMIN in the initial user namespace (a plain user).
 *
 * The sandbox is then built inside a user namespace that clone(2) makes together with the
 * others (native/rootless.cc): the caller's uid maps to the sandbox's (`uid`, default nobody),
 * and so does its gid, with setgroups denied. Mounts, pivot_root, /proc, /dev (the host's nodes
 * bound in), binds, capabilities, seccomp and no_new_privs work as with root. What a user
 * namespace cannot do is refused up front with one line naming what to enable:
 *  - cgroup limits (memory, pids, CPU, cpuset, CPU time) need cgroups the caller may write: a
 *    cgroup v2 subtree delegated to it (systemd's Delegate=yes, or a directory root chowned to
 *    it), used when there is one (delegatedCgroupManager), else refused. Without one, rlimits
 *    and the wall timer still apply and CPU time is capsule-init's rusage, a lower bound
 *    (`accounting: 'rusage-lower-bound'`).
 *  - device access (devices, gpus) needs root: a node cannot be made, nor a BPF device program
 *    attached, from a user namespace.
 *  - `hostIds: 'unique'` leases host uids, which only root can map: every sandbox runs as the
 *    caller on the host.
 * docs/security.md says what differs.
 */
import { accessSync, constants as fsConstants, readFileSync, statSync } from 'node:fs';
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
 * when no cgroup is delegated to the caller, devices and GPUs, and host ids of the sandbox's
 * own when asked for by name.
 */
export function checkRootless(
  o: RunOptions,
  r: { limits: Limits; devices: readonly unknown[] },
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
  if (r.devices.length > 0) {
    const name = o.gpus !== undefined ? 'gpus' : o.cdiDevices !== undefined ? 'cdiDevices' : 'devices';
    throw new ConfigError(
      `${name} needs root: a device node cannot be made, nor its access set in a cgroup, from a user namespace (${ENABLE})`,
      name,
    );
  }
  if (o.hostIds === 'unique')
    throw new ConfigError(
      "hostIds: 'unique' needs root to map leased host ids; without root every sandbox runs as your uid on the host: leave hostIds unset or 'shared'",
      'hostIds',
    );
}
