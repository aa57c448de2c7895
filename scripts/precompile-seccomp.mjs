#!/usr/bin/env node
/**
 * Compiles capsule's built-in seccomp profiles at build time into dist/seccomp/
 * (src/seccomp/precompiled.ts says how they are used and when they are not): a
 * manifest keyed by each profile's stable key, the BPF program and the key itself.
 *
 * Run by `npm run build:ts` after tsc. Without the native addon (a checkout where
 * `node-gyp rebuild` has not run yet) it writes nothing and says so: capsule then
 * compiles at run time, as it always can.
 */
import { existsSync, mkdirSync, readSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'seccomp');
rmSync(out, { recursive: true, force: true });

if (!existsSync(join(root, 'build', 'Release', 'capsule.node'))) {
  console.error(
    'precompile-seccomp: the addon is not built yet; capsule will compile its profiles at run time',
  );
  process.exit(0);
}

const { native } = await import(join(root, 'dist/src/native.js'));
const seccomp = await import(join(root, 'dist/src/seccomp/index.js'));
const { keyDigest } = await import(join(root, 'dist/src/seccomp/precompiled.js'));

const addon = native();
const manifest = { format: 1, libseccomp: addon.libseccompVersion, arch: process.arch, filters: {} };
mkdirSync(out, { recursive: true });
for (const name of seccomp.BUILTIN_PROFILES) {
  const p = seccomp.builtinNormalized(name);
  if (!p) continue;
  const key = seccomp.profileKey(p);
  const digest = keyDigest(key);
  if (manifest.filters[digest]) continue; /* a collision: the second is compiled at run time */
  const c = addon.compileSeccomp({ ...p, pfc: false });
  const bytes = Buffer.alloc(c.instructions * 8);
  readSync(c.fd, bytes, 0, bytes.length, 0);
  closeSync(c.fd);
  writeFileSync(join(out, `${name}.bpf`), bytes);
  writeFileSync(join(out, `${name}.key`), key);
  manifest.filters[digest] = {
    bpf: `${name}.bpf`,
    key: `${name}.key`,
    instructions: c.instructions,
    ignored: c.ignored,
    unknown: c.unknown,
  };
}
writeFileSync(join(out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
