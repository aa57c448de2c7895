/**
 * Writable places that never touch the rootfs (issue 11 §4): the box (a tmpfs work
 * directory owned by the sandbox's uid, for one run), mount points the rootfs lacks (made
 * in an overlay of it), and overlay: true (the whole root writable, changes in a tmpfs
 * thrown away at the end). Every test that writes checks the host's rootfs directory is
 * exactly as it was: every path, its type, mode, owner, size and content.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statfsSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ConfigError, run, SetupError } from '../src/index.js';
import { mountCount } from './helpers/host.js';
import { BUSYBOX, makeBusyboxRootfs } from './helpers/rootfs.js';

const MiB = 1024 * 1024;
let dir: string;
let rootfs: string;
/** A rootfs with nothing but busybox: no /proc, /dev, /tmp or /etc. */
let bare: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'capsule-box-'));
  rootfs = join(dir, 'rootfs');
  mkdirSync(rootfs);
  makeBusyboxRootfs(rootfs, BUSYBOX);
  /* A directory anyone may write, for overlay writes by nobody. */
  mkdirSync(join(rootfs, 'data'));
  chmodSync(join(rootfs, 'data'), 0o777);
  writeFileSync(join(rootfs, 'data/kept'), 'original\n');
  bare = join(dir, 'bare');
  mkdirSync(join(bare, 'bin'), { recursive: true });
  execFileSync('cp', [BUSYBOX, join(bare, 'bin/busybox')]);
  symlinkSync('busybox', join(bare, 'bin/sh'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every path under `root` with its type, mode, owner, size, mtime and a hash of its content. */
function snapshot(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    const path = join(root, rel);
    const st = lstatSync(path);
    let content = '';
    if (st.isFile()) content = createHash('sha256').update(readFileSync(path)).digest('hex');
    else if (st.isSymbolicLink()) content = readlinkSync(path);
    out.push(`${rel} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.mtimeMs} ${content}`);
    if (st.isDirectory()) for (const name of readdirSync(path).sort()) walk(join(rel, name));
  };
  walk('.');
  return out;
}

const sh = (script: string) => ['/bin/sh', '-c', script];

describe('box', () => {
  it('is a tmpfs owned by the sandbox uid and gid, writable, and runs what is written there', async () => {
    const before = snapshot(rootfs);
    const r = await run({
      rootfs,
      box: '/box',
      argv: sh(
        'busybox stat -c "%u %g %a" /box; echo hi > /box/f && cat /box/f; ' +
          'busybox cp /bin/busybox /box/echo && /box/echo ran; ' +
          'grep " /box " /proc/self/mountinfo',
      ),
    });
    expect(r.stderr).toBe('');
    const lines = r.stdout.trim().split('\n');
    expect(lines.slice(0, 3)).toEqual(['65534 65534 755', 'hi', 'ran']);
    /* tmpfs, nosuid and nodev, not noexec, with its size cap. */
    expect(lines[3]).toMatch(/ \/box rw,nosuid,nodev[, ].* - tmpfs tmpfs rw,.*size=65536k/);
    expect(lines[3]).not.toMatch(/noexec/);
    expect(snapshot(rootfs)).toEqual(before);
  });

  it('belongs to the uid and gid asked, with host ids shared or unique', async () => {
    for (const hostIds of ['unique', 'shared'] as const) {
      const r = await run({
        rootfs,
        box: '/work/box',
        uid: 1000,
        gid: 1001,
        hostIds,
        argv: sh('busybox stat -c "%u %g" /work/box; touch /work/box/x && echo ok'),
      });
      expect(r.stdout).toBe('1000 1001\nok\n');
    }
  });

  it('exists for one run only', async () => {
    const first = await run({ rootfs, box: '/box', argv: sh('echo 1 > /box/left; ls /box') });
    expect(first.stdout).toBe('left\n');
    const second = await run({ rootfs, box: '/box', argv: sh('ls -A /box; echo end') });
    expect(second.stdout).toBe('end\n');
    expect(readdirSync(rootfs)).not.toContain('box');
  });

  it('is capped at boxSizeBytes (ENOSPC) and in inodes as /tmp is', async () => {
    const r = await run({
      rootfs,
      box: '/box',
      boxSizeBytes: MiB,
      argv: sh('busybox dd if=/dev/zero of=/box/big bs=65536 count=32'),
    });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/No space left on device/);
    /* 4 MiB gives 1024 inodes: the 1024th empty file fails. */
    const n = await run({
      rootfs,
      box: '/box',
      boxSizeBytes: 4 * MiB,
      argv: sh(
        'i=0; while [ $i -lt 1100 ]; do echo -n > /box/f$i || { echo stopped at $i; exit 0; }; i=$((i+1)); done',
      ),
    });
    expect(n.stdout).toMatch(/^stopped at 10[0-2]\d$/m);
    expect(n.stderr).toMatch(/No space left on device/);
  });

  it('is made where the rootfs lacks it, and binds may go inside it', async () => {
    const before = snapshot(rootfs);
    const source = join(dir, 'inputs');
    mkdirSync(source, { recursive: true });
    writeFileSync(join(source, 'main.c'), 'int main(void){return 0;}\n');
    const r = await run({
      rootfs,
      box: '/judge/box',
      binds: [{ source, target: '/judge/box/src/in' }],
      argv: sh('cat /judge/box/src/in/main.c; echo out > /judge/box/a.out && ls /judge/box; touch /judge/x'),
    });
    expect(r.stdout).toBe('int main(void){return 0;}\na.out\nsrc\n');
    expect(r.stderr).toBe('touch: /judge/x: Read-only file system\n');
    expect(snapshot(rootfs)).toEqual(before);
  });

  it('shows its steps in explain: mount_overlay, make_mount_point, mount_box', async () => {
    const r = await run({ rootfs, box: '/box', argv: ['/bin/true'], explain: true });
    const steps = r.explain!.map((s) => s.step);
    expect(steps).toContain('mount_overlay');
    expect(steps).toContain('mount_box');
    const made = r.explain!.filter((s) => s.step === 'make_mount_point');
    expect(made.map((s) => s.call)).toEqual(['mkdirat("/box", 0755)']);
    expect(steps.indexOf('mount_overlay')).toBeLessThan(steps.indexOf('make_mount_point'));
    expect(steps.indexOf('make_mount_point')).toBeLessThan(steps.indexOf('remount_root'));
    expect(steps.indexOf('mount_tmp')).toBeLessThan(steps.indexOf('mount_box'));
    /* With the mount point in the rootfs, no overlay is made: it costs nothing. */
    const plain = await run({ rootfs, box: '/data', argv: ['/bin/true'], explain: true });
    expect(plain.explain!.map((s) => s.step)).not.toContain('mount_overlay');
    expect(plain.explain!.map((s) => s.step)).toContain('mount_box');
  });

  it('refuses bad paths, a size without a box, and / or capsule mounts', async () => {
    const cases: [Parameters<typeof run>[0], string, RegExp][] = [
      [{ rootfs, argv: ['/bin/true'], box: 'box' }, 'box', /box must be an absolute path/],
      [{ rootfs, argv: ['/bin/true'], box: '/' }, 'box', /box cannot be \//],
      [{ rootfs, argv: ['/bin/true'], box: '/tmp/b' }, 'box', /under \/proc, \/dev or \/tmp/],
      [{ rootfs, argv: ['/bin/true'], box: '/a/../b' }, 'box', /'\.\.'/],
      [{ rootfs, argv: ['/bin/true'], boxSizeBytes: MiB }, 'boxSizeBytes', /set box too/],
      [{ rootfs, argv: ['/bin/true'], box: '/b', boxSizeBytes: 5 }, 'boxSizeBytes', /from 4096/],
      [
        { rootfs, argv: ['/bin/true'], box: '/b', binds: [{ source: dir, target: '/b' }] },
        'binds[0]',
        /cannot bind over \/b: box is mounted there/,
      ],
    ];
    for (const [options, option, message] of cases) {
      const e = await run(options).catch((x: unknown) => x);
      expect(e, option).toBeInstanceOf(ConfigError);
      expect((e as ConfigError).option).toBe(option);
      expect((e as ConfigError).message).toMatch(message);
    }
  });
});

describe('mount points the rootfs lacks', () => {
  it('are made in an overlay: a bind to a missing directory and file, the rootfs untouched', async () => {
    const before = snapshot(rootfs);
    const source = join(dir, 'src-dir');
    mkdirSync(source, { recursive: true });
    writeFileSync(join(source, 'hello'), 'from the host\n');
    const file = join(dir, 'src-file');
    writeFileSync(file, 'a file\n');
    const r = await run({
      rootfs,
      binds: [
        { source, target: '/opt/deep/data' },
        { source: file, target: '/etc/missing.conf' },
      ],
      argv: sh(
        'cat /opt/deep/data/hello /etc/missing.conf; ls /opt; touch /opt/x; grep " / " /proc/self/mountinfo',
      ),
    });
    const lines = r.stdout.trim().split('\n');
    expect(lines.slice(0, 3)).toEqual(['from the host', 'a file', 'deep']);
    expect(r.stderr).toBe('touch: /opt/x: Read-only file system\n');
    /* The root is an overlay, read-only. */
    expect(lines[3]).toMatch(/ \/ ro,nosuid,nodev.* - overlay /);
    expect(snapshot(rootfs)).toEqual(before);
  });

  it('makes /proc, /dev and /tmp too: a directory with only a static program is a rootfs', async () => {
    const before = snapshot(bare);
    const r = await run({ rootfs: bare, argv: ['/bin/sh', '-c', 'echo $$; busybox ls /; echo x > /tmp/x'] });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('2\nbin\ndev\nproc\ntmp\n');
    expect(snapshot(bare)).toEqual(before);
  });

  it('refuses a symlink on the way to a missing target, naming the option', async () => {
    symlinkSync('/bin', join(rootfs, 'linked'));
    try {
      for (const [options, option] of [
        [{ box: '/linked/box' }, 'box'],
        [{ binds: [{ source: dir, target: '/linked/new/dir' }] }, 'binds[0].target'],
      ] as const) {
        const e = await run({ rootfs, argv: ['/bin/true'], ...options }).catch((x: unknown) => x);
        expect(e).toBeInstanceOf(ConfigError);
        expect((e as ConfigError).option).toBe(option);
        expect((e as ConfigError).message).toMatch(/\/linked is a symlink/);
      }
    } finally {
      rmSync(join(rootfs, 'linked'));
    }
  });

  it('refuses a file on the way to a missing target', async () => {
    const e = await run({
      rootfs,
      argv: ['/bin/true'],
      binds: [{ source: dir, target: '/etc/passwd/x' }],
    }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).message).toMatch(
      /\/etc\/passwd is not a directory, so \/etc\/passwd\/x cannot be made/,
    );
  });

  it('with writableRoot are an error that says what to do, never a write into the host directory', async () => {
    const e = await run({
      rootfs,
      argv: ['/bin/true'],
      writableRoot: true,
      binds: [{ source: dir, target: '/nowhere' }],
    }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).option).toBe('binds[0].target');
    expect((e as ConfigError).message).toMatch(
      /has no \/nowhere .*with writableRoot capsule makes no mount point in the host directory: mkdir -p .*\/nowhere, or leave writableRoot off/,
    );
    expect((e as ConfigError).message).not.toMatch(/rootfs build/);
    expect(readdirSync(rootfs)).not.toContain('nowhere');
  });
});

