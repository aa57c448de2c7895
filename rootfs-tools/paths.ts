/**
 * Path lookup inside a directory treated as `/`, the way the kernel would see it after pivot_root.
 *
 * A rootfs keeps the host's layout, symlinks included: on a usrmerge system `/lib64` is a link to
 * `usr/lib64`, and `/lib64/ld-linux-x86-64.so.2` is itself a link to an absolute path. To reproduce
 * such a chain in the rootfs, every link on the way must be copied, not just the final file, and an
 * absolute link target must be looked up under the root, not on the host. `walk` does both: it
 * resolves a path component by component (path_resolution(7)) and records each link it crossed.
 */
import { lstat, readlink } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { posix } from 'node:path';
import { errnoCode } from './errors.js';

/** Linux gives up after 40 links in one lookup (ELOOP, path_resolution(7)). */
const MAX_SYMLINKS = 40;

/** A symbolic link crossed while resolving a path: where it is (rootfs path) and what it says. */
export interface LinkStep {
  /** Absolute path of the link, in root coordinates. */
  path: string;
  /** The link's contents, verbatim (relative or absolute). */
  target: string;
}

/** The result of resolving a path under a root. */
export interface WalkResult {
  /** The final path, in root coordinates, with every symlink resolved. */
  realPath: string;
  /** The links crossed, in order; copying them plus `realPath` reproduces the lookup elsewhere. */
  links: LinkStep[];
  /** lstat of the final file (never a symlink). */
  stats: Stats;
}

/** Joins a root-relative absolute path onto the host path of the root. */
export function hostPath(root: string, path: string): string {
  return root === '/' ? path : posix.join(root, path);
}

/**
 * Resolves `path` (absolute, in root coordinates) under `root`, following symlinks as if `root`
 * were `/`: `..` never climbs above it and absolute link targets start again from it.
 * Returns null when a component does not exist, is not a directory, or the links loop.
 */
export async function walk(root: string, path: string): Promise<WalkResult | null> {
  const links: LinkStep[] = [];
  let pending = path.split('/').filter((c) => c !== '' && c !== '.');
  let current = '/';
  let stats: Stats | null = null;
  while (pending.length > 0) {
    const component = pending.shift() as string;
    if (component === '..') {
      current = posix.dirname(current);
      stats = null;
      continue;
    }
    const next = posix.join(current, component);
    try {
      stats = await lstat(hostPath(root, next));
    } catch (error) {
      const code = errnoCode(error);
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EACCES') return null;
      throw error;
    }
    if (stats.isSymbolicLink()) {
      if (links.length >= MAX_SYMLINKS) return null;
      const target = await readlink(hostPath(root, next));
      links.push({ path: next, target });
      pending = [...target.split('/').filter((c) => c !== '' && c !== '.'), ...pending];
      if (target.startsWith('/')) current = '/';
      stats = null;
      continue;
    }
    if (pending.length > 0 && !stats.isDirectory()) return null;
    current = next;
  }
  stats ??= await lstat(hostPath(root, current));
  return { realPath: current, links, stats };
}

/** True when `path` names a regular file under `root` (after following links). */
export async function isFileIn(root: string, path: string): Promise<boolean> {
  const found = await walk(root, path);
  return found !== null && found.stats.isFile();
}
