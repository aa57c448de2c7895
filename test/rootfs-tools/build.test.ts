import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  chmod,
  lstat,
  mkdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { buildRootfs, MANIFEST_PATH } from '../../rootfs-tools/build.js';
import { RootfsError } from '../../rootfs-tools/errors.js';
import { encodeLdCache, readLdCache } from '../../rootfs-tools/ldcache.js';
import { PASSWD } from '../../rootfs-tools/skeleton.js';
import { compile, hasGcc, inChroot, isRoot, ldd, makeTempDir, removeDir, snapshot } from './fixtures.js';

let tmp: string;
beforeEach(async () => {
  tmp = await makeTempDir();
});
afterEach(async () => removeDir(tmp));

/** Every path `ldd` lists for a host program exists in the rootfs, at the same path. */
async function expectLddClosureIn(box: string, program: string): Promise<void> {
  for (const dep of await ldd(program)) {
    expect(dep.path, `${program} needs ${dep.name}`).not.toBeNull();
    expect(existsSync(join(box, dep.path ?? '')), `${dep.path} in ${box}`).toBe(true);
  }
}

describe('buildRootfs: layout', () => {
  it('lays out /bin/sh with its interpreter, libraries and link chains at host paths, plus the skeleton', async () => {
    const box = join(tmp, 'box');
    const r = await buildRootfs({ dir: box, programs: ['/bin/sh'] });
    expect(r.dir).toBe(box);
    await expectLddClosureIn(box, '/bin/sh');
    // usrmerge: /lib64 stays a link, and the loader's own link chain is copied link by link.
    expect((await lstat(join(box, 'lib64'))).isSymbolicLink()).toBe(true);
    expect(await readlink(join(box, 'lib64'))).toBe(await readlink('/lib64'));
    expect((await lstat(join(box, 'bin'))).isSymbolicLink()).toBe(true);
    expect(await readFile(join(box, 'etc/passwd'), 'utf8')).toBe(PASSWD);
    expect(await readFile(join(box, 'etc/group'), 'utf8')).toContain('nogroup:x:65534:');
    expect(await readFile(join(box, 'etc/nsswitch.conf'), 'utf8')).toMatch(/^passwd: files$/m);
    expect((await stat(join(box, 'tmp'))).mode & 0o7777).toBe(0o1777);
    for (const d of ['proc', 'sys', 'dev']) expect((await stat(join(box, d))).isDirectory()).toBe(true);
    expect(r.programs[0]).toMatchObject({ program: '/bin/sh', path: '/bin/sh', isStatic: false });
    expect(r.programs[0]?.libraries).toContain('/lib/x86_64-linux-gnu/libc.so.6');
    expect(r.libraries).toContain('/lib/x86_64-linux-gnu/libc.so.6');
    expect(r.added.files).toBe(r.total.files);
    expect(r.added.bytes).toBeGreaterThan(100_000);
    // Nothing is left next to the rootfs (staging is renamed into place).
    const { readdir } = await import('node:fs/promises');
    expect(await readdir(tmp)).toEqual(['box']);
  });

  it.skipIf(!isRoot)(
    'gives a rootfs where /bin/sh, id and whoami work as nobody (chroot; needs root)',
    async () => {
      const box = join(tmp, 'box');
      await buildRootfs({ dir: box, programs: ['/bin/sh', 'id', 'whoami'] });
      const r = await inChroot(box, ['/bin/sh', '-c', 'id; whoami']);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\nnobody\n');
    },
  );

  it('adds nothing for a static program but the program', async (ctx) => {
    const r0 = await buildRootfs({ dir: join(tmp, 'b'), programs: ['/usr/bin/busybox'] }).catch(() => null);
    if (!r0 || !r0.programs[0]?.isStatic)
      return ctx.skip('host has no static /usr/bin/busybox (busybox-static)');
    expect(r0.libraries).toEqual([]);
    expect(r0.programs[0]?.libraries).toEqual([]);
  });

  it('lays out python3 and its standard library with every extension module’s libraries', async (ctx) => {
    if (!existsSync('/usr/lib/python3.11')) ctx.skip('host has no /usr/lib/python3.11');
    const box = join(tmp, 'box');
    const r = await buildRootfs({
      dir: box,
      programs: ['/usr/bin/python3'],
      include: ['/usr/lib/python3.11'],
      hardlink: true,
    });
    await expectLddClosureIn(box, '/usr/bin/python3');
    const inc = r.includes[0];
    expect(inc?.elfFiles).toBeGreaterThan(10);
    const { readdir } = await import('node:fs/promises');
    for (const m of (await readdir('/usr/lib/python3.11/lib-dynload')).filter((f) => f.endsWith('.so'))) {
      await expectLddClosureIn(box, join('/usr/lib/python3.11/lib-dynload', m));
    }
    if (isRoot) {
      const run = await inChroot(box, ['/usr/bin/python3', '-c', 'import ssl, sqlite3, json; print(6*7)']);
      expect(run.stdout).toBe('42\n');
    }
  });
});

