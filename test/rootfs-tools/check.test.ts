import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmod, readdir, rm, writeFile, lstat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { buildRootfs } from '../../rootfs-tools/build.js';
import { checkRootfs, formatProblems } from '../../rootfs-tools/check.js';
import { isElf } from '../../rootfs-tools/elf.js';
import { isRoot, makeTempDir, removeDir } from './fixtures.js';

let tmp: string;
beforeEach(async () => {
  tmp = await makeTempDir();
});
afterEach(async () => removeDir(tmp));

async function elfFilesIn(box: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (rel: string): Promise<void> => {
    const st = await lstat(join(box, rel));
    if (st.isDirectory()) for (const n of await readdir(join(box, rel))) await visit(`${rel}/${n}`);
    else if (st.isFile() && (await isElf(join(box, rel)))) out.push(rel);
  };
  await visit('');
  return out;
}

/**
 * The system loader's own verdict inside the rootfs: `ld.so --list FILE` under chroot(8). It lists
 * "X => not found", or stops at the first library it cannot open and says so on stderr.
 */
async function loaderSaysMissing(box: string, file: string): Promise<string[]> {
  const r = await execa('/usr/sbin/chroot', [box, '/lib64/ld-linux-x86-64.so.2', '--list', file], {
    reject: false,
  });
  const notFound = [...String(r.stdout).matchAll(/^\s+(\S+) => not found/gm)].map((m) => m[1] ?? '');
  const fatal = /error while loading shared libraries: ([^:]+):/.exec(String(r.stderr))?.[1];
  return fatal ? [...notFound, fatal] : notFound;
}

describe('checkRootfs', () => {
  it('finds nothing missing in a built rootfs, and agrees with ld.so --list inside it', async (ctx) => {
    if (!existsSync('/usr/lib/python3.11')) return ctx.skip('host has no /usr/lib/python3.11');
    const box = join(tmp, 'box');
    await buildRootfs({
      dir: box,
      programs: ['/bin/sh', '/usr/bin/python3'],
      include: ['/usr/lib/python3.11'],
      hardlink: true,
    });
    const result = await checkRootfs(box);
    expect(result.problems).toEqual([]);
    expect(result.elfFiles).toBeGreaterThan(20);
    if (!isRoot) return;
    const files = await elfFilesIn(box);
    expect(files.length).toBe(result.elfFiles);
    for (const f of files.filter((x) => x.endsWith('.so') || x.includes('/bin/'))) {
      expect(await loaderSaysMissing(box, f), f).toEqual([]);
    }
  });

  it('lists a missing library with the file that needs it, as the loader inside does', async () => {
    const box = join(tmp, 'box');
    await buildRootfs({ dir: box, programs: ['/bin/sh', '/usr/bin/ls'] });
    await rm(join(box, 'usr/lib/x86_64-linux-gnu/libselinux.so.1'));
    const result = await checkRootfs(box);
    expect(result.problems).toEqual([{ file: '/usr/bin/ls', missing: 'libselinux.so.1', kind: 'library' }]);
    expect(formatProblems(result.problems)).toEqual(['/usr/bin/ls: library libselinux.so.1 not found']);
    if (isRoot) expect(await loaderSaysMissing(box, '/usr/bin/ls')).toEqual(['libselinux.so.1']);
  });

  it('lists a missing ELF interpreter for every program', async () => {
    const box = join(tmp, 'box');
    await buildRootfs({ dir: box, programs: ['/bin/sh', '/usr/bin/cat'] });
    await rm(join(box, 'usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2'));
    const result = await checkRootfs(box);
    const interp = result.problems.filter((p) => p.kind === 'interpreter');
    // libc.so.6 has a PT_INTERP too (it can be run to print its version).
    expect(interp.map((p) => p.file).sort()).toEqual([
      '/usr/bin/cat',
      '/usr/bin/dash',
      '/usr/lib/x86_64-linux-gnu/libc.so.6',
    ]);
    expect(interp[0]?.missing).toBe('/lib64/ld-linux-x86-64.so.2');
  });

  it('warns about an executable script whose #! interpreter is missing, without failing', async () => {
    const box = join(tmp, 'box');
    await buildRootfs({ dir: box, programs: ['/bin/sh'] });
    await writeFile(join(box, 'tmp/tool'), '#!/usr/bin/perl\nprint 1\n');
    await chmod(join(box, 'tmp/tool'), 0o755);
    await writeFile(join(box, 'tmp/ok'), '#!/bin/sh\necho\n');
    await chmod(join(box, 'tmp/ok'), 0o755);
    const result = await checkRootfs(box);
    expect(result.problems).toEqual([]);
    expect(result.scripts).toBe(2);
    expect(result.warnings).toEqual([
      { file: '/tmp/tool', missing: '/usr/bin/perl', kind: 'script-interpreter' },
    ]);
  });

  it('names a rootfs that does not exist', async () => {
    await expect(checkRootfs(join(tmp, 'nope'))).rejects.toThrow(
      `rootfs ${join(tmp, 'nope')} does not exist`,
    );
  });
});
