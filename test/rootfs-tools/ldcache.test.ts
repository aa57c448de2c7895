import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import {
  cacheFlagsFor,
  encodeLdCache,
  libcmp,
  lookupLdCache,
  parseLdCache,
  readLdCache,
} from '../../rootfs-tools/ldcache.js';
import { makeTempDir, removeDir } from './fixtures.js';

const hostCache = '/etc/ld.so.cache';
const hasHostCache = existsSync(hostCache);

/** `ldconfig -p` lines: "\tname (flags[, hwcap...]) => path". */
async function ldconfigList(cache: string): Promise<Array<{ name: string; path: string }>> {
  const { stdout } = await execa('ldconfig', ['-p', '-C', cache]);
  return stdout
    .split('\n')
    .slice(1)
    .map((line) => /^\s+(\S+) \(([^)]*)\) => (.+)$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ name: m[1] ?? '', path: m[3] ?? '' }));
}

describe('libcmp (glibc _dl_cache_libcmp)', () => {
  it('compares digit runs as numbers', () => {
    expect(libcmp('libfoo.so.10', 'libfoo.so.9')).toBeGreaterThan(0);
    expect(libcmp('libfoo.so.9', 'libfoo.so.10')).toBeLessThan(0);
    expect(libcmp('libc.so.6', 'libc.so.6')).toBe(0);
    expect(libcmp('liba.so', 'libb.so')).toBeLessThan(0);
    expect(libcmp('libz.so', 'libz.so.1')).toBeLessThan(0);
    expect(libcmp('lib1', 'liba')).toBeGreaterThan(0); // a digit sorts after any letter
  });
});

describe.skipIf(!hasHostCache)(`parseLdCache on the host cache (${hostCache})`, () => {
  it('lists the same entries, in the same order, as ldconfig -p', async () => {
    const entries = await readLdCache(hostCache);
    const expected = await ldconfigList(hostCache);
    expect(entries.length).toBeGreaterThan(10);
    expect(entries.map((e) => ({ name: e.name, path: e.path }))).toEqual(expected);
  });

  it('finds the entries sorted in descending libcmp order, as the loader binary search needs', async () => {
    const entries = await readLdCache(hostCache);
    for (let i = 1; i < entries.length; i++) {
      expect(libcmp(entries[i - 1]?.name ?? '', entries[i]?.name ?? '')).toBeGreaterThanOrEqual(0);
    }
  });

  it('looks up libc.so.6 for x86-64 where ldd finds it', async (ctx) => {
    const flags = cacheFlagsFor(64, 62);
    const entries = await readLdCache(hostCache);
    const path = lookupLdCache(entries, 'libc.so.6', flags);
    if (path === null) ctx.skip('the host cache has no x86-64 libc.so.6 (not an x86-64 host)');
    const { stdout } = await execa('ldd', ['/bin/sh']);
    expect(stdout).toContain(`libc.so.6 => ${path}`);
  });
});

describe('encodeLdCache', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await makeTempDir();
  });
  afterAll(async () => removeDir(dir));

  it('writes a cache that ldconfig -p reads back, sorted as ldconfig sorts', async () => {
    const entries = [
      { name: 'libfoo.so.9', path: '/opt/a/libfoo.so.9', flags: 0x0303 },
      { name: 'libfoo.so.10', path: '/opt/a/libfoo.so.10', flags: 0x0303 },
      { name: 'libbar.so.1', path: '/opt/b/libbar.so.1', flags: 0x0303 },
      { name: 'libbar32.so.1', path: '/opt/b32/libbar32.so.1', flags: 0x0003 },
    ];
    const file = join(dir, 'ld.so.cache');
    await writeFile(file, encodeLdCache(entries));
    const parsed = parseLdCache(await readFile(file));
    expect(parsed.map((e) => e.name)).toEqual([
      'libfoo.so.10',
      'libfoo.so.9',
      'libbar32.so.1',
      'libbar.so.1',
    ]);
    expect(await ldconfigList(file)).toEqual(parsed.map((e) => ({ name: e.name, path: e.path })));
    expect(lookupLdCache(parsed, 'libbar32.so.1', cacheFlagsFor(64, 62))).toBeNull();
    expect(lookupLdCache(parsed, 'libbar32.so.1', cacheFlagsFor(32, 3))).toBe('/opt/b32/libbar32.so.1');
  });

  it('rejects a file that is not a cache, naming it', async () => {
    const file = join(dir, 'bogus');
    await writeFile(file, 'not a cache at all, definitely not');
    await expect(readLdCache(file)).rejects.toThrow(`${file} is not an ld.so cache`);
    expect(await readLdCache(join(dir, 'missing'))).toEqual([]);
  });
});