describe.skipIf(!hasGcc)('buildRootfs: fixtures', () => {
  async function fixtureProgram(): Promise<{ prog: string; lib: string; src: string }> {
    const src = join(tmp, 'src');
    await mkdir(join(src, 'lib'), { recursive: true });
    await mkdir(join(src, 'bin'), { recursive: true });
    const lib = await compile(join(src, 'lib', 'libfix.so.7'), 'int fix(void){return 42;}', [
      '-shared',
      '-fPIC',
      '-Wl,-soname,libfix.so.7',
    ]);
    const prog = await compile(
      join(src, 'bin', 'prog'),
      '#include <stdio.h>\nint fix(void); int main(void){printf("%d\\n", fix());return 0;}',
      ['-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib', lib],
    );
    return { prog, lib, src };
  }

  it('follows DT_RUNPATH with $ORIGIN, and the result runs without LD_LIBRARY_PATH', async () => {
    const { prog, lib } = await fixtureProgram();
    const box = join(tmp, 'box');
    const r = await buildRootfs({ dir: box, programs: [prog] });
    expect(r.programs[0]?.libraries).toContain(`${join(tmp, 'src', 'bin')}/../lib/libfix.so.7`);
    expect(existsSync(join(box, lib))).toBe(true);
    // Running it needs /proc (the loader reads /proc/self/exe to expand $ORIGIN for the main
    // program), so that check is in e2e.test.ts, under capsule, not under chroot(8) here.
  });

  it('keeps permissions, strips setuid/setgid, and never hard-links a setuid file', async () => {
    const { prog, src } = await fixtureProgram();
    const data = join(src, 'data.txt');
    await writeFile(data, 'x');
    await chmod(data, 0o640);
    await chmod(prog, 0o6755);
    const box = join(tmp, 'box');
    const r = await buildRootfs({ dir: box, programs: [prog], include: [data], hardlink: true });
    expect((await stat(join(box, prog))).mode & 0o7777).toBe(0o755);
    expect((await stat(join(box, prog))).ino).not.toBe((await stat(prog)).ino);
    expect((await stat(join(box, data))).mode & 0o7777).toBe(0o640);
    expect(r.strippedSetid).toEqual([prog]);
  });

  it('hard-links when asked and on the same file system, copies otherwise', async (ctx) => {
    const { prog, lib } = await fixtureProgram();
    const box = join(tmp, 'box');
    const linked = await buildRootfs({ dir: box, programs: [prog], hardlink: true });
    if ((await stat(tmp)).dev !== (await stat(lib)).dev) ctx.skip('temp dir is on another file system');
    expect((await stat(join(box, lib))).ino).toBe((await stat(lib)).ino);
    expect(linked.added.hardlinks).toBeGreaterThan(0);
    const copied = await buildRootfs({ dir: join(tmp, 'box2'), programs: [prog] });
    expect(copied.added.hardlinks).toBe(0);
    expect((await stat(join(tmp, 'box2', lib))).ino).not.toBe((await stat(lib)).ino);
  });

  it('is incremental: a second build adds nothing, a changed file is copied again, --clean starts over', async () => {
    const { prog, lib } = await fixtureProgram();
    const box = join(tmp, 'box');
    const first = await buildRootfs({ dir: box, programs: [prog, '/bin/sh'] });
    const before = await snapshot(box);
    const second = await buildRootfs({ dir: box, programs: [prog, '/bin/sh'] });
    expect(second.added).toEqual({ files: 0, bytes: 0, hardlinks: 0, symlinks: 0, dirs: 0 });
    expect(second.unchanged).toBeGreaterThanOrEqual(first.total.files);
    expect((await snapshot(box)).filter((l) => !l.includes(MANIFEST_PATH))).toEqual(
      before.filter((l) => !l.includes(MANIFEST_PATH)),
    );

    await compile(lib, 'int fix(void){return 43;}', ['-shared', '-fPIC', '-Wl,-soname,libfix.so.7']);
    await utimes(lib, new Date(), new Date(Date.now() + 5000));
    const third = await buildRootfs({ dir: box, programs: [prog, '/bin/sh'] });
    expect(third.added.files).toBe(1);
    expect(await readFile(join(box, lib))).toEqual(await readFile(lib));

    await writeFile(join(box, 'stray'), 'left by hand');
    await buildRootfs({ dir: box, programs: ['/bin/sh'], clean: true });
    expect(existsSync(join(box, 'stray'))).toBe(false);
    expect(existsSync(join(box, prog))).toBe(false);
    expect(existsSync(join(box, 'bin/sh'))).toBe(true);
  });

  it('writes an ld.so cache into the rootfs for libraries the host found through its cache', async () => {
    const { src } = await fixtureProgram();
    await mkdir(join(src, 'opt'));
    const lib = await compile(join(src, 'opt', 'libcached.so.3'), 'int cached(void){return 7;}', [
      '-shared',
      '-fPIC',
      '-Wl,-soname,libcached.so.3',
    ]);
    const prog = await compile(
      join(src, 'bin', 'usescache'),
      '#include <stdio.h>\nint cached(void); int main(void){printf("%d\\n", cached());return 0;}',
      [lib],
    );
    const hostCache = join(tmp, 'host-ld.so.cache');
    const hostEntries = await readLdCache('/etc/ld.so.cache');
    await writeFile(
      hostCache,
      encodeLdCache([...hostEntries, { name: 'libcached.so.3', path: lib, flags: 0x0303 }]),
    );
    const box = join(tmp, 'box');
    const r = await buildRootfs({ dir: box, programs: [prog], ldCachePath: hostCache });
    expect(r.programs[0]?.libraries).toContain(lib);
    const boxCache = await readLdCache(join(box, 'etc/ld.so.cache'));
    expect(boxCache.find((e) => e.name === 'libcached.so.3')?.path).toBe(lib);
    // The real loader, inside the rootfs, finds the library through the cache we wrote.
    if (isRoot) expect((await inChroot(box, [prog])).stdout).toBe('7\n');
  });

  it('follows a script’s #! interpreter, and #!/usr/bin/env NAME', async () => {
    const script = join(tmp, 'run.sh');
    await writeFile(script, '#!/bin/sh\necho hi\n');
    await chmod(script, 0o755);
    const envScript = join(tmp, 'tool');
    await writeFile(envScript, '#!/usr/bin/env python3\nprint(1)\n');
    await chmod(envScript, 0o755);
    const box = join(tmp, 'box');
    const r = await buildRootfs({ dir: box, programs: [script, envScript] });
    expect(r.programs.map((p) => p.path)).toEqual([
      script,
      '/bin/sh',
      envScript,
      '/usr/bin/env',
      '/usr/bin/python3',
    ]);
    expect(existsSync(join(box, 'usr/bin/dash'))).toBe(true);
    expect(existsSync(join(box, 'usr/bin/python3'))).toBe(true);
    if (isRoot) expect((await inChroot(box, [script])).stdout).toBe('hi\n');
  });

  it('brings the files a linker script names and the target of a link leading out of an included tree', async () => {
    const tree = join(tmp, 'tree');
    await mkdir(tree);
    await writeFile(
      join(tree, 'libfake.so'),
      '/* GNU ld script */\nGROUP ( /lib/x86_64-linux-gnu/libc.so.6 AS_NEEDED ( /lib64/ld-linux-x86-64.so.2 ) )\n',
    );
    await symlink('/usr/bin/dash', join(tree, 'dash-link'));
    const box = join(tmp, 'box');
    await buildRootfs({ dir: box, include: [tree] });
    expect(existsSync(join(box, 'lib/x86_64-linux-gnu/libc.so.6'))).toBe(true);
    expect(existsSync(join(box, 'lib64/ld-linux-x86-64.so.2'))).toBe(true);
    expect(await readlink(join(box, tree, 'dash-link'))).toBe('/usr/bin/dash');
    expect(existsSync(join(box, 'usr/bin/dash'))).toBe(true);
  });
});

