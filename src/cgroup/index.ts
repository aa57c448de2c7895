/**
 * capsule's cgroup layer: detect where each controller lives, give every sandbox its own
 * cgroup (pooled), and read what it used. See manager.ts for the lifecycle and v1.ts / v2.ts
 * for the files written.
 *
 *   const cgroups = new CgroupManager();
 *   const cg = cgroups.acquire({ memoryLimitBytes: 256 << 20, pidsLimit: 64 });  // null: none usable, none asked
 *   // spawn: the child writes "0" into each of cg.joinFds before exec
 *   const usage = cg?.usage();
 *   await cg?.release();
 */
export {
  CGROUP_CONTROLLERS,
  type CgroupController,
  type CgroupHierarchy,
  type CgroupLayout,
  type DetectOptions,
  describeLayout,
  detectCgroups,
} from './detect.js';
export { CgroupError, type CgroupErrorFields, type CgroupStep, isCgroupError } from './errors.js';
export { traceCgroupWrites } from './files.js';
export { gcCgroups, type GcOptions, type GcResult } from './gc.js';
export { MIN_CPUS, MIN_MEMORY_LIMIT_BYTES } from './limits.js';
export {
  type AcquireOptions,
  CgroupManager,
  type CgroupManagerOptions,
  type ManagerStats,
} from './manager.js';
export type { SandboxCgroup } from './sandbox.js';
export type { CgroupDeviceRule, CgroupLimits, CgroupUsage, DeviceProgramSetter } from './types.js';
