/**
 * CDI specs (JSON) in temp dirs standing for /etc/cdi and /var/run/cdi: what is applied, seen
 * from inside a sandbox, and what is refused, by name.
 */
import { chmodSync, cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { cdiEdits, parseCdiName } from '../../src/devices/index.js';
import { ConfigError, run } from '../../src/index.js';

const rootfs = inject('rootfs');

let dir: string;
let etc: string;
let varRun: string;
let box: string;
let conf: string;

const spec = (kind: string, devices: unknown[], containerEdits?: unknown) =>
  JSON.stringify({ cdiVersion: '0.6.0', kind, devices, ...(containerEdits ? { containerEdits } : {}) });

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'capsule-cdi-'));
  etc = join(dir, 'etc-cdi');
  varRun = join(dir, 'run-cdi');
  mkdirSync(etc);
  mkdirSync(varRun);
  conf = join(dir, 'vendor.conf');
  writeFileSync(conf, 'from the host\n');
  writeFileSync(
    join(etc, 'example.json'),
    spec(
      'example.com/dev',
      [
        {
          name: 'fuse',
          containerEdits: {
            deviceNodes: [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, permissions: 'rwm' }],
            env: ['FUSE=1'],
          },
        },
        { name: 'tun', containerEdits: { deviceNodes: [{ path: '/dev/net/tun', permissions: 'rw' }] } },
      ],
      {
        env: ['VENDOR=example'],
        mounts: [{ hostPath: conf, containerPath: '/etc/vendor.conf', options: ['ro', 'bind'] }],
      },
    ),
  );
  // The same device in the directory of higher priority: read-only there.
  writeFileSync(
    join(varRun, 'example.json'),
    spec('example.com/dev', [
      { name: 'tun', containerEdits: { deviceNodes: [{ path: '/dev/net/tun', permissions: 'r' }] } },
    ]),
  );
  writeFileSync(
    join(etc, 'refused.json'),
    spec('refused.com/x', [
      {
        name: 'hooked',
        containerEdits: { hooks: [{ hookName: 'createContainer', path: '/usr/bin/vendor-hook' }] },
      },
      { name: 'moded', containerEdits: { deviceNodes: [{ path: '/dev/fuse', fileMode: 0o660 }] } },
      {
        name: 'noexec',
        containerEdits: {
          mounts: [{ hostPath: conf, containerPath: '/etc/vendor.conf', options: ['noexec'] }],
        },
      },
      { name: 'mknod-only', containerEdits: { deviceNodes: [{ path: '/dev/fuse', permissions: 'm' }] } },
      { name: 'env', containerEdits: { env: ['PATH=/vendor/bin'] } },
      {
        name: 'numbers',
        containerEdits: { deviceNodes: [{ path: '/dev/fuse', type: 'c', major: 10, minor: 230 }] },
      },
    ]),
  );
  writeFileSync(join(etc, 'yaml-vendor.yaml'), 'cdiVersion: 0.6.0\nkind: yaml.com/x\n');
  box = mkdtempSync(join(tmpdir(), 'capsule-cdibox-'));
  chmodSync(box, 0o755);
  cpSync(rootfs, box, { recursive: true, verbatimSymlinks: true });
  writeFileSync(join(box, 'etc/vendor.conf'), 'the rootfs copy\n');
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(box, { recursive: true, force: true });
});

describe('CDI', () => {
  it('reads qualified names only', () => {
    expect(parseCdiName('nvidia.com/gpu=0')).toEqual({ kind: 'nvidia.com/gpu', device: '0' });
    expect(parseCdiName('example.com/dev=all')).toEqual({ kind: 'example.com/dev', device: 'all' });
    for (const bad of ['gpu=0', 'nvidia.com/gpu', 'nvidia.com/gpu=', '/gpu=0'])
      expect(() => parseCdiName(bad), bad).toThrow(ConfigError);
  });

  it("applies a device's edits and its spec's common ones once; the later directory wins", () => {
    expect(cdiEdits(['example.com/dev=fuse', 'example.com/dev=tun'], [etc, varRun])).toEqual({
      devices: [
        {
          path: '/dev/fuse',
          sandboxPath: '/dev/fuse',
          access: 'rw',
          expect: { type: 'c', major: 10, minor: 229 },
        },
        { path: '/dev/net/tun', sandboxPath: '/dev/net/tun', access: 'r', expect: {} },
      ],
      mounts: [{ hostPath: conf, containerPath: '/etc/vendor.conf', readOnly: true }],
      env: ['VENDOR=example', 'FUSE=1'],
    });
  });

  it('a sandbox gets the nodes, the bind and the variables', async () => {
    const r = await run({
      rootfs: box,
      argv: [
        '/bin/sh',
        '-c',
        'echo "$VENDOR $FUSE $PATH"; cat /etc/vendor.conf; exec /probe dev /dev/fuse /dev/net/tun /dev/kvm',
      ],
      cdiDevices: ['example.com/dev=fuse', 'example.com/dev=tun'],
      cdiSpecDirs: [etc, varRun],
    });
    expect(r.stderr).toBe('');
    const [vars, file, dev] = r.stdout.split('\n');
    expect(vars).toBe('example 1 /usr/local/bin:/usr/bin:/bin');
    expect(file).toBe('from the host');
    expect(JSON.parse(dev!)).toMatchObject([
      { path: '/dev/fuse', major: 10, minor: 229, mode: 0o666, read: 'ok', write: 'ok' },
      { path: '/dev/net/tun', major: 10, minor: 200, mode: 0o444, read: 'ok', write: 'EACCES' },
      { path: '/dev/kvm', stat: 'ENOENT' },
    ]);
  });

  it('refuses, by name, what capsule does not apply', async () => {
    const refused = (name: string, extra: Record<string, unknown> = {}) =>
      run({
        rootfs: box,
        argv: ['/probe', 'exit', '0'],
        cdiDevices: [name],
        cdiSpecDirs: [etc, varRun],
        ...extra,
      });
    await expect(refused('refused.com/x=hooked')).rejects.toThrow(
      /asks for hooks .*capsule runs no CDI hooks/,
    );
    await expect(refused('refused.com/x=moded')).rejects.toThrow(
      /sets "fileMode", which capsule does not support/,
    );
    await expect(refused('refused.com/x=noexec')).rejects.toThrow(/options capsule does not apply: noexec/);
    await expect(refused('refused.com/x=mknod-only')).rejects.toThrow(/read or write access is needed/);
    await expect(refused('refused.com/x=numbers')).rejects.toThrow(
      /gives \/dev\/fuse as \{"type":"c","major":10,"minor":230\}, but \/dev\/fuse on the host is c 10:229/,
    );
    await expect(refused('yaml.com/x=a')).rejects.toThrow(/JSON specs only, and skipped .*yaml-vendor\.yaml/);
    await expect(refused('example.com/dev=missing')).rejects.toThrow(/is not in any spec under/);
    await expect(refused('refused.com/x=env', { env: { PATH: '/bin' } })).rejects.toThrow(
      /env PATH is set both by the env option and by a CDI device/,
    );
    const error = await refused('refused.com/x=hooked').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).option).toBe('cdiDevices');
  });

  it("a spec's variable replaces the default PATH, when the caller set no env", async () => {
    const r = await run({
      rootfs: box,
      argv: ['/bin/sh', '-c', 'echo $PATH'],
      cdiDevices: ['refused.com/x=env'],
      cdiSpecDirs: [etc],
    });
    expect(r.stdout).toBe('/vendor/bin\n');
  });
});
