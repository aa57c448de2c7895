import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFile, mkdir, readdir, symlink } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Resolver, type Closure } from '../../rootfs-tools/resolve.js';
import {
  compile,
  hasBinutils,
  hasGcc,
  ldd,
  makeLib32,
  makeTempDir,
  removeDir,
  type LddEntry,
} from './fixtures.js';

/** The resolver's answer in ldd's shape: every library by name, the interpreter by path, missing as null. */
function asLdd(c: Closure): LddEntry[] {
  const found = c.objects
    .filter((o) => o.via !== 'program')
    .map((o) => ({ name: o.via === 'interpreter' ? o.path : o.name, path: o.path }));
  const missing = c.missing.map((m) => ({ name: m.name, path: null }));
  return [...found, ...missing];
}

const byName = (a: LddEntry, b: LddEntry): number => a.name.localeCompare(b.name);

async function expectSameAsLdd(
  file: string,
  resolver = new Resolver(),
  env: Record<string, string> = {},
): Promise<Closure> {
  const closure = await resolver.closure(file);
  const expected = await ldd(file, env);
  expect(asLdd(closure).sort(byName)).toEqual(expected.sort(byName));
  return closure;
}

describe('Resolver on host programs, cross-checked with ldd', () => {
  const programs = [
    '/bin/sh',
    '/usr/bin/ls',
    '/usr/bin/python3',
    '/usr/bin/gcc',
    '/usr/lib/gcc/x86_64-linux-gnu/12/cc1',
    '/usr/lib/gcc/x86_64-linux-gnu/12/cc1plus',
    '/usr/bin/ld.bfd',
  ];
  for (const program of programs) {
    it.skipIf(!existsSync(program))(
      `resolves ${program} like ldd (skips when the host lacks it)`,
      async () => {
        const closure = await expectSameAsLdd(program);
        expect(closure.missing).toEqual([]);
        expect(closure.objects.some((o) => o.via === 'interpreter')).toBe(true);
      },
    );
  }

  it('resolves Python extension modules like ldd', async (ctx) => {
    const dynload = '/usr/lib/python3.11/lib-dynload';
    if (!existsSync(dynload)) ctx.skip(`host has no ${dynload}`);
    const modules = (await readdir(dynload)).filter((f) => f.endsWith('.so')).slice(0, 12);
    expect(modules.length).toBeGreaterThan(0);
    const resolver = new Resolver();
    for (const m of modules) await expectSameAsLdd(join(dynload, m), resolver);
  });

  it('finds no dependencies for a static program', async (ctx) => {
    if (!existsSync('/usr/bin/busybox')) ctx.skip('host has no /usr/bin/busybox (busybox-static)');
    const closure = await new Resolver().closure('/usr/bin/busybox');
    if (!closure.isStatic) ctx.skip('/usr/bin/busybox is dynamically linked on this host');
    expect(closure.objects).toHaveLength(1);
    expect(await ldd('/usr/bin/busybox')).toEqual([]);
  });

  it('keeps the usrmerge links crossed to reach the interpreter', async () => {
    const closure = await new Resolver().closure('/bin/sh');
    const interp = closure.objects.find((o) => o.via === 'interpreter');
    expect(interp?.path).toBe('/lib64/ld-linux-x86-64.so.2');
    expect(interp?.links.length).toBeGreaterThan(0);
    expect(existsSync(interp?.realPath ?? '/nonexistent')).toBe(true);
  });
});

