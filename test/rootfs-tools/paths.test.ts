import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hostPath, isFileIn, walk } from '../../rootfs-tools/paths.js';
import { makeTempDir, removeDir } from './fixtures.js';

describe('walk: path lookup under a root, links recorded', () => {
  let root: string;
  beforeAll(async () => {
    root = await makeTempDir();
    // A miniature usrmerge layout with an absolute link, as on Debian 12.
    await mkdir(join(root, 'usr/lib/x86_64-linux-gnu'), { recursive: true });
    await mkdir(join(root, 'usr/lib64'), { recursive: true });
    await writeFile(join(root, 'usr/lib/x86_64-linux-gnu/ld.so'), 'x');
    await symlink('usr/lib', join(root, 'lib'));
    await symlink('usr/lib64', join(root, 'lib64'));
    await symlink('/lib/x86_64-linux-gnu/ld.so', join(root, 'usr/lib64/ld.so'));
    await symlink('../../../../../../etc/passwd', join(root, 'usr/escape'));
    await symlink('loop2', join(root, 'loop1'));
    await symlink('loop1', join(root, 'loop2'));
  });
  afterAll(async () => removeDir(root));

  it('follows relative and absolute links inside the root and records each one', async () => {
    const r = await walk(root, '/lib64/ld.so');
    expect(r?.realPath).toBe('/usr/lib/x86_64-linux-gnu/ld.so');
    expect(r?.links).toEqual([
      { path: '/lib64', target: 'usr/lib64' },
      { path: '/usr/lib64/ld.so', target: '/lib/x86_64-linux-gnu/ld.so' },
      { path: '/lib', target: 'usr/lib' },
    ]);
    expect(r?.stats.isFile()).toBe(true);
  });

  it('never climbs above the root with ..', async () => {
    // /usr/escape -> ../../../../../../etc/passwd stays inside the root, where there is no etc/passwd.
    expect(await walk(root, '/usr/escape')).toBeNull();
    expect((await walk(root, '/../../usr/lib'))?.realPath).toBe('/usr/lib');
  });

  it('returns null for missing paths, files used as directories and link loops', async () => {
    expect(await walk(root, '/nope')).toBeNull();
    expect(await walk(root, '/lib/x86_64-linux-gnu/ld.so/more')).toBeNull();
    expect(await walk(root, '/loop1')).toBeNull();
    expect(await isFileIn(root, '/lib64/ld.so')).toBe(true);
    expect(await isFileIn(root, '/usr/lib')).toBe(false);
  });

  it('maps root paths onto the host', () => {
    expect(hostPath('/', '/usr/lib')).toBe('/usr/lib');
    expect(hostPath('/srv/box', '/usr/lib')).toBe('/srv/box/usr/lib');
  });
});
