/**
 * How the capsule command runs itself again (a session's holder, `rootfs check --run`
 * under strace). Not process.argv[1]: started from the start-up snapshot through the shell
 * launcher (src/cli/snapshot.ts), that is dist/capsule, a shell script, which node cannot
 * run as a module; so node and the bundle, dist/capsule.mjs. When dist/capsule is the
 * single executable (node with the snapshot inside, scripts/bundle-cli.mjs), it is the
 * command itself: process.execPath is that file, and it takes the command's arguments.
 */
import { join } from 'node:path';

import { packageRoot } from '../native.js';

let single = false;

/** Set by the single executable's start-up (src/cli/snapshot.ts): it is the command itself. */
export function runningAsSingleExecutable(): void {
  single = true;
}

/** The words that start the capsule command: the arguments follow. */
export function selfCommand(): [file: string, ...args: string[]] {
  if (single) return [process.execPath];
  return [process.execPath, join(packageRoot(), 'dist', 'capsule.mjs')];
}
