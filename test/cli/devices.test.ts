/** `capsule run --device/--gpu/--no-gpu-libs`: parsing, the options they stand for, and one-line errors. */
import { join } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { execa } from 'execa';
import { describe, expect, inject, it } from 'vitest';

import { parseDevice, parseGpus, runOptionsFromFlags } from '../../src/cli/run.js';

const rootfs = inject('rootfs');
const cli = join(import.meta.dirname, '../../dist/capsule.mjs');
const capsule = (args: string[]) => execa('node', [cli, ...args], { reject: false, stdin: 'ignore' });

describe('--device and --gpu', () => {
  it('parse into the library options, repeatable', () => {
    const devices = parseDevice('/dev/net/tun:r', parseDevice('/dev/fuse'));
    expect(devices).toEqual([{ path: '/dev/fuse' }, { path: '/dev/net/tun', access: 'r' }]);
    expect(parseGpus('all')).toBe('all');
    expect(parseGpus('0,2')).toEqual([0, 2]);
    for (const bad of ['', '0,', 'x', '-1', '1 2'])
      expect(() => parseGpus(bad), bad).toThrow(InvalidArgumentError);
    expect(() => parseDevice('/dev/fuse:q')).toThrow(InvalidArgumentError);
    const o = runOptionsFromFlags('/r', ['/p'], { device: devices, gpu: [1], gpuLibs: false });
    expect([o.devices, o.gpus, o.gpuLibraries]).toEqual([devices, [1], false]);
    expect(runOptionsFromFlags('/r', ['/p'], { gpu: 'all', gpuLibs: true }).gpuLibraries).toBe(true);
    expect(runOptionsFromFlags('/r', ['/p'], {}).gpuLibraries).toBeUndefined();
    expect(runOptionsFromFlags('/r', ['/p'], { cdiDevice: ['a.com/b=c'] }).cdiDevices).toEqual(['a.com/b=c']);
  });

  it('run a sandbox with the device, read-only as asked', async () => {
    const r = await capsule(['run', '--device', '/dev/fuse:r', rootfs, '/probe', 'dev', '/dev/fuse']);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject([
      { path: '/dev/fuse', mode: 0o444, read: 'ok', write: 'EACCES' },
    ]);
  });

  it('on a machine without a GPU, --gpu is one clear line and status 125', async () => {
    const r = await capsule(['run', '--gpu', 'all', rootfs, '/probe', 'exit', '0']);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(/^capsule: --gpu all: no NVIDIA GPU found \(no \/dev\/nvidiactl\): [^\n]+$/);
  });

  it('--cdi-device names a device no spec has: one line', async () => {
    const r = await capsule([
      'run',
      '--cdi-device',
      'example.com/none=x',
      '--cdi-device',
      'bad',
      rootfs,
      '/probe',
    ]);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(
      /^capsule: CDI device example\.com\/none=x is not in any spec under \/etc\/cdi, \/var\/run\/cdi[^\n]*$/,
    );
  });

  it('a bad --device is one line naming the problem', async () => {
    const r = await capsule(['run', '--device', '/dev/nothing-here', rootfs, '/probe', 'exit', '0']);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(
      /^capsule: --device #1: cannot stat \/dev\/nothing-here on the host \(ENOENT\)[^\n]*$/,
    );
  });
});
