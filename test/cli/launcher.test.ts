/**
 * The installed `capsule` command (package.json "bin": dist/capsule, made by
 * scripts/bundle-cli.mjs): a single executable, node with the CLI's start-up snapshot
 * inside, where the building node and postject allow one; else, as dist/capsule-runc
 * always is, a shell launcher that starts Node from the snapshot blob when the blob was
 * built by the node on PATH, and the plain bundle otherwise. The same command each way.
 * The other CLI tests run dist/capsule.mjs, the bundle.
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, inject, it } from 'vitest';

const rootfs = inject('rootfs');
const dist = join(import.meta.dirname, '../../dist');
const launcher = join(dist, 'capsule');
/* The shell launcher of the same command: what dist/capsule is without a single executable. */
const shellLauncher = join(dist, 'capsule.sh');
/* Node's sentinel in every binary that can be a single executable; postject sets it to :1. */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const tmp = mkdtempSync(join(tmpdir(), 'capsule-launcher-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/* `sh -x` shows which node command the shell launcher exec'd; the test reads that line. */
const traced = (args: string[], env: Record<string, string> = {}) =>
  execa('sh', ['-x', shellLauncher, ...args], { reject: false, stdin: 'ignore', env, extendEnv: true });
const execLine = (stderr: string) => stderr.split('\n').find((l) => l.startsWith('+ exec ')) ?? '';

describe('dist/capsule, the installed command', () => {
  it('package.json names it as the bin', () => {
    const pkg = JSON.parse(readFileSync(join(dist, '../package.json'), 'utf8')) as {
      bin: Record<string, string>;
    };
    expect(pkg.bin.capsule).toBe('dist/capsule');
  });

  it('is a single executable when this node can be one: node with the snapshot inside', async () => {
    const exe = readFileSync(launcher);
    if (!readFileSync(process.execPath).includes(`${SEA_FUSE}:0`)) {
      /* A node built without single executable support: the shell launcher, no less correct. */
      expect(exe.subarray(0, 2).toString()).toBe('#!');
      return;
    }
    expect(exe.subarray(0, 4)).toEqual(Buffer.from([0x7f, 0x45, 0x4c, 0x46])); /* ELF */
    expect(exe.includes(`${SEA_FUSE}:1`)).toBe(true);
    const v = await execa(launcher, ['--version'], { reject: false });
    expect([v.exitCode, v.stderr]).toEqual([0, '']);
    expect(v.stdout).toMatch(/^\d+\.\d+\.\d+$/);
    const r = await execa(launcher, ['run', rootfs, '/bin/sh', '-c', 'echo $$ $(id -u); exit 3'], {
      reject: false,
    });
    expect([r.stdout, r.exitCode]).toEqual(['2 65534', 3]);
    /* Found on PATH by its bare name, from elsewhere: the package is found from the executable itself. */
    const bin = join(tmp, 'path-bin');
    mkdirSync(bin);
    symlinkSync(launcher, join(bin, 'capsule'));
    const p = await execa('capsule', ['run', rootfs, '/bin/echo', 'on PATH'], {
      reject: false,
      cwd: tmp,
      env: { PATH: `${bin}:${process.env.PATH}` },
    });
    expect([p.stdout, p.exitCode]).toEqual(['on PATH', 0]);
  });

  it('dist/capsule.sh starts Node from the snapshot built by this node, and runs sandboxes from it', async () => {
    const v = await traced(['--version']);
    expect(v.exitCode).toBe(0);
    expect(v.stdout).toMatch(/^\d+\.\d+\.\d+$/);
    expect(execLine(v.stderr)).toContain(`--snapshot-blob ${join(dist, 'capsule.blob')}`);

    const r = await traced(['run', rootfs, '/bin/sh', '-c', 'echo $$ $(id -u); exit 3']);
    expect(execLine(r.stderr)).toContain('--snapshot-blob');
    expect(r.stdout).toBe('2 65534');
    expect(r.exitCode).toBe(3);
  });

  it('gives the same answers as the bundle: stdin through, one-line errors, exit statuses', async () => {
    for (const cmd of [
      (a: string[], input?: string) => execa(launcher, a, { reject: false, input }),
      (a: string[], input?: string) => execa(shellLauncher, a, { reject: false, input }),
      (a: string[], input?: string) =>
        execa('node', [join(dist, 'capsule.mjs'), ...a], { reject: false, input }),
    ]) {
      const cat = await cmd(['run', rootfs, '/bin/cat'], 'through\n');
      expect([cat.exitCode, cat.stdout]).toEqual([0, 'through']);
      const missing = await cmd(['run', rootfs, '/bin/nonexistent']);
      expect(missing.exitCode).toBe(127);
      expect(missing.stderr.split('\n')).toHaveLength(1);
      expect(missing.stderr).toMatch(/^capsule: cannot execute \/bin\/nonexistent in /);
      const bad = await cmd(['run', '--memory-limit', 'lots', rootfs, '/bin/true']);
      expect(bad.exitCode).toBe(125);
      expect(bad.stderr).toMatch(/^capsule: .*--memory-limit/);
      expect(bad.stderr).not.toMatch(/\n\s+at /);
      const sig = await cmd(['run', rootfs, '/bin/sh', '-c', 'kill -9 $$']);
      expect(sig.exitCode).toBe(137);
    }
  });

  it('loads the built-in seccomp program compiled at build time, as --explain says', async () => {
    const compiledAtBuild =
      /load_seccomp +seccomp\(SECCOMP_SET_MODE_FILTER\); \d+ BPF instructions, compiled at build time \(dist\/seccomp\)/;
    /* From the snapshot (checked: the launcher exec'd it), whose heap found the filter at build time. */
    const snap = await traced(['explain', rootfs, '/bin/true']);
    expect(execLine(snap.stderr)).toContain('--snapshot-blob');
    expect(snap.stdout).toMatch(compiledAtBuild);
    /* From the command itself, whichever it is. */
    const installed = await execa(launcher, ['explain', rootfs, '/bin/true'], { reject: false });
    expect(installed.stdout).toMatch(compiledAtBuild);
    const bundle = await execa('node', [join(dist, 'capsule.mjs'), 'explain', rootfs, '/bin/true'], {
      reject: false,
    });
    expect(bundle.stdout).toMatch(compiledAtBuild);
  });

  it('runs a session from the command: create starts its holder (the command run again), exec and rm reach it', async () => {
    const name = `launcher-${process.pid}`;
    const created = await execa(launcher, ['create', '--name', name, rootfs], { reject: false });
    try {
      expect([created.exitCode, created.stderr]).toEqual([0, '']);
      const r = await execa(launcher, ['exec', name, '/bin/echo', 'in the box'], { reject: false });
      expect([r.exitCode, r.stdout]).toEqual([0, 'in the box']);
    } finally {
      const rm = await execa(launcher, ['rm', name], { reject: false });
      expect(rm.exitCode).toBe(0);
    }
  });

  it('forwards SIGTERM to the program when started from the snapshot', async () => {
    const proc = execa(
      launcher,
      [
        'run',
        rootfs,
        '/bin/sh',
        '-c',
        'trap "echo got TERM; exit 7" TERM; echo ready; while :; do sleep 0.05; done',
      ],
      { reject: false },
    );
    await new Promise<void>((resolve) => proc.stdout!.once('data', () => resolve()));
    proc.kill('SIGTERM');
    const r = await proc;
    expect([r.stdout, r.exitCode]).toEqual(['ready\ngot TERM', 7]);
  });

  it('works through a symlink, as npm links it into node_modules/.bin', async () => {
    const link = join(tmp, 'capsule');
    symlinkSync(launcher, link);
    const r = await execa(link, ['run', rootfs, '/bin/echo', 'linked'], { reject: false, cwd: tmp });
    expect([r.stdout, r.exitCode]).toEqual(['linked', 0]);
    const shLink = join(tmp, 'capsule-sh-link');
    symlinkSync(shellLauncher, shLink);
    const s = await execa('sh', ['-x', shLink, 'run', rootfs, '/bin/echo', 'linked'], { reject: false });
    expect(s.stdout).toBe('linked');
    expect(execLine(s.stderr)).toContain('--snapshot-blob');
  });

  it('runs the bundle instead when the node on PATH did not build the snapshot', async () => {
    /* Another node binary: a wrapper script is a different file from the one that built the blob. */
    const bin = join(tmp, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'node'), `#!/bin/sh\nexec ${process.execPath} "$@"\n`);
    chmodSync(join(bin, 'node'), 0o755);
    const r = await traced(['run', rootfs, '/bin/echo', 'fallback'], { PATH: `${bin}:${process.env.PATH}` });
    expect(r.stdout).toBe('fallback');
    expect(r.exitCode).toBe(0);
    expect(execLine(r.stderr)).toContain(join(dist, 'capsule.mjs'));
    expect(execLine(r.stderr)).not.toContain('--snapshot-blob');
  });

  it('runs the bundle when the node that built the snapshot has changed since (another mtime)', async () => {
    /* A copy of the package's launcher and blob record, as if node had been replaced in place. */
    const pkg = join(tmp, 'changed');
    mkdirSync(pkg);
    copyFileSync(shellLauncher, join(pkg, 'capsule.sh'));
    symlinkSync(join(dist, 'capsule.blob'), join(pkg, 'capsule.blob'));
    symlinkSync(join(dist, 'capsule.mjs'), join(pkg, 'capsule.mjs'));
    const record = join(pkg, 'capsule.blob.node');
    copyFileSync(join(dist, 'capsule.blob.node'), record);
    const node = realpathSync(process.execPath);
    expect(readFileSync(record, 'utf8')).toBe(`${node}\n`);
    const run = () =>
      execa('sh', ['-x', join(pkg, 'capsule.sh'), '--version'], { reject: false, stdin: 'ignore' });
    /* The record as the build leaves it: node's own mtime, to the nanosecond. */
    execFileSync('touch', ['-r', node, record]);
    const same = await run();
    expect(execLine(same.stderr)).toContain('--snapshot-blob');
    expect(same.stdout).toMatch(/^\d+\.\d+\.\d+$/);
    const { mtime } = statSync(node);
    for (const off of [1, -1]) {
      utimesSync(record, mtime, new Date(mtime.getTime() + off));
      const changed = await run();
      expect(changed.exitCode).toBe(0);
      expect(changed.stdout).toMatch(/^\d+\.\d+\.\d+$/);
      expect(execLine(changed.stderr)).toContain(join(pkg, 'capsule.mjs'));
      expect(execLine(changed.stderr)).not.toContain('--snapshot-blob');
    }
  });
});
