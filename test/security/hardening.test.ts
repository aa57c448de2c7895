/**
 * The hardening beyond seccomp, seen from inside: /proc's host-facing entries
 * masked or read-only, /sys absent unless asked and then read-only, the mount
 * flags, /tmp noexec when asked.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { run, type RunOptions } from '../../src/index.js';
import { cleanup, type Fixture, makeFixture } from './fixtures.js';

let f: Fixture;
beforeAll(async () => {
  f = await makeFixture(inject('probe'));
}, 120_000);
afterAll(() => cleanup(f));

function sh(script: string, extra: Partial<RunOptions> = {}) {
  return run({ rootfs: f.rootfs, argv: ['/bin/sh', '-c', script], ...extra });
}

/** Mount point -> options, from /proc/self/mountinfo inside the sandbox. */
async function mounts(
  extra: Partial<RunOptions> = {},
): Promise<Map<string, { opts: string; fstype: string }>> {
  const r = await sh('cat /proc/self/mountinfo', extra);
  const m = new Map<string, { opts: string; fstype: string }>();
  for (const line of r.stdout.trim().split('\n')) {
    const [left, right] = line.split(' - ');
    const f = left!.split(' ');
    m.set(f[4]!, { opts: f[5]!, fstype: right!.split(' ')[0]! });
  }
  return m;
}

describe('/proc', () => {
  it('hides what leaks the host: /dev/null over files, an empty read-only tmpfs over directories', async () => {
    const m = await mounts();
    for (const file of ['/proc/keys', '/proc/timer_list', '/proc/interrupts']) {
      if (!m.has(file)) continue; /* absent from this kernel */
      expect(['devtmpfs', 'tmpfs']).toContain(m.get(file)!.fstype); /* the host's /dev/null */
    }
    expect(m.get('/proc/timer_list')).toBeDefined();
    if (m.has('/proc/acpi'))
      expect(m.get('/proc/acpi')).toEqual({ opts: expect.stringMatching(/^ro,/), fstype: 'tmpfs' });
    const r = await sh('wc -c < /proc/timer_list; ls /proc/acpi | wc -l');
    expect(r.stdout.split('\n').map((s) => s.trim())).toEqual(['0', '0', '']);
  });

  it('/proc/sys, /proc/irq, /proc/bus, /proc/fs are read-only, even for uid 0', async () => {
    const m = await mounts();
    for (const dir of ['/proc/sys', '/proc/irq', '/proc/bus', '/proc/fs']) {
      expect(m.get(dir)?.opts, dir).toMatch(/^ro,nosuid,nodev,noexec/);
    }
    const r = await sh('echo core > /proc/sys/kernel/core_pattern', { uid: 0, gid: 0 });
    expect(r.stderr).toContain('Read-only file system');
  });

  it('/proc itself stays nosuid, nodev, noexec', async () => {
    expect((await mounts()).get('/proc')?.opts).toMatch(/nosuid,nodev,noexec/);
  });
});

describe('/sys', () => {
  it('is not mounted unless asked', async () => {
    const m = await mounts();
    expect([...m.keys()].filter((k) => k.startsWith('/sys'))).toEqual([]);
    expect((await sh('ls -A /sys | wc -l')).stdout.trim()).toBe('0');
  });

  it('when asked, is read-only with /sys/firmware masked', async () => {
    const m = await mounts({ sys: true });
    expect(m.get('/sys')).toEqual({
      opts: expect.stringMatching(/^ro,nosuid,nodev,noexec/),
      fstype: 'sysfs',
    });
    if (m.has('/sys/firmware')) expect(m.get('/sys/firmware')!.fstype).toBe('tmpfs');
    const r = await sh('ls /sys/kernel >/dev/null && echo x > /sys/kernel/uevent_helper', {
      sys: true,
      uid: 0,
      gid: 0,
    });
    expect(r.stderr).toContain('Read-only file system');
  });

  it('asking for it without a /sys in the rootfs makes the mount point in an overlay, not in the rootfs', async () => {
    const r = await run({
      rootfs: inject('rootfs'),
      argv: ['/bin/sh', '-c', 'grep " /sys " /proc/self/mountinfo'],
      sys: true,
    });
    expect(r.stdout).toMatch(/ \/sys ro,nosuid,nodev,noexec.* - sysfs /);
    expect(existsSync(join(inject('rootfs'), 'sys'))).toBe(false);
    /* With writableRoot the root is the host directory, which capsule never writes into. */
    await expect(
      run({ rootfs: inject('rootfs'), argv: ['/bin/true'], sys: true, writableRoot: true }),
    ).rejects.toThrow(/has no \/sys \(sysfs is mounted there/);
  });
});

describe('mount flags', () => {
  it('root read-only, nosuid, nodev; /tmp nosuid, nodev; /dev read-only, noexec', async () => {
    const m = await mounts();
    expect(m.get('/')?.opts).toMatch(/^ro,nosuid,nodev/);
    expect(m.get('/tmp')?.opts).toMatch(/^rw,nosuid,nodev/);
    expect(m.get('/dev')?.opts).toMatch(/^ro,nosuid,noexec/);
  });

  it('tmpNoexec: a program copied into /tmp cannot run', async () => {
    const script = 'cp /escape/seccomp_tool /tmp/t && /tmp/t hello';
    expect((await sh(script)).stdout).toBe('hello\n');
    const r = await sh(script, { tmpNoexec: true });
    expect(r.stderr).toContain('Permission denied');
    expect(r.exitCode).toBe(126);
  });
});