describe.skipIf(!hasGcc)('Resolver on compiled fixtures, cross-checked with ldd', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await makeTempDir();
    await mkdir(join(dir, 'lib'));
    await mkdir(join(dir, 'bin'));
    await mkdir(join(dir, 'other'));
    const two = await compile(join(dir, 'lib', 'libtwo.so.1.0'), 'int two(void){return 2;}', [
      '-shared',
      '-fPIC',
      '-Wl,-soname,libtwo.so.1',
    ]);
    await symlink('libtwo.so.1.0', join(dir, 'lib', 'libtwo.so.1'));
    await compile(join(dir, 'lib', 'libone.so.1'), 'int two(void); int one(void){return two()-1;}', [
      '-shared',
      '-fPIC',
      '-Wl,-soname,libone.so.1',
      '-Wl,--no-as-needed',
      two,
    ]);
    await copyFile(two, join(dir, 'other', 'libtwo.so.1'));
  });
  afterAll(async () => removeDir(dir));

  const main = 'int one(void); int main(void){return one();}';

  it('inherits DT_RPATH from the executable ($ORIGIN expanded) for a library with none', async () => {
    const prog = await compile(join(dir, 'bin', 'rpath'), main, [
      '-Wl,--disable-new-dtags,-rpath,$ORIGIN/../lib',
      `-L${join(dir, 'lib')}`,
      '-l:libone.so.1',
      `-Wl,-rpath-link,${join(dir, 'lib')}`,
    ]);
    const c = await expectSameAsLdd(prog);
    expect(c.objects.find((o) => o.name === 'libtwo.so.1')?.via).toBe('rpath');
    expect(c.objects.find((o) => o.name === 'libtwo.so.1')?.links).toEqual([
      { path: join(dir, 'lib', 'libtwo.so.1'), target: 'libtwo.so.1.0' },
    ]);
  });

  it('does not inherit DT_RUNPATH: the library of a library is not found', async () => {
    const prog = await compile(join(dir, 'bin', 'runpath'), main, [
      '-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib',
      `-L${join(dir, 'lib')}`,
      '-l:libone.so.1',
      `-Wl,-rpath-link,${join(dir, 'lib')}`,
    ]);
    const c = await expectSameAsLdd(prog);
    expect(c.missing.map((m) => [m.name, m.neededBy])).toEqual([
      ['libtwo.so.1', `${dir}/bin/../lib/libone.so.1`],
    ]);
    expect(c.missing[0]?.tried).toContain('/usr/lib/x86_64-linux-gnu/libtwo.so.1');
  });

  it('honours LD_LIBRARY_PATH when the caller passes one, after DT_RPATH and before DT_RUNPATH', async () => {
    const prog = await compile(join(dir, 'bin', 'runpath2'), main, [
      '-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib',
      `-L${join(dir, 'lib')}`,
      '-l:libone.so.1',
      `-Wl,-rpath-link,${join(dir, 'lib')}`,
    ]);
    const ldLibraryPath = join(dir, 'other');
    const c = await expectSameAsLdd(prog, new Resolver({ ldLibraryPath }), {
      LD_LIBRARY_PATH: ldLibraryPath,
    });
    expect(c.objects.find((o) => o.name === 'libtwo.so.1')?.path).toBe(join(dir, 'other', 'libtwo.so.1'));
  });

  it.skipIf(!hasBinutils)('skips a library of the wrong ELF class and keeps searching', async () => {
    await mkdir(join(dir, 'lib32first'));
    await makeLib32(join(dir, 'lib32first', 'libone.so.1'), 'libone.so.1');
    const prog = await compile(join(dir, 'bin', 'wrongclass'), main, [
      `-Wl,--disable-new-dtags,-rpath,${join(dir, 'lib32first')}:${join(dir, 'lib')}`,
      `-L${join(dir, 'lib')}`,
      '-l:libone.so.1',
      `-Wl,-rpath-link,${join(dir, 'lib')}`,
    ]);
    const c = await expectSameAsLdd(prog);
    expect(c.objects.find((o) => o.name === 'libone.so.1')?.path).toBe(join(dir, 'lib', 'libone.so.1'));
  });

  it.skipIf(!hasBinutils)('resolves 32-bit objects against 32-bit candidates only', async () => {
    await mkdir(join(dir, 'l32'));
    const a = await makeLib32(join(dir, 'l32', 'liba32.so.1'), 'liba32.so.1');
    const b = await makeLib32(join(dir, 'l32', 'libb32.so.1'), 'libb32.so.1', [
      '-rpath',
      join(dir, 'l32'),
      a,
    ]);
    const c = await new Resolver().closure(b);
    expect(c.objects.map((o) => o.path)).toEqual([b, a]);
    // A 64-bit library of the same name in an earlier directory is skipped.
    const c64 = await new Resolver({ ldLibraryPath: join(dir, 'lib') }).closure(b);
    expect(c64.objects.map((o) => o.path)).toEqual([b, a]);
  });

  it('reports a missing interpreter', async () => {
    const resolver = new Resolver({ root: dir, ldCachePath: null });
    await mkdir(join(dir, 'box', 'bin'), { recursive: true });
    await copyFile('/bin/sh', join(dir, 'box', 'bin', 'sh'));
    const c = await new Resolver({ root: join(dir, 'box') }).closure('/bin/sh');
    expect(c.missing.find((m) => m.kind === 'interpreter')?.name).toMatch(/ld-linux/);
    await expect(resolver.closure('/no/such/prog')).rejects.toThrow(`/no/such/prog does not exist in ${dir}`);
  });
});
