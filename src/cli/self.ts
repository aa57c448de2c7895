/**
 * How the capsule command runs itself again (a session's holder, `rootfs check --run`
 * under strace): node and the bundle, dist/capsule.mjs. Not process.argv[1]: started from
 * the start-up snapshot (src/cli/snapshot.ts) that is dist/capsule, a shell script, which
 * node cannot run as a module.
 */
import { join } from 'node:path';

import { packageRoot } from '../native.js';

export function selfCommand(): [node: string, cli: string] {
  return [process.execPath, join(packageRoot(), 'dist', 'capsule.mjs')];
}
