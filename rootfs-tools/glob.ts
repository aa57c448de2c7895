/**
 * Minimal globbing for profile patterns: `*`, `?` and `[...]` inside one path component, matched
 * against the directory listing under a root. Enough for `/usr/lib/gcc/*\/*` and `crt[in].o`,
 * without a dependency.
 */
import { readdir } from 'node:fs/promises';
import { posix } from 'node:path';
import { hostPath, walk } from './paths.js';

const MAGIC = /[*?[]/;

/** Turns one glob component into an anchored regular expression. */
export function componentRegExp(component: string): RegExp {
  let re = '';
  for (let i = 0; i < component.length; i++) {
    const c = component[i] as string;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = component.indexOf(']', i + 1);
      if (end === -1) re += '\\[';
      else {
        re += `[${component
          .slice(i + 1, end)
          .replace(/^!/, '^')
          .replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** True when `path` is matched by `pattern` or lies under a path it matches (a whole subtree). */
export function matchesPrefix(pattern: string, path: string): boolean {
  const pat = pattern.split('/').filter((c) => c !== '');
  const parts = path.split('/').filter((c) => c !== '');
  if (parts.length < pat.length) return false;
  return pat.every((c, i) => componentRegExp(c).test(parts[i] as string));
}

/** Expands an absolute pattern under `root`; results are sorted, in root coordinates, and exist. */
export async function expandGlob(root: string, pattern: string): Promise<string[]> {
  const parts = pattern.split('/').filter((c) => c !== '');
  let current = ['/'];
  for (const part of parts) {
    const next: string[] = [];
    for (const dir of current) {
      if (!MAGIC.test(part)) {
        const candidate = posix.join(dir, part);
        if (await walk(root, candidate)) next.push(candidate);
        continue;
      }
      const real = await walk(root, dir);
      if (!real || !real.stats.isDirectory()) continue;
      const re = componentRegExp(part);
      const names = await readdir(hostPath(root, real.realPath)).catch(() => []);
      for (const name of names.sort()) if (re.test(name)) next.push(posix.join(dir, name));
    }
    current = next;
  }
  return current;
}
