/**
 * Host devices in a real sandbox, seen from inside by the probe: the nodes asked for are there
 * with the host's numbers and the access asked, undeclared ones are absent, the default nodes
 * keep working, and on cgroup v1 the sandbox's devices cgroup lists exactly what it was given.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';

import { detectCgroups } from '../../src/cgroup/detect.js';
import { detectV2Features } from '../../src/cgroup/v2.js';
import { run, SetupError } from '../../src/index.js';
import { capsuleCgroupsOnHost } from '../cgroup/helpers.js';
import { mountCount } from '../helpers/host.js';
import { probeDev } from './helpers.js';

const rootfs = inject('rootfs');

const v1Devices = detectCgroups().controllers.devices?.version === 1;
const DEFAULTS = ['/dev/null', '/dev/zero', '/dev/full', '/dev/random', '/dev/urandom'];
/** The default nodes' rules as the kernel lists them (/dev/tty, when the host has it, too). */
const defaultRules = ['c 1:3 rwm', 'c 1:5 rwm', 'c 1:7 rwm', 'c 1:8 rwm', 'c 1:9 rwm', 'c 5:0 rwm'];

describe('--device in a sandbox', () => {
  it('gives /dev/fuse read-write and /dev/net/tun read-only, nested; nothing else appears', async () => {
    const { seen, devicesList, asRoot } = await probeDev(
      { rootfs, devices: ['/dev/fuse', '/dev/net/tun:r'] },
      ['/dev/fuse', '/dev/net/tun', '/dev/kvm', '/dev/loop-control', '/dev/mem', ...DEFAULTS],
      ['/dev/net/tun', '/dev/fuse', '/dev/kvm'],
    );
    // The host's nodes are 0600 root: the sandbox's nobody opens them through the mode asked.
    expect(seen.get('/dev/fuse')).toEqual({
      path: '/dev/fuse',
      stat: 'ok',
      type: 'c',
      major: 10,
      minor: 229,
      mode: 0o666,
      read: 'ok',
      write: 'ok',
    });
    const tun = seen.get('/dev/net/tun')!;
    expect([tun.type, tun.major, tun.minor, tun.mode]).toEqual(['c', 10, 200, 0o444]);
    expect(tun.read).toBe('ok');
    expect(tun.write).toBe('EACCES');
    for (const absent of ['/dev/kvm', '/dev/loop-control', '/dev/mem'])
      expect(seen.get(absent)!.stat).toBe('ENOENT');
    for (const d of DEFAULTS) expect([d, seen.get(d)!.read, seen.get(d)!.write]).toEqual([d, 'ok', 'ok']);
    if (v1Devices) {
      // As root (so not the mode) in the sandbox's own devices cgroup: the cgroup says r only.
      expect(Object.fromEntries(asRoot)).toEqual({
        '/dev/net/tun': { read: 'ok', write: 'EPERM' },
        '/dev/fuse': { read: 'ok', write: 'ok' },
        '/dev/kvm': { read: 'EPERM', write: 'EPERM' },
      });
      expect(devicesList!.trim().split('\n').sort()).toEqual(
        [...defaultRules, 'c 10:229 rwm', 'c 10:200 rm'].sort(),
      );
    }
  });

  it('puts a device at another path with HOST:SANDBOX, write-only with :w', async () => {
    const { seen } = await probeDev(
      { rootfs, devices: [{ path: '/dev/fuse', sandboxPath: '/dev/x/y/fuse', access: 'w' }] },
      ['/dev/x/y/fuse', '/dev/fuse'],
    );
    expect(seen.get('/dev/x/y/fuse')).toMatchObject({
      major: 10,
      minor: 229,
      mode: 0o222,
      read: 'EACCES',
      write: 'ok',
    });
    expect(seen.get('/dev/fuse')!.stat).toBe('ENOENT');
  });

  it.skipIf(!existsSync('/dev/loop0'))('gives a block device (an unused loop device) read-only', async () => {
    const { seen, devicesList } = await probeDev({ rootfs, devices: ['/dev/loop0:/dev/disk0:r'] }, [
      '/dev/disk0',
      '/dev/loop0',
      '/dev/vda',
    ]);
    expect(seen.get('/dev/disk0')).toMatchObject({
      type: 'b',
      major: 7,
      minor: 0,
      mode: 0o444,
      write: 'EACCES',
    });
    expect(seen.get('/dev/disk0')!.read).not.toMatch(/^(EACCES|EPERM)$/); // past the mode and the cgroup
    expect(seen.get('/dev/loop0')!.stat).toBe('ENOENT');
    expect(seen.get('/dev/vda')!.stat).toBe('ENOENT');
    if (v1Devices) expect(devicesList).toContain('b 7:0 rm');
  });

  it('the sandbox cannot add a node: no CAP_MKNOD, and /dev is read-only', async () => {
    const r = await run({
      rootfs,
      argv: ['/probe', 'mknod', '/dev/kvm', '10', '232'],
      devices: ['/dev/fuse'],
    });
    expect(r.stdout.trim()).toMatch(/^(EPERM|EROFS)$/);
    const tmp = await run({
      rootfs,
      argv: ['/probe', 'mknod', '/tmp/kvm', '10', '232'],
      devices: ['/dev/fuse'],
    });
    expect(tmp.stdout.trim()).toBe('EPERM');
  });

  it.skipIf(!v1Devices)(
    'a pooled cgroup serves the next run with its own list only; a run without devices is not gated',
    async () => {
      const first = await probeDev({ rootfs, devices: ['/dev/fuse'] }, ['/dev/fuse']);
      expect(first.devicesList).toContain('c 10:229 rwm');
      const second = await probeDev({ rootfs, devices: ['/dev/net/tun'] }, ['/dev/fuse', '/dev/net/tun']);
      expect(second.devicesList).not.toContain('10:229');
      expect(second.devicesList).toContain('c 10:200 rwm');
      expect(second.seen.get('/dev/fuse')!.stat).toBe('ENOENT');
      const none = await probeDev({ rootfs }, ['/dev/null']);
      expect(none.devicesList).toBeNull();
      expect(none.seen.get('/dev/null')!.write).toBe('ok');
    },
  );

  it('with a private devpts, its nodes are allowed too', async () => {
    const { seen, devicesList } = await probeDev({ rootfs, devices: ['/dev/fuse'], devPts: true }, [
      '/dev/ptmx',
    ]);
    expect(seen.get('/dev/ptmx')!.read).toBe('ok');
    if (v1Devices) expect(devicesList).toContain('c 136:* rwm');
  });

  it('a node that cannot be made fails the run at make_device_node, naming the path and errno', async () => {
    const long = `/dev/${'x'.repeat(300)}`;
    const error = await run({ rootfs, argv: ['/probe', 'exit', '0'], devices: [`/dev/fuse:${long}`] }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SetupError);
    expect(error).toMatchObject({ step: 'make_device_node', syscall: 'mknodat', code: 'ENAMETOOLONG' });
    expect((error as SetupError).message).toMatch(
      /^make_device_node failed: mknodat\(.*x{100}.*\): File name too long/,
    );
  });

  it("/proc/driver (where CUDA reads /proc/driver/nvidia) is the host's, not masked", async () => {
    const r = await run({
      rootfs,
      argv: ['/bin/sh', '-c', '/probe open /proc/driver; cat /proc/self/mountinfo'],
    });
    const [open, ...mounts] = r.stdout.trim().split('\n');
    expect(open).toBe('ok');
    expect(mounts.some((m) => m.includes(' /proc/driver'))).toBe(false); // nothing mounted over it
    expect(mounts.some((m) => m.includes(' /proc ') && m.includes(' - proc '))).toBe(true);
  });

  it('leaves no mount and no cgroup behind', async () => {
    const mounts = mountCount();
    // This process's sandbox cgroups (named <pid>-<start>-<n>), pooled for the next run.
    const ours = () =>
      capsuleCgroupsOnHost().filter((p) => p.split('/').pop()!.startsWith(`${process.pid}-`));
    await probeDev({ rootfs, devices: ['/dev/fuse', '/dev/net/tun:r'] }, ['/dev/fuse']); // the shape, pooled
    const cgroups = ours().length;
    // Pooled, except where a v2 memory.peak cannot be reset (5.19 to 6.11): then removed.
    const memory = detectCgroups().controllers.memory;
    if (memory && detectV2Features(join(memory.mountPoint, 'capsule')).peak !== 'fixed')
      expect(cgroups).toBeGreaterThan(0);
    await probeDev({ rootfs, devices: ['/dev/fuse', '/dev/net/tun:r'] }, ['/dev/fuse']);
    expect(mountCount()).toBe(mounts);
    // None is added by a run of a shape seen before: the pooled one served it and came back.
    expect(ours().length).toBe(cgroups);
  });
});
