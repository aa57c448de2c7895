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
