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
import { build, buildSync } from 'esbuild';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
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
 * identity for the shell launcher to check with test(1) alone, no fork: capsule.blob.node
 * holds the binary's path and carries its mtime, to the nanosecond (`touch -r`); the node
 * on PATH is used with the blob when it is that same file (`-ef`: device and inode) and
 * neither newer nor older (`-nt`, `-ot`). A node replaced or rebuilt in place has another
 * mtime. (Node also refuses a blob of another version or V8 configuration, exit 14, before
 * running anything.) If the snapshot cannot be built, the launcher runs the bundle: slower
 * to start, the same command.
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
  define: { 'import.meta.url': 'undefined', CAPSULE_SINGLE_EXECUTABLE: 'false' },
  logLevel: 'error',
});
const made = spawnSync(process.execPath, ['--snapshot-blob', blob, '--build-snapshot', snapshotEntry], {
  encoding: 'utf8',
});
rmSync(snapshotEntry, { force: true });
const node = realpathSync(process.execPath);
const stamped =
  made.status === 0 &&
  (writeFileSync(nodeId, `${node}\n`), spawnSync('touch', ['-r', node, nodeId]).status === 0);
if (!stamped) {
  rmSync(blob, { force: true });
  rmSync(nodeId, { force: true });
  console.error(
    `bundle-cli: no start-up snapshot (the CLI still works, slower to start):\n${made.stderr || `touch -r ${node} failed`}`,
  );
}

/*
 * dist/capsule as a single executable (Node's single executable applications, with
 * `useSnapshot`): a copy of this node with the same snapshot inside it, in an ELF note
 * that postject adds. Measured on the 2-core VM (interleaved runs, means), the shell
 * launcher costs ~6 ms (dash, a fork for `command -v`, a fork and exec of stat) and Node
 * reading dist/capsule.blob into memory and copying it (~5.7 MB, page faults on every
 * page) ~9 ms more than `node -e 0`; the single executable's `--version` is as fast as
 * `node -e 0`, its snapshot is mapped with the binary. The price: ~100 MB in dist/, a few
 * seconds of build, and the node inside is the one that built it: a newer node on PATH is
 * not used until the next build (`npm run build:ts`). CAPSULE_SINGLE_EXECUTABLE=0 (and
 * `npm pack`, see package.json) keeps the shell launcher. Any failure keeps it too.
 */
const SEA_FUSE =
  'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2'; /* Node's sentinel, the same in every release */
function buildSingleExecutable() {
  if (process.env.CAPSULE_SINGLE_EXECUTABLE === '0') return 'CAPSULE_SINGLE_EXECUTABLE=0';
  if (!readFileSync(process.execPath).includes(SEA_FUSE))
    return `${process.execPath} has no single executable support`;
  let postject;
  try {
    postject = createRequire(import.meta.url).resolve('postject/dist/cli.js');
  } catch {
    return 'postject (a devDependency) is not installed';
  }
  const entry = join(dist, 'capsule-sea.cjs');
  const config = join(dist, 'capsule-sea.json');
  const prep = join(dist, 'capsule-sea.prep');
  const exe = join(dist, 'capsule.tmp');
  try {
    buildSync({
      entryPoints: [join(dist, 'src/cli/snapshot.js')],
      outfile: entry,
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      define: { 'import.meta.url': 'undefined', CAPSULE_SINGLE_EXECUTABLE: 'true' },
      logLevel: 'error',
    });
    writeFileSync(
      config,
      JSON.stringify({ main: entry, output: prep, useSnapshot: true, disableExperimentalSEAWarning: true }),
    );
    const steps = [
      [process.execPath, ['--experimental-sea-config', config]],
      [process.execPath, [postject, exe, 'NODE_SEA_BLOB', prep, '--sentinel-fuse', SEA_FUSE]],
      [exe, ['--version']],
    ];
    for (const [i, [file, args]] of steps.entries()) {
      if (i === 1) copyFileSync(process.execPath, exe);
      const r = spawnSync(file, args, { encoding: 'utf8' });
      if (r.status !== 0)
        return `${[file, ...args].join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stderr}`;
    }
    chmodSync(exe, 0o755);
    renameSync(exe, join(dist, 'capsule'));
    return null;
  } finally {
    for (const f of [entry, config, prep, exe]) rmSync(f, { force: true });
  }
}
const single = buildSingleExecutable();
if (single !== null && process.env.CAPSULE_SINGLE_EXECUTABLE !== '0')
  console.error(`bundle-cli: dist/capsule is the shell launcher, not a single executable: ${single}`);

/*
 * Shell launchers over the one bundle and snapshot blob: dist/capsule.sh for `capsule` (and
 * dist/capsule itself when it is not the single executable), and dist/capsule-runc for the
 * OCI runtime command line (src/cli/oci.ts), which main() recognizes by its own name in
 * argv[1] (an engine may call it through a link of another name: the script passes its own).
 * Each starts Node from dist/capsule.blob when the node on PATH made it, and the bundle
 * otherwise: dist/capsule.mjs, or dist/capsule-runc.mjs (a one-line module that loads it).
 * Each is written beside and renamed into place: a running executable cannot be overwritten.
 */
writeFileSync(
  join(dist, 'capsule-runc.mjs'),
  "// capsule-runc without the start-up snapshot: the bundle, which sees its name in argv[1].\nimport './capsule.mjs';\n",
);
const launchers = [
  ['capsule.sh', 'capsule'],
  ['capsule-runc', 'capsule-runc'],
  ...(single === null ? [] : [['capsule', 'capsule']]),
];
for (const [file, name] of launchers) {
  const launcher = join(dist, file);
  writeFileSync(
    `${launcher}.tmp`,
    `#!/bin/sh
# The ${name} command (package.json "bin"${file === name ? '' : ` when dist/${name} is not the single executable`}),
# made by scripts/bundle-cli.mjs.
# Node starts from dist/capsule.blob, a snapshot of the CLI taken at build time
# (src/cli/snapshot.ts), when the node found here is the binary that made it;
# otherwise it runs the bundle, dist/${name}.mjs: the same command, slower to start.
self=$0
[ -L "$self" ] && self=$(readlink -f -- "$self")
dir=\${self%/*}
# The first node on PATH, as \`command -v node\` finds it, without the fork of $(...).
node=
set -f
oldifs=$IFS
IFS=:
for d in $PATH; do
  [ -f "\${d:-.}/node" ] && [ -x "\${d:-.}/node" ] && { node=\${d:-.}/node; break; }
done
IFS=$oldifs
set +f
[ -n "$node" ] || { echo "${name}: node is not on PATH" >&2; exit ${name === 'capsule' ? 125 : 1}; }
# The snapshot's node (scripts/bundle-cli.mjs): the same file, with the same mtime.
id=$dir/capsule.blob.node
if [ -r "$id" ] && read -r built < "$id" && [ "$node" -ef "$built" ] &&
  ! [ "$node" -nt "$id" ] && ! [ "$node" -ot "$id" ]; then
  exec "$node" --snapshot-blob "$dir/capsule.blob" "$dir/${name}" "$@"
fi
exec "$node" "$dir/${name}.mjs" "$@"
`,
  );
  chmodSync(`${launcher}.tmp`, 0o755);
  renameSync(`${launcher}.tmp`, launcher);
}
