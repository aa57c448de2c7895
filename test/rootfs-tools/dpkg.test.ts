/**
 * dpkg's database as rootfs-tools reads it: the status file's stanzas, the closure of
 * Depends/Pre-Depends with alternatives and virtual packages, the file lists; against a fixture
 * database, then against this host's.
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { packageClosure, packageFiles, readDpkgStatus } from '../../rootfs-tools/dpkg.js';
import { RootfsError } from '../../rootfs-tools/errors.js';
import { makeTempDir, removeDir } from './fixtures.js';

const STATUS = `Package: app
Status: install ok installed
Architecture: amd64
Version: 1.0
Pre-Depends: libc6 (>= 2.34)
Depends: runtime-virtual, tool-missing | tool-b:any (>= 2),
 data
Description: an app
 over two lines

Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same

Package: runtime-impl
Status: install ok installed
Architecture: all
Provides: runtime-virtual (= 3)
Depends: libc6

Package: tool-b
Status: install ok installed
Architecture: amd64

Package: data
Status: install ok installed
Architecture: all

Package: removed
Status: deinstall ok config-files
Architecture: amd64
`;

let admin: string;
beforeAll(async () => {
  admin = await makeTempDir('capsule-dpkg-test-');
  await mkdir(join(admin, 'info'));
  await writeFile(join(admin, 'status'), STATUS);
  await writeFile(
    join(admin, 'info', 'app.list'),
    '/.\n/usr\n/usr/bin\n/usr/bin/app\n/usr/share/doc/app/copyright\n/usr/share/man/man1/app.1.gz\n/usr/share/app/data.txt\n',
  );
  await writeFile(join(admin, 'info', 'libc6:amd64.list'), '/.\n/usr/lib/x86_64-linux-gnu/libc.so.6\n');
});
afterAll(() => removeDir(admin));

describe('the fixture database', () => {
  it('reads installed packages only, with continuation lines, Pre-Depends first, :any and versions dropped', async () => {
    const db = await readDpkgStatus({ adminDir: admin });
    expect(db.has('removed')).toBe(false);
    const app = db.get('app')!;
    expect(app.depends).toEqual([['libc6'], ['runtime-virtual'], ['tool-missing', 'tool-b'], ['data']]);
    expect(db.get('libc6:amd64')).toBe(db.get('libc6'));
    expect(db.get('runtime-impl')!.provides).toEqual(['runtime-virtual']);
  });

  it('closes over dependencies: the first installed alternative, a virtual package by its provider', async () => {
    const db = await readDpkgStatus({ adminDir: admin });
    expect(packageClosure(['app'], db).map((p) => p.name)).toEqual([
      'app',
      'libc6',
      'runtime-impl',
      'tool-b',
      'data',
    ]);
  });

  it('a package that is not installed is an error naming the apt-get command', async () => {
    const db = await readDpkgStatus({ adminDir: admin });
    expect(() => packageClosure(['nope', 'removed'], db)).toThrow(
      'package nope, removed is not installed on this host: apt-get install nope removed',
    );
  });

  it('lists files from NAME.list or NAME:ARCH.list, without documentation and manual pages', async () => {
    const db = await readDpkgStatus({ adminDir: admin });
    expect(await packageFiles(db.get('app')!, { adminDir: admin })).toEqual([
      '/usr',
      '/usr/bin',
      '/usr/bin/app',
      '/usr/share/app/data.txt',
    ]);
    expect(await packageFiles(db.get('libc6')!, { adminDir: admin })).toEqual([
      '/usr/lib/x86_64-linux-gnu/libc.so.6',
    ]);
    await expect(packageFiles(db.get('data')!, { adminDir: admin })).rejects.toThrow(RootfsError);
  });

  it('no status file: an error saying --package needs a Debian host', async () => {
    await expect(readDpkgStatus({ adminDir: join(admin, 'none') })).rejects.toThrow(
      /--package needs a Debian or Ubuntu host/,
    );
  });
});

describe.skipIf(!existsSync('/var/lib/dpkg/status'))("this host's database (Debian)", () => {
  it('python3 brings its stdlib package and libc6', async () => {
    const names = packageClosure(['python3'], await readDpkgStatus()).map((p) => p.name);
    expect(names[0]).toBe('python3');
    expect(names).toContain('libc6');
    expect(names.some((n) => /^libpython3\.\d+-stdlib$/.test(n))).toBe(true);
  });
});
