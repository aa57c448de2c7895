/**
 * The `capsule` command as a V8 start-up snapshot (Node's `--build-snapshot`).
 *
 * A command pays, on every invocation, for V8 to compile its bundle and for the
 * bundle's modules to run their top-level code: 25-30 ms of the ~40 ms that
 * `capsule run ROOTFS /bin/true` took beyond `node -e 0` on the 2-core VM. A
 * snapshot is the heap as it stands after that work, saved at build time
 * (scripts/bundle-cli.mjs): Node starts from it as fast as from its own.
 * Work that depends on nothing of the invocation is done here too, once: the
 * built-in seccomp profiles, normalized, with their cache keys and their
 * precompiled programs found (dist/seccomp), and commander's tree of commands.
 *
 * What must not be frozen into it is anything read from the machine or the
 * invocation (the environment, /proc, cgroups, random numbers): modules read
 * those on first use, never when they load. The native addon is loaded after
 * start, as always.
 *
 * The snapshot reaches Node one of two ways (scripts/bundle-cli.mjs):
 * - dist/capsule is a single executable: a copy of the node that built the
 *   snapshot, with the snapshot inside (Node's single executable applications,
 *   `useSnapshot`). It starts as fast as `node -e 0`: no shell, no blob file to
 *   read and copy. The package is the directory above the executable.
 * - otherwise dist/capsule is a shell script that runs `node --snapshot-blob
 *   dist/capsule.blob dist/capsule ARGS...` when the blob was built by this same
 *   node binary, and the plain bundle otherwise; dist/capsule-runc always is.
 *   The package is the directory above argv[1], the script.
 */
import { dirname } from 'node:path';
import { startupSnapshot } from 'node:v8';

import { setPackageRoot } from '../native.js';
import { BUILTIN_PROFILES, builtinNormalized, rememberKey } from '../seccomp/index.js';
import { main, program } from './program.js';
import { runningAsSingleExecutable } from './self.js';

/** True in the snapshot built into the single executable: esbuild's `define` (scripts/bundle-cli.mjs). */
declare const CAPSULE_SINGLE_EXECUTABLE: boolean;

/*
 * At build time the bundle is dist/capsule-snapshot.cjs (process.argv[1]): the package is
 * the directory above, where rememberKey finds the precompiled filters (dist/seccomp).
 */
setPackageRoot(dirname(dirname(process.argv[1]!)));
for (const name of BUILTIN_PROFILES) {
  const p = builtinNormalized(name);
  if (p) rememberKey(p);
}

/* commander's tree of commands and options: the same for every invocation. */
const cli = program();

startupSnapshot.setDeserializeMainFunction(() => {
  /*
   * The single executable is dist/capsule itself (argv[1] is only the name it was called
   * by); else argv[1] is the shell launcher, dist/capsule. The package is the directory above.
   */
  if (CAPSULE_SINGLE_EXECUTABLE) runningAsSingleExecutable();
  setPackageRoot(dirname(dirname(CAPSULE_SINGLE_EXECUTABLE ? process.execPath : process.argv[1]!)));
  void main(process.argv, cli);
});
