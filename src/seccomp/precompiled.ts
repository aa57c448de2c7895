/**
 * Filters compiled at build time: `npm run build:ts` (scripts/precompile-seccomp.mjs)
 * compiles capsule's built-in profiles with libseccomp and writes the programs to
 * dist/seccomp/, so a process does not pay libseccomp's few milliseconds on its first
 * run (the `capsule` command pays it on every invocation otherwise).
 *
 * A precompiled program is used only when it is exactly what compiling would give:
 * the same normalized profile (its whole stable key, compared byte for byte, not a
 * digest alone), the same libseccomp version and the same architecture. Anything else
 * (a profile file, an edited built-in, another libseccomp) is compiled as before. The
 * files are part of the package, as trusted as its code: nothing is cached at run time.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { native, packageRoot } from '../native.js';
import type { SeccompProfile } from './profile.js';

/** dist/seccomp/manifest.json. */
export interface PrecompiledManifest {
  format: 1;
  /** libseccomp's version when the filters were compiled ("2.5.4"). */
  libseccomp: string;
  /** process.arch of the build. */
  arch: string;
  /** By digest of the profile's stable key (see `keyDigest`). */
  filters: Record<
    string,
    { bpf: string; key: string; instructions: number; ignored: string[]; unknown: string[] }
  >;
}

export const PRECOMPILED_DIR = join('dist', 'seccomp');

/**
 * The manifest's index for a profile key: its length and FNV-1a (32 bits). Not a security
 * boundary: a hit is confirmed by comparing the whole key, and a collision is a miss.
 */
export function keyDigest(key: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return `${key.length.toString(16)}-${(h >>> 0).toString(16).padStart(8, '0')}`;
}

type Entry = PrecompiledManifest['filters'][string];

let manifest: PrecompiledManifest | null | undefined;

/* The manifest as written, or null when there is none (a checkout before `npm run build:ts`). */
function load(): PrecompiledManifest | null {
  if (manifest !== undefined) return manifest;
  manifest = null;
  try {
    const m = JSON.parse(
      readFileSync(join(packageRoot(), PRECOMPILED_DIR, 'manifest.json'), 'utf8'),
    ) as PrecompiledManifest;
    if (m.format === 1 && m.arch === process.arch) manifest = m;
  } catch {
    /* none: compile as before */
  }
  return manifest;
}

/** Read the manifest again on next use (for tests that point packageRoot elsewhere). */
export function forgetPrecompiled(): void {
  manifest = undefined;
}

/* Profiles whose entry was found and whose key was compared already (see `preverify`). */
const verified = new WeakMap<SeccompProfile, Entry | null>();
/*
 * The programs of those entries, read once: at build time for the CLI's snapshot
 * (src/cli/snapshot.ts), whose processes then read no file for their filter. A build
 * artifact of dist/seccomp like the manifest, nothing of the machine's.
 */
const programs = new WeakMap<Entry, Buffer>();

function program(entry: Entry): Buffer | null {
  let bytes = programs.get(entry);
  if (bytes) return bytes;
  try {
    bytes = readFileSync(join(packageRoot(), PRECOMPILED_DIR, entry.bpf));
  } catch {
    return null;
  }
  if (bytes.length !== entry.instructions * 8) return null;
  programs.set(entry, bytes);
  return bytes;
}

function lookup(p: SeccompProfile, key: string): Entry | null {
  const known = verified.get(p);
  if (known !== undefined) return known;
  let found: Entry | null = null;
  const entry = load()?.filters[keyDigest(key)];
  if (entry) {
    try {
      if (readFileSync(join(packageRoot(), PRECOMPILED_DIR, entry.key), 'utf8') === key) found = entry;
    } catch {
      /* unreadable: compile */
    }
  }
  verified.set(p, found);
  return found;
}

/**
 * Find and check `p`'s entry and read its program now (for the CLI's start-up snapshot,
 * which does it once at build time): only the libseccomp version is left for run time.
 */
export function preverify(p: SeccompProfile, key: string): void {
  const entry = lookup(p, key);
  if (entry) program(entry);
}

/**
 * The precompiled program for `p` (whose stable key is `key`) in a sealed memfd, or null
 * when there is none for it, this libseccomp and this architecture.
 */
export function precompiledFilter(
  p: SeccompProfile,
  key: string,
): { fd: number; instructions: number; ignored: string[]; unknown: string[] } | null {
  const entry = lookup(p, key);
  if (!entry || manifest?.libseccomp !== native().libseccompVersion) return null;
  const bytes = program(entry);
  if (!bytes) return null;
  const fd = native().sealFilter(bytes);
  return { fd, instructions: entry.instructions, ignored: entry.ignored, unknown: entry.unknown };
}
