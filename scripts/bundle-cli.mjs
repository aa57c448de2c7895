#!/usr/bin/env node
/**
 * Bundles the `capsule` command into one file, dist/capsule.mjs (package.json "bin").
 *
 * Why: a command pays for every module it loads before it does anything. Loaded as
 * tsc leaves it, `capsule run` resolves, reads and links 32 of its own ES modules, and
 * commander (CommonJS) through Node's CJS-from-ESM path. Measured with hyperfine on
 * the 2-core VM (150 runs each, means), `capsule run ROOTFS /bin/true` took 130.2 ms
 * unbundled and 111.6 ms bundled, against 78.9 ms for `node -e 0`. The library
 * (`import { run } from 'capsule'`) is not bundled: embedders load it once per
 * process, and they get the tsc output, types and all.
 *
 * The input is tsc's output (dist/src/cli/main.js), so tsc stays the only compiler
 * of the TypeScript; esbuild only joins files. The native addon and capsule-init are
 * found at run time from package.json (src/native.ts), as before.
 */
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { chmodSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

await build({
  entryPoints: [join(root, 'dist/src/cli/main.js')],
  outfile: join(root, 'dist/capsule.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  /* commander is CommonJS and require()s Node's built-in modules; an ES module has no
   * `require` of its own, so the bundle makes one. */
  banner: {
    js: "import { createRequire as capsuleCreateRequire } from 'node:module';\nconst require = capsuleCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
});

/*
 * The same CLI as a start-up snapshot (src/cli/snapshot.ts says why): a CommonJS bundle,
 * which is what `node --build-snapshot` runs, turned into dist/capsule.blob by this node.
 * The blob only works with the node binary that made it, so beside it goes that binary's
 * identity (device, inode, size, mtime, as `stat -L -c %d:%i:%s:%Y` prints them), which
 * the launcher compares before using it. If the snapshot cannot be built, the launcher
 * runs the bundle: slower to start, the same command.
 */
const dist = join(root, 'dist');
const snapshotEntry = join(dist, 'capsule-snapshot.cjs');
const blob = join(dist, 'capsule.blob');
const nodeId = join(dist, 'capsule.blob.node');
rmSync(blob, { force: true });
rmSync(nodeId, { force: true });
await build({
  entryPoints: [join(dist, 'src/cli/snapshot.js')],
  outfile: snapshotEntry,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  /* Never evaluated in the snapshot: the launcher gives the package root (setPackageRoot). */
  define: { 'import.meta.url': 'undefined' },
  logLevel: 'error',
});
const made = spawnSync(process.execPath, ['--snapshot-blob', blob, '--build-snapshot', snapshotEntry], {
  encoding: 'utf8',
});
rmSync(snapshotEntry, { force: true });
if (made.status === 0) {
  const st = statSync(process.execPath);
  writeFileSync(nodeId, `${st.dev}:${st.ino}:${st.size}:${Math.floor(st.mtimeMs / 1000)}\n`);
} else {
  rmSync(blob, { force: true });
  console.error(`bundle-cli: no start-up snapshot (the CLI still works, slower to start):\n${made.stderr}`);
}

/*
 * Two launchers over the one bundle and snapshot: `capsule`, and `capsule-runc` (the OCI
 * runtime command line, src/cli/oci.ts), which main() recognizes by its own name in argv[1]:
 * dist/capsule-runc from the snapshot, dist/capsule-runc.mjs (a one-line module that loads
 * the bundle) without it.
 */
writeFileSync(
  join(dist, 'capsule-runc.mjs'),
  "// capsule-runc without the start-up snapshot: the bundle, which sees its name in argv[1].\nimport './capsule.mjs';\n",
);
for (const name of ['capsule', 'capsule-runc']) {
  const launcher = join(dist, name);
  writeFileSync(
    launcher,
    `#!/bin/sh
# The ${name} command (package.json "bin"), made by scripts/bundle-cli.mjs.
# Node starts from dist/capsule.blob, a snapshot of the CLI taken at build time
# (src/cli/snapshot.ts), when the node found here is the binary that made it;
# otherwise it runs the bundle, dist/${name}.mjs: the same command, slower to start.
self=$0
[ -L "$self" ] && self=$(readlink -f -- "$self")
dir=\${self%/*}
node=$(command -v node) || { echo "${name}: node is not on PATH" >&2; exit ${name === 'capsule' ? 125 : 1}; }
if [ -r "$dir/capsule.blob.node" ] && read -r want < "$dir/capsule.blob.node" &&
  [ "$(stat -L -c %d:%i:%s:%Y -- "$node" 2>/dev/null)" = "$want" ]; then
  exec "$node" --snapshot-blob "$dir/capsule.blob" "$dir/${name}" "$@"
fi
exec "$node" "$dir/${name}.mjs" "$@"
`,
  );
  chmodSync(launcher, 0o755);
}