describe('buildRootfs: bad input leaves the rootfs as it was', () => {
  async function existingBox(): Promise<{ box: string; before: string[] }> {
    const box = join(tmp, 'box');
    await buildRootfs({ dir: box, programs: ['/bin/sh'] });
    return { box, before: await snapshot(box) };
  }

  it('names a program that does not exist', async () => {
    const { box, before } = await existingBox();
    await expect(buildRootfs({ dir: box, programs: ['/bin/sh', '/no/such/prog'] })).rejects.toThrow(
      'program /no/such/prog does not exist',
    );
    await expect(buildRootfs({ dir: box, programs: ['no-such-command-xyz'] })).rejects.toThrow(
      /program no-such-command-xyz was not found in \/usr\/local\/bin:/,
    );
    expect(await snapshot(box)).toEqual(before);
  });

  it('names a file that is neither ELF nor a script', async () => {
    const { box, before } = await existingBox();
    const text = join(tmp, 'notes');
    await writeFile(text, 'hello');
    const err = await buildRootfs({ dir: box, programs: [text] }).catch((e: unknown) => e);
    expect(RootfsError.is(err) && err.code).toBe('NOT_ELF');
    expect((err as Error).message).toBe(`${text} is neither an ELF program nor a script starting with #!`);
    expect(await snapshot(box)).toEqual(before);
  });

  it.skipIf(!hasGcc)('names the missing library and who needs it; a new rootfs is not created', async () => {
    const lib = await compile(join(tmp, 'libgone.so.1'), 'int gone(void){return 1;}', [
      '-shared',
      '-fPIC',
      '-Wl,-soname,libgone.so.1',
    ]);
    const prog = await compile(join(tmp, 'needsgone'), 'int gone(void); int main(void){return gone();}', [
      lib,
    ]);
    await rm(lib);
    const { box, before } = await existingBox();
    const err = await buildRootfs({ dir: box, programs: [prog] }).catch((e: unknown) => e);
    expect(RootfsError.is(err) && err.code).toBe('UNRESOLVED');
    expect((err as Error).message).toContain(
      `libgone.so.1 (needed by ${prog}) not found; searched /lib/x86_64-linux-gnu`,
    );
    expect((err as Error).message).toContain('the rootfs was not changed');
    expect(await snapshot(box)).toEqual(before);
    await expect(buildRootfs({ dir: join(tmp, 'fresh'), programs: [prog] })).rejects.toThrow('libgone.so.1');
    const { readdir } = await import('node:fs/promises');
    expect((await readdir(tmp)).sort()).toEqual(['box', 'needsgone']);
  });

  it('rolls back what it wrote when a write fails half-way', async () => {
    const { box } = await existingBox();
    // A directory where a file must go makes the write of /usr/bin/python3's chain fail late.
    await mkdir(join(box, 'usr/bin/python3'), { recursive: true });
    const before = await snapshot(box);
    const err = await buildRootfs({ dir: box, programs: ['/usr/bin/python3', '/usr/bin/ls'] }).catch(
      (e: unknown) => e,
    );
    expect(RootfsError.is(err) && err.code).toBe('WRITE');
    expect((err as Error).message).toContain(`${join(box, 'usr/bin/python3')}`);
    expect(await snapshot(box)).toEqual(before);
  });

  it('refuses to build while another build holds the lock, and takes over a stale lock', async () => {
    const box = join(tmp, 'box');
    await writeFile(`${box}.capsule-lock`, `${process.pid}\n`); // a live pid: ours
    await expect(buildRootfs({ dir: box, programs: ['/bin/sh'] })).rejects.toThrow(
      `another capsule rootfs build (pid ${process.pid}) is writing ${box}; wait for it, or remove ${box}.capsule-lock`,
    );
    expect(existsSync(box)).toBe(false);
    await writeFile(`${box}.capsule-lock`, '2147483646\n'); // no such process
    await buildRootfs({ dir: box, programs: ['/bin/sh'] });
    expect(existsSync(`${box}.capsule-lock`)).toBe(false);
    expect(existsSync(join(box, 'bin/sh'))).toBe(true);
  });

  it('refuses / and a path that is a file', async () => {
    await expect(buildRootfs({ dir: '/', programs: ['/bin/sh'] })).rejects.toThrow(
      'refusing to build a rootfs at /',
    );
    const file = join(tmp, 'file');
    await writeFile(file, '');
    await expect(buildRootfs({ dir: file, programs: ['/bin/sh'] })).rejects.toThrow(
      `${file} exists and is not a directory`,
    );
  });
});
