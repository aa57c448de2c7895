import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { resolveProfiles } from '../../rootfs-tools/profile.js';
import { PROFILES, PROFILE_NAMES, type Profile } from '../../rootfs-tools/profiles.js';
import { componentRegExp, expandGlob, matchesPrefix } from '../../rootfs-tools/glob.js';

describe('glob', () => {
  it('matches *, ? and [...] within one component', () => {
    expect(componentRegExp('crt[in].o').test('crti.o')).toBe(true);
    expect(componentRegExp('crt[in].o').test('crt1.o')).toBe(false);
    expect(componentRegExp('*crt1.o').test('Scrt1.o')).toBe(true);
    expect(componentRegExp('python3.[0-9]*').test('python3.11')).toBe(true);
    expect(componentRegExp('python3.[0-9]*').test('python3')).toBe(false);
    expect(componentRegExp('lib?.so').test('libc.so')).toBe(true);
    expect(componentRegExp('a.b').test('axb')).toBe(false);
  });

  it('matches a subtree by prefix', () => {
    expect(matchesPrefix('/usr/include/c++', '/usr/include/c++/12/vector')).toBe(true);
    expect(matchesPrefix('/usr/include/*/c++', '/usr/include/x86_64-linux-gnu/c++/12')).toBe(true);
    expect(matchesPrefix('/usr/include/c++', '/usr/include/stdio.h')).toBe(false);
  });

  it('expands against the host, through symlinked directories', async () => {
    expect(await expandGlob('/', '/usr/lib/*-linux-gnu/libc.so.6')).toEqual([
      '/usr/lib/x86_64-linux-gnu/libc.so.6',
    ]);
    expect(await expandGlob('/', '/lib/*-linux-gnu/libc.so.6')).toEqual(['/lib/x86_64-linux-gnu/libc.so.6']);
    expect(await expandGlob('/', '/no/such/*')).toEqual([]);
  });
});

describe('resolveProfiles', () => {
  it('puts extended profiles first, once each', async (ctx) => {
    const r = await resolveProfiles(['cpp', 'c']).catch((e: Error) => e);
    if (r instanceof Error) return ctx.skip(`host lacks what the cpp profile needs: ${r.message}`);
    expect(r.names).toEqual(['sh', 'c', 'cpp']);
    expect(r.programs.map((p) => p.bin)).toContain('g++');
    expect(r.programs.map((p) => p.bin)).toContain('sh');
  });

  for (const name of PROFILE_NAMES) {
    it(`resolves ${name} on this host, or names the package it lacks`, async () => {
      const r = await resolveProfiles([name]).catch((e: Error) => e);
      if (r instanceof Error) {
        expect(r.message).toMatch(new RegExp(`^profile \\S+ needs .*: apt-get install \\S+`));
        return;
      }
      for (const p of r.programs) expect(existsSync(p.path)).toBe(true);
      expect(r.include.every((i) => existsSync(i.path))).toBe(true);
    });
  }

  it('says which package to install when the host lacks a program or a file', async () => {
    const fake: Record<string, Profile> = {
      rust: {
        description: 'test',
        programs: [{ bin: 'rustc-does-not-exist', package: 'rustc' }],
        include: [{ path: '/usr/lib/rustlib-nope/*', package: 'libstd-rust-dev' }],
      },
    };
    await expect(resolveProfiles(['rust'], fake)).rejects.toThrow(
      'profile rust needs the program rustc-does-not-exist, which this host does not have (and 1 more): ' +
        'apt-get install rustc libstd-rust-dev',
    );
    await expect(resolveProfiles(['cobol'])).rejects.toThrow(
      "unknown profile 'cobol'; the profiles are sh, c, cpp, python3, java, go, node, rust",
    );
    const pkg: Record<string, Profile> = {
      x: { description: 'test', packages: ['capsule-no-such-package'], programs: [], include: [] },
    };
    await expect(resolveProfiles(['x'], pkg)).rejects.toThrow(
      'profile x needs the package capsule-no-such-package, which this host does not have: apt-get install capsule-no-such-package',
    );
  });

  it('is data: every profile lists programs and includes with a package', () => {
    for (const p of Object.values(PROFILES)) {
      for (const item of [...p.programs, ...p.include]) expect(item.package).toMatch(/\S/);
    }
  });
});
