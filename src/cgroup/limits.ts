/** Validation of CgroupLimits, and which controller each limit needs. */
import type { CgroupController, CgroupLayout } from './detect.js';
import { ConfigError } from '../errors.js';
import { CgroupError } from './errors.js';
import type { CgroupLimits } from './types.js';

/**
 * The CLI flag behind each controller, for "drop --flag" hints. Kept here, next to the
 * message, rather than imported from the CLI: the library must not depend on it.
 */
const FLAG: Record<CgroupController, string> = {
  memory: '--memory-limit',
  pids: '--pids-limit',
  cpu: '--cpus',
  cpuacct: '--cpus',
  cpuset: '--cpuset-cpus',
  devices: '--device',
};

/** Smallest memory limit accepted, in bytes: below this the sandbox's own setup cannot fit. */
export const MIN_MEMORY_LIMIT_BYTES = 1024 * 1024;
/** Smallest CPU quota: 0.01 CPU = 1 ms per 100 ms period, the kernel's minimum quota (sched-bwc.txt). */
export const MIN_CPUS = 0.01;

/** @throws ConfigError naming the field and what is accepted. */
export function validateLimits(limits: CgroupLimits): void {
  const { memoryLimitBytes: mem, pidsLimit: pids, cpus, cpusetCpus } = limits;
  if (mem !== undefined && !(Number.isSafeInteger(mem) && mem >= MIN_MEMORY_LIMIT_BYTES)) {
    throw new ConfigError(
      `memoryLimitBytes ${mem} must be a whole number of bytes >= 1 MiB`,
      'memoryLimitBytes',
    );
  }
  if (pids !== undefined && !(Number.isSafeInteger(pids) && pids >= 1)) {
    throw new ConfigError(`pidsLimit ${pids} must be a whole number >= 1`, 'pidsLimit');
  }
  if (cpus !== undefined && !(Number.isFinite(cpus) && cpus >= MIN_CPUS && cpus <= 4096)) {
    throw new ConfigError(`cpus ${cpus} must be a number of CPUs between ${MIN_CPUS} and 4096`, 'cpus');
  }
  if (limits.devices !== undefined) validateDeviceRules(limits.devices);
  if (cpusetCpus !== undefined && !/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(cpusetCpus)) {
    throw new ConfigError(
      `cpusetCpus ${JSON.stringify(cpusetCpus)} must be a CPU list like "0-1" or "0,2"`,
      'cpusetCpus',
    );
  }
}

/** A major or minor number the kernel accepts (12 and 20 bits, include/linux/kdev_t.h), or `*`. */
function isDeviceNumber(n: number | '*', bits: number): boolean {
  return n === '*' || (Number.isSafeInteger(n) && n >= 0 && n < 2 ** bits);
}

function validateDeviceRules(rules: CgroupLimits['devices']): void {
  if (!Array.isArray(rules)) throw new ConfigError('devices must be an array of device rules', 'devices');
  for (const r of rules as NonNullable<CgroupLimits['devices']>) {
    const ok =
      typeof r === 'object' &&
      r !== null &&
      (r.type === 'c' || r.type === 'b') &&
      isDeviceNumber(r.major, 12) &&
      isDeviceNumber(r.minor, 20) &&
      typeof r.access === 'string' &&
      /^(?=.)r?w?m?$/.test(r.access);
    if (!ok) {
      throw new ConfigError(
        `device rule ${JSON.stringify(r)} must be { type: 'c' | 'b', major, minor (numbers or '*'), access: some of 'rwm' in that order }`,
        'devices',
      );
    }
  }
}

/** The controllers the given limits cannot do without. */
export function requiredControllers(limits: CgroupLimits): CgroupController[] {
  const out: CgroupController[] = [];
  if (limits.memoryLimitBytes !== undefined) out.push('memory');
  if (limits.pidsLimit !== undefined) out.push('pids');
  if (limits.cpus !== undefined) out.push('cpu');
  if (limits.cpusetCpus !== undefined) out.push('cpuset');
  if (limits.devices !== undefined) out.push('devices');
  return out;
}

export function missingControllerError(controller: CgroupController, layout: CgroupLayout): CgroupError {
  const why = layout.disabled.includes(controller)
    ? `disabled on the kernel command line (cgroup_disable=${controller})`
    : layout.mode === 'none'
      ? 'no cgroup filesystem is mounted (/proc/self/mountinfo has no cgroup or cgroup2 entry)'
      : `no v1 hierarchy with "${controller}" and no v2 cgroup.controllers listing it`;
  return new CgroupError(
    `cgroup ${controller} controller not found (${why}): run on a machine with the ${controller} controller (run \`capsule doctor\` to see this machine's cgroups), or drop ${FLAG[controller]}`,
    { step: 'detect', controller },
  );
}
