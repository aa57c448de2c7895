/**
 * Rootless runs: capsule without CAP_SYS_ADMIN in the initial user namespace (a plain user).
 *
 * The sandbox is then built inside a user namespace that clone(2) makes together with the
 * others (native/rootless.cc): the caller's uid maps to the sandbox's (`uid`, default nobody),
 * and so does its gid, with setgroups denied. Mounts, pivot_root, /proc, /dev (the host's nodes
 * bound in), binds, capabilities, seccomp and no_new_privs work as with root. What a user
 * namespace cannot do is refused up front with one line naming what to enable:
 *  - cgroup limits (memory, pids, CPU, cpuset, CPU time) and device access need cgroups the
 *    caller may write: root, or a delegated cgroup v2 subtree (not used yet: see
 *    `capsule doctor`). rlimits and the wall timer still apply; CPU time is capsule-init's
 *    rusage, a lower bound (`accounting: 'rusage-lower-bound'`).
 *  - `hostIds: 'unique'` leases host uids, which only root can map: every sandbox runs as the
 *    caller on the host.
 * docs/security.md says what differs.
 */
import { readFileSync } from 'node:fs';

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

const ENABLE =
  'run capsule as root, or give it a delegated cgroup v2 subtree (systemd Delegate=yes); `capsule doctor` says what this machine offers';

/**
 * The options a rootless run cannot honour, refused before anything starts: cgroup limits,
 * devices and GPUs, and host ids of the sandbox's own when asked for by name.
 */
export function checkRootless(o: RunOptions, r: { limits: Limits; devices: readonly unknown[] }): void {
  const limits = [
    ['memoryLimitBytes', r.limits.memoryLimitBytes],
    ['pidsLimit', r.limits.pidsLimit],
    ['cpus', r.limits.cpus],
    ['cpusetCpus', r.limits.cpusetCpus],
    ['cpuTimeLimitMs', r.limits.cpuTimeLimitMs],
  ] as const;
  for (const [name, value] of limits) {
    if (value === null) continue;
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
