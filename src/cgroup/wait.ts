/**
 * Waiting for a cgroup to empty. A SIGKILLed process leaves its cgroup only once it has
 * finished exiting (it may be in the middle of unmapping a large address space), so removal
 * right after a kill can fail with EBUSY for a few milliseconds.
 */
import { rmdirSync } from 'node:fs';
import { cgroupFsError } from './errors.js';

/*
 * Made on first use, not when the module loads: the CLI's start-up snapshot
 * (src/cli/snapshot.ts) is built where SharedArrayBuffer does not exist.
 */
let sleeper: Int32Array | undefined;

/** Block the thread for `ms` milliseconds; only for exit handlers and the synchronous gc. */
export function sleepSync(ms: number): void {
  sleeper ??= new Int32Array(new SharedArrayBuffer(4));
  Atomics.wait(sleeper, 0, 0, ms);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * rmdir, retrying on EBUSY for up to `timeoutMs` (calling `onBusy`, e.g. to kill again, between
 * tries). ENOENT counts as success. @throws CgroupError when it still fails.
 */
export function removeDirWithRetry(dir: string, onBusy: () => void, timeoutMs = 2000): void {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    try {
      rmdirSync(dir);
      return;
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || Date.now() >= deadline) {
        throw cgroupFsError('rmdir', dir, null, cause, `remove ${dir}`);
      }
    }
    onBusy();
    sleepSync(delay);
  }
}
