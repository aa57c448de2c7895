/**
 * capsule: run untrusted programs in a sandbox made from kernel primitives.
 *
 *   import { run } from 'capsule';
 *   const r = await run({ rootfs: './rootfs', argv: ['/bin/prog'], stdin: 'input\n' });
 *   const box = spawn({ rootfs: './rootfs', argv: ['/bin/server'] }); // box.stdin, box.stdout, box.result
 */
export { run, type RunResult } from './run.js';
export { createRunner, type Runner, type RunnerOptions } from './ahead.js';
export {
  runInteractive,
  decideInteractive,
  type InteractiveOptions,
  type InteractiveResult,
  type InteractiveSide,
  type InteractiveVerdict,
  type InteractiveVerdictInput,
  type InteractorExitCodes,
} from './interactive.js';
export { spawn, type SpawnOptions, type SpawnedSandbox } from './spawn.js';
export type { RunOptions, BindMount, StdioOption, Sandbox } from './options.js';
export type { LimitOptions, Limits } from './limits.js';
export type { Verdict, Mechanism } from './verdict.js';
export { CapsuleError, ConfigError, SetupError } from './errors.js';
export { CgroupError, type CgroupStep } from './cgroup/errors.js';
export { STEPS, type Step } from './steps.js';
export { BUILTIN_PROFILES, violationMessage, type Violation } from './seccomp/index.js';
export {
  attach,
  AttachedBox,
  Box,
  create,
  type BoxRef,
  type BoxSpawnOptions,
  type ExecOptions,
  type SessionOptions,
} from './session.js';