describe('overlay', () => {
  it('makes the root writable for one run: writes seen during it, gone after, the rootfs unchanged', async () => {
    const before = snapshot(rootfs);
    const script =
      'echo new > /newfile && cat /newfile; echo changed > /etc/passwd && cat /etc/passwd; ' +
      'rm /bin/echo && busybox ls /bin/echo; mkdir -p /a/b && echo deep > /a/b/c && cat /a/b/c; ' +
      'grep " / " /proc/self/mountinfo';
    const r = await run({ rootfs, overlay: true, uid: 0, hostIds: 'shared', argv: sh(script) });
    const lines = r.stdout.trim().split('\n');
    expect(lines.slice(0, 3)).toEqual(['new', 'changed', 'deep']);
    expect(r.stderr).toMatch(/\/bin\/echo: No such file or directory/);
    expect(lines[3]).toMatch(/ \/ rw,nosuid,nodev.* - overlay /);
    expect(snapshot(rootfs)).toEqual(before);
    const after = await run({
      rootfs,
      overlay: true,
      argv: sh('busybox ls /newfile /a; cat /etc/passwd | head -1'),
    });
    expect(after.stdout).toBe('root:x:0:0:root:/root:/bin/sh\n');
    expect(after.stderr).toMatch(/\/newfile: No such file or directory/);
  });

  it("keeps the rootfs's permissions: nobody writes only where nobody may", async () => {
    const r = await run({
      rootfs,
      overlay: true,
      argv: sh('echo x > /data/new && cat /data/kept && busybox stat -c "%a" /; touch /etc/x'),
    });
    expect(r.stdout).toBe('original\n755\n');
    expect(r.stderr).toBe('touch: /etc/x: Permission denied\n');
  });

  it('is capped at overlaySizeBytes', async () => {
    const r = await run({
      rootfs,
      overlay: true,
      overlaySizeBytes: MiB,
      argv: sh('busybox dd if=/dev/zero of=/data/big bs=65536 count=32'),
    });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/No space left on device/);
  });

  it('counts its writes against memoryLimitBytes: past it the run ends MEMORY_LIMIT', async () => {
    const r = await run({
      rootfs,
      overlay: true,
      overlaySizeBytes: 512 * MiB,
      memoryLimitBytes: 32 * MiB,
      argv: sh('busybox dd if=/dev/zero of=/data/big bs=1048576 count=128; sleep 1'),
    });
    expect(r.verdict).toBe('MEMORY_LIMIT');
    expect(r.oomKilled).toBe(true);
    expect(r.peakMemoryBytes).toBeLessThanOrEqual(32 * MiB);
    expect(readdirSync(join(rootfs, 'data'))).toEqual(['kept']);
  });

  it('cannot be combined with writableRoot: a ConfigError naming both', async () => {
    const e = await run({ rootfs, argv: ['/bin/true'], overlay: true, writableRoot: true }).catch(
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).option).toBe('overlay');
    expect((e as ConfigError).message).toMatch(/^overlay and writableRoot cannot be used together/);
    const size = await run({ rootfs, argv: ['/bin/true'], overlaySizeBytes: MiB }).catch((x: unknown) => x);
    expect((size as ConfigError).option).toBe('overlaySizeBytes');
  });
});

