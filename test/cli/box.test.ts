/**
 * `capsule run --box DIR [--box-size SIZE]` and `--overlay [--overlay-size SIZE]` (issue 11 §4).
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

const rootfs = inject('rootfs');
const cli = join(import.meta.dirname, '../../dist/capsule.mjs');
const capsule = (args: string[]) => execa('node', [cli, ...args], { reject: false, stdin: 'ignore' });

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'capsule-cli-box-'));
  mkdirSync(join(dir, 'bare/bin'), { recursive: true });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function expectOneLine(stderr: string, pattern: RegExp) {
  expect(stderr.split('\n')).toHaveLength(1);
  expect(stderr).toMatch(/^capsule: /);
  expect(stderr).toMatch(pattern);
}

describe('capsule run --box', () => {
  it("gives a writable tmpfs owned by the sandbox's uid at the path asked, made if missing", async () => {
    const before = readdirSync(rootfs).sort();
    const r = await capsule([
      'run',
      '--box',
      '/work',
      '--box-size',
      '1m',
      rootfs,
      '/bin/sh',
      '-c',
      'busybox stat -c "%u %a" /work; echo hi > /work/f && cat /work/f; busybox dd if=/dev/zero of=/work/big bs=65536 count=32 2>&1 | busybox head -1',
    ]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe("65534 755\nhi\ndd: error writing '/work/big': No space left on device");
    expect(readdirSync(rootfs).sort()).toEqual(before);
  });

  it('says what is wrong in flags: a size without --box, a box under /tmp', async () => {
    const size = await capsule(['run', '--box-size', '1m', rootfs, '/bin/true']);
    expect(size.exitCode).toBe(125);
    expectOneLine(size.stderr, /^capsule: --box-size is --box's size cap: set --box too$/);
    const tmp = await capsule(['run', '--box', '/tmp/x', rootfs, '/bin/true']);
    expect(tmp.exitCode).toBe(125);
    expectOneLine(tmp.stderr, /^capsule: --box cannot be \/tmp\/x: not \/, nor under \/proc, \/dev or \/tmp/);
  });

  it('shows mount_overlay, make_mount_point and mount_box in capsule explain', async () => {
    const r = await capsule(['explain', '--box', '/work', rootfs, '/bin/true']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/mount_overlay .*fsopen\("overlay"\)/);
    expect(r.stdout + r.stderr).toMatch(/make_mount_point +mkdirat\("\/work", 0755\)/);
    expect(r.stdout + r.stderr).toMatch(/mount_box .*uid=65534/);
  });
});

describe('capsule run --overlay', () => {
  it('makes the root writable for the run only', async () => {
    const before = readdirSync(rootfs).sort();
    const r = await capsule([
      'run',
      '--overlay',
      '--uid',
      '0',
      '--host-ids',
      'shared',
      rootfs,
      '/bin/sh',
      '-c',
      'echo x > /new && cat /new',
    ]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('x');
    expect(readdirSync(rootfs).sort()).toEqual(before);
  });

  it('--overlay-size caps it, and says --overlay', async () => {
    const r = await capsule([
      'run',
      '--overlay-size',
      '1m',
      '--uid',
      '0',
      '--host-ids',
      'shared',
      rootfs,
      '/bin/sh',
      '-c',
      'busybox dd if=/dev/zero of=/big bs=65536 count=32',
    ]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/No space left on device/);
  });

  it('refuses --overlay with --writable-root, naming both flags', async () => {
    const r = await capsule(['run', '--overlay', '--writable-root', rootfs, '/bin/true']);
    expect(r.exitCode).toBe(125);
    expectOneLine(r.stderr, /^capsule: --overlay and --writable-root cannot be used together/);
  });

  it('with --writable-root, a missing mount point says what to do in flags', async () => {
    const r = await capsule(['run', '--writable-root', '--bind', `${dir}:/nowhere`, rootfs, '/bin/true']);
    expect(r.exitCode).toBe(125);
    expectOneLine(
      r.stderr,
      /has no \/nowhere .*with --writable-root capsule makes no mount point in the host directory: mkdir -p .*, or leave --writable-root off/,
    );
  });

  it('runs a rootfs that lacks /proc, /dev and /tmp', async () => {
    const bare = join(dir, 'bare');
    await execa('cp', ['/bin/busybox', join(bare, 'bin/busybox')]);
    const r = await capsule(['run', bare, '/bin/busybox', 'ls', '/']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('bin\ndev\nproc\ntmp');
    expect(readdirSync(bare)).toEqual(['bin']);
  });
});
