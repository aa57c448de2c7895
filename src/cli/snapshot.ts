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
 * start, as always. dist/capsule (a shell script, the package's `bin`) runs
 * `node --snapshot-blob dist/capsule.blob dist/capsule ARGS...` when the blob
 * was built by this same node binary, and the plain bundle otherwise.
 */
import { dirname } from 'node:path';
import { startupSnapshot } from 'node:v8';

import { setPackageRoot } from '../native.js';
import { BUILTIN_PROFILES, builtinNormalized, rememberKey } from '../seccomp/index.js';
import { main, program } from './program.js';

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
  /* argv[1] is the launcher, dist/capsule: the package is the directory above it. */
  setPackageRoot(dirname(dirname(process.argv[1]!)));
  void main(process.argv, cli);
});
