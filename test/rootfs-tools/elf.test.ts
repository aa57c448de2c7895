import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { readElf, readElfInterpreter, readShebang, readShebangLine, isElf } from '../../rootfs-tools/elf.js';
import { RootfsError } from '../../rootfs-tools/errors.js';
import { compile, hasBinutils, hasGcc, makeLib32, makeTempDir, removeDir } from './fixtures.js';

/** What `readelf -d` says, the binutils cross-check for the dynamic section. */
async function readelfDynamic(
  path: string,
): Promise<{ needed: string[]; soname: string | null; rpath: string[]; runpath: string[] | null }> {
  const { stdout } = await execa('readelf', ['-dW', path]);
  const pick = (tag: string): string[] =>
    [...stdout.matchAll(new RegExp(`\\(${tag}\\)\\s+\\S+ \\S+: \\[([^\\]]*)\\]`, 'g'))].map(
      (m) => m[1] ?? '',
    );
  const runpath = pick('RUNPATH');
  return {
    needed: pick('NEEDED'),
    soname: pick('SONAME')[0] ?? null,
    rpath: pick('RPATH').flatMap((p) => p.split(':')),
    runpath: runpath.length ? runpath.flatMap((p) => p.split(':')) : null,
  };
}

const hasReadelf = (await execa('readelf', ['--version'], { reject: false })).exitCode === 0;

describe('readElf on host binaries, cross-checked with readelf', () => {
  const hostFiles = [
    '/bin/sh',
    '/usr/bin/ls',
    '/usr/lib/x86_64-linux-gnu/libc.so.6',
    '/usr/bin/python3',
    '/usr/bin/busybox',
  ];
  for (const file of hostFiles) {
    it.skipIf(!hasReadelf)(`reads ${file} like readelf -d`, async (ctx) => {
      if (!(await isElf(file))) ctx.skip(`host has no ELF file at ${file}`);
      const info = await readElf(file);
      const expected = await readelfDynamic(file);
      expect(info.needed).toEqual(expected.needed);
      expect(info.soname).toBe(expected.soname);
      expect(info.rpath).toEqual(expected.rpath);
      expect(info.runpath).toEqual(expected.runpath);
      const { stdout } = await execa('readelf', ['-lW', file]);
      const interp = /Requesting program interpreter: ([^\]]+)\]/.exec(stdout)?.[1] ?? null;
      expect(info.interpreter).toBe(interp);
      expect(await readElfInterpreter(file)).toBe(interp);
    });
  }
});

describe('readElf on compiled fixtures', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await makeTempDir();
  });
  afterAll(async () => removeDir(dir));

  it.skipIf(!hasGcc)(
    'reads DT_RPATH (old dtags) and DT_RUNPATH (new dtags) with $ORIGIN unexpanded',
    async () => {
      const lib = await compile(join(dir, 'libfix.so'), 'int fix(void){return 1;}', [
        '-shared',
        '-fPIC',
        '-Wl,-soname,libfix.so.7',
      ]);
      const withRpath = await compile(join(dir, 'rp'), 'int main(void){return 0;}', [
        `-Wl,--disable-new-dtags,-rpath,$ORIGIN/../lib:/opt/x`,
        '-Wl,--no-as-needed',
        lib,
      ]);
      const withRunpath = await compile(join(dir, 'rn'), 'int main(void){return 0;}', [
        `-Wl,--enable-new-dtags,-rpath,$ORIGIN/lib`,
        '-Wl,--no-as-needed',
        lib,
      ]);
      const staticProg = await compile(join(dir, 'st'), 'int main(void){return 0;}', ['-static']).catch(
        () => null,
      );

      const libInfo = await readElf(lib);
      expect(libInfo.soname).toBe('libfix.so.7');
      expect(libInfo.interpreter).toBeNull();
      expect(libInfo.bits).toBe(64);

      const rp = await readElf(withRpath);
      expect(rp.rpath).toEqual(['$ORIGIN/../lib', '/opt/x']);
      expect(rp.runpath).toBeNull();
      expect(rp.needed).toContain('libfix.so.7');
      expect(rp.interpreter).toMatch(/ld-linux/);

      const rn = await readElf(withRunpath);
      expect(rn.runpath).toEqual(['$ORIGIN/lib']);
      expect(rn.rpath).toEqual([]);

      if (staticProg) {
        const st = await readElf(staticProg);
        expect(st.interpreter).toBeNull();
        expect(st.needed).toEqual([]);
        expect(await readElfInterpreter(staticProg)).toBeNull();
      }
    },
  );

  it.skipIf(!hasGcc)('reads DF_1_NODEFLIB from -z nodefaultlib', async () => {
    const prog = await compile(join(dir, 'ndl'), 'int main(void){return 0;}', ['-Wl,-z,nodefaultlib']);
    expect((await readElf(prog)).noDefaultLib).toBe(true);
    const plain = await compile(join(dir, 'plain'), 'int main(void){return 0;}');
    expect((await readElf(plain)).noDefaultLib).toBe(false);
  });

  it.skipIf(!hasBinutils)('reads 32-bit i386 objects', async () => {
    const a = await makeLib32(join(dir, 'liba32.so'), 'liba32.so.1');
    const b = await makeLib32(join(dir, 'libb32.so'), 'libb32.so.1', [a]);
    const info = await readElf(b);
    expect(info.bits).toBe(32);
    expect(info.machine).toBe(3);
    expect(info.soname).toBe('libb32.so.1');
    expect(info.needed).toEqual(['liba32.so.1']);
  });

  it('rejects non-ELF files, truncated files and missing files with the path in the message', async () => {
    const text = join(dir, 'notes.txt');
    await writeFile(text, 'hello');
    await expect(readElf(text)).rejects.toThrow(`${text} is not an ELF file`);
    await expect(readElfInterpreter(text)).rejects.toBeInstanceOf(RootfsError);
    const truncated = join(dir, 'trunc');
    const real = await import('node:fs/promises').then((fs) => fs.readFile('/bin/sh'));
    await writeFile(truncated, real.subarray(0, 200));
    await expect(readElf(truncated)).rejects.toThrow(/truncated ELF file .*trunc|malformed ELF file .*trunc/);
    await expect(readElfInterpreter(join(dir, 'missing'))).rejects.toThrow(
      `${join(dir, 'missing')} does not exist`,
    );
    expect(await isElf(text)).toBe(false);
    expect(await isElf('/bin/sh')).toBe(true);
  });
});

describe('readShebang', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await makeTempDir();
  });
  afterAll(async () => removeDir(dir));

  it('parses the interpreter and the single argument like binfmt_script', async () => {
    const cases: Array<[string, string | null, string | null]> = [
      ['#!/bin/sh\necho hi\n', '/bin/sh', null],
      ['#! /usr/bin/env python3 -u\n', '/usr/bin/env', 'python3 -u'],
      ['#!/usr/bin/perl -w\r\n', '/usr/bin/perl', '-w'],
      ['echo no shebang\n', null, null],
      ['#!\n', null, null],
    ];
    for (const [i, [body, interp, arg]] of cases.entries()) {
      const file = join(dir, `s${i}`);
      await writeFile(file, body);
      await chmod(file, 0o755);
      expect(await readShebang(file)).toBe(interp);
      expect((await readShebangLine(file))?.argument ?? null).toBe(arg);
    }
    expect(await readShebang('/bin/sh')).toBeNull();
    await expect(readShebang(join(dir, 'nope'))).rejects.toThrow('does not exist');
  });
});