describe('a rootfs on tmpfs or overlayfs, under /tmp', () => {
  let base: string;
  const mounted: string[] = [];
  beforeAll(() => {
    base = mkdtempSync(join(tmpdir(), 'capsule-box-fs-'));
  });
  afterAll(() => {
    for (const m of mounted.reverse()) execFileSync('umount', [m]);
    rmSync(base, { recursive: true, force: true });
  });

  /** An overlayfs over `lower`, its upper and work directories on a tmpfs (never on an overlayfs). */
  function overlayOf(lower: string, name: string): string {
    const layers = join(base, `${name}-layers`);
    mkdirSync(layers);
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', layers]);
    mounted.push(layers);
    for (const d of ['upper', 'work']) mkdirSync(join(layers, d));
    const merged = join(base, `${name}-merged`);
    mkdirSync(merged);
    execFileSync('mount', [
      '-t',
      'overlay',
      'overlay',
      '-o',
      `lowerdir=${lower},upperdir=${join(layers, 'upper')},workdir=${join(layers, 'work')}`,
      merged,
    ]);
    mounted.push(merged);
    return merged;
  }

  it('works on a tmpfs and on an overlayfs, and fails clearly two overlays deep', async () => {
    const mountsBefore = mountCount();
    const tmpfs = join(base, 'tmpfs');
    mkdirSync(tmpfs);
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', tmpfs]);
    mounted.push(tmpfs);
    execFileSync('cp', ['-a', `${rootfs}/.`, tmpfs]);
    /*
     * The kernel stacks overlays two deep at most (FILESYSTEM_MAX_STACK_DEPTH). Where the
     * temp directory is itself on an overlayfs (a container's, or run-in-v2's), the test
     * rootfs is already one overlay deep, and one more makes two.
     */
    const OVERLAYFS_SUPER_MAGIC = 0x794c7630;
    const once = statfsSync(rootfs).type === OVERLAYFS_SUPER_MAGIC ? rootfs : overlayOf(rootfs, 'one');
    const twice = overlayOf(once, 'two');
    for (const root of [tmpfs, once]) {
      const before = snapshot(root);
      const r = await run({
        rootfs: root,
        overlay: true,
        box: '/box',
        binds: [{ source: join(rootfs, 'bin'), target: '/mnt/host' }],
        argv: sh('echo x > /data/w && echo y > /box/w && ls /mnt/host >/dev/null && echo ok'),
      });
      expect(r.stderr, root).toBe('');
      expect(r.stdout, root).toBe('ok\n');
      expect(snapshot(root)).toEqual(before);
    }
    const e = await run({ rootfs: twice, overlay: true, argv: ['/bin/true'] }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SetupError);
    expect((e as SetupError).step).toBe('mount_overlay');
    expect((e as SetupError).message).toMatch(/stacking depth|too deep/);
    expect((e as SetupError).hint).toMatch(/copy the rootfs to a plain directory/);
    /* Without an overlay asked or needed, the same rootfs still runs. */
    expect((await run({ rootfs: twice, argv: ['/bin/true'] })).exitCode).toBe(0);
    expect(mountCount()).toBe(mountsBefore + mounted.length);
  });
});
