/** `devices` and `--device`: parsing and the checks made before anything runs. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { deviceCgroupRules, parseDeviceSpec, resolveDevices } from '../../src/devices/index.js';
import { ConfigError } from '../../src/errors.js';

describe('parseDeviceSpec', () => {
  it('reads PATH, PATH:ACCESS, HOST:SANDBOX and HOST:SANDBOX:ACCESS', () => {
    expect(parseDeviceSpec('/dev/fuse')).toEqual({ path: '/dev/fuse' });
    expect(parseDeviceSpec('/dev/fuse:r')).toEqual({ path: '/dev/fuse', access: 'r' });
    expect(parseDeviceSpec('/dev/sdb:/dev/disk0')).toEqual({ path: '/dev/sdb', sandboxPath: '/dev/disk0' });
    expect(parseDeviceSpec('/dev/sdb:/dev/disk0:rw')).toEqual({
      path: '/dev/sdb',
      sandboxPath: '/dev/disk0',
      access: 'rw',
    });
  });

  it('refuses empty parts, too many parts and an access it does not know', () => {
    for (const bad of ['', ':r', '/dev/a:', '/dev/a:/dev/b:/dev/c', '/dev/a:/dev/b:rwm', '/dev/a::r']) {
      expect(() => parseDeviceSpec(bad), bad).toThrow(/expected \/dev\/PATH/);
    }
  });
});

describe('resolveDevices', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'capsule-devspec-'));
    execFileSync('mknod', [join(dir, 'zero'), 'c', '1', '5']);
    execFileSync('mknod', [join(dir, 'loop9'), 'b', '7', '9']);
    writeFileSync(join(dir, 'file'), 'x');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const resolve = (devices: Parameters<typeof resolveDevices>[0]['devices']) =>
    resolveDevices({ devices }, '/nonexistent-rootfs', 'rootfs').devices;
  const error = (devices: Parameters<typeof resolveDevices>[0]['devices']): ConfigError => {
    try {
      resolve(devices);
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return e as ConfigError;
    }
    throw new Error('no error');
  };

  it("takes the host node's type and numbers, rw unless asked", () => {
    expect(
      resolve([
        `${join(dir, 'zero')}:/dev/myzero:r`,
        { path: join(dir, 'loop9'), sandboxPath: '/dev/a/b/loop9' },
      ]),
    ).toEqual([
      { hostPath: join(dir, 'zero'), target: '/dev/myzero', type: 'c', major: 1, minor: 5, access: 'r' },
      { hostPath: join(dir, 'loop9'), target: '/dev/a/b/loop9', type: 'b', major: 7, minor: 9, access: 'rw' },
    ]);
  });

  it('says what is wrong, naming the option', () => {
    expect(error([`${join(dir, 'missing')}:/dev/m`]).message).toMatch(
      /devices\[0\]: cannot stat .*missing on the host \(ENOENT\)/,
    );
    expect(error([`${join(dir, 'file')}:/dev/f`]).message).toMatch(/is not a device node/);
    expect(error(['relative/zero']).message).toMatch(/must be absolute/);
    expect(error([join(dir, 'zero')]).message).toMatch(/goes under the sandbox's \/dev/);
    expect(error([`${join(dir, 'zero')}:/dev/../etc/x`]).message).toMatch(/without '\.\.'/);
    expect(error([`${join(dir, 'zero')}:/dev/null`]).message).toMatch(
      /\/dev\/null is in every sandbox already/,
    );
    expect(error([`${join(dir, 'zero')}:/dev/pts/9`]).message).toMatch(/where capsule puts \/dev\/pts/);
    expect(error([`${join(dir, 'zero')}:/dev/a`, `${join(dir, 'loop9')}:/dev/a`]).message).toMatch(
      /asked twice/,
    );
    expect(error([`${join(dir, 'zero')}:/dev/a`, `${join(dir, 'loop9')}:/dev/a/b`]).message).toMatch(
      /cannot be a node and the directory of \/dev\/a\/b/,
    );
    expect(error([{ path: join(dir, 'zero'), sandboxPath: '/dev/z', access: 'x' as 'r' }]).option).toBe(
      'devices[0]',
    );
    expect(() => resolveDevices({ gpuLibraries: false }, '/', 'rootfs')).toThrow(/need gpus/);
    expect(error([{ path: join(dir, 'zero'), sandboxPath: 7 as unknown as string }]).message).toMatch(
      /must be a string or \{ path, sandboxPath\?, access\? \}/,
    );
    expect(error([42 as unknown as string]).option).toBe('devices[0]');
    expect(() => resolveDevices({ devices: '/dev/fuse' as unknown as string[] }, '/', 'rootfs')).toThrow(
      ConfigError,
    );
  });

  it('gives the devices cgroup the defaults, pts with devPts, and each device with m added', () => {
    const [zero] = resolve([`${join(dir, 'zero')}:/dev/myzero:r`]);
    expect(deviceCgroupRules([{ major: 1, minor: 3 }], [zero!], true)).toEqual([
      { type: 'c', major: 1, minor: 3, access: 'rwm' },
      { type: 'c', major: 5, minor: 2, access: 'rwm' },
      { type: 'c', major: 136, minor: '*', access: 'rwm' },
      { type: 'c', major: 1, minor: 5, access: 'rm' },
    ]);
  });
});
