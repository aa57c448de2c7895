/**
 * The installed `capsule` command (package.json "bin": dist/capsule, made by
 * scripts/bundle-cli.mjs): Node started from the CLI's start-up snapshot when the
 * snapshot was built by the node on PATH, the plain bundle otherwise, and the same
 * command either way. The other CLI tests run dist/capsule.mjs, the bundle.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, inject, it } from 'vitest';

const rootfs = inject('rootfs');
const dist = join(import.meta.dirname, '../../dist');
const launcher = join(dist, 'capsule');
const tmp = mkdtempSync(join(tmpdir(), 'capsule-launcher-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/* `sh -x` shows which node command the launcher exec'd; the test reads that line. */
const traced = (args: string[], env: Record<string, string> = {}) =>
  execa('sh', ['-x', launcher, ...args], { reject: false, stdin: 'ignore', env, extendEnv: true });
const execLine = (stderr: string) => stderr.split('\n').find((l) => l.startsWith('+ exec ')) ?? '';

describe('dist/capsule, the installed command', () => {
  it('package.json names it as the bin', () => {
    const pkg = JSON.parse(readFileSync(join(dist, '../package.json'), 'utf8')) as {
      bin: Record<string, string>;
    };
    expect(pkg.bin.capsule).toBe('dist/capsule');
  });

  it('starts Node from the snapshot built by this node, and runs sandboxes from it', async () => {
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
    const bundle = await execa('node', [join(dist, 'capsule.mjs'), 'explain', rootfs, '/bin/true'], {
      reject: false,
    });
    expect(bundle.stdout).toMatch(compiledAtBuild);
  });

  it('runs a session from the snapshot: create starts its holder, exec and rm reach it', async () => {
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
    const r = await execa('sh', ['-x', link, 'run', rootfs, '/bin/echo', 'linked'], { reject: false });
    expect(r.stdout).toBe('linked');
    expect(execLine(r.stderr)).toContain('--snapshot-blob');
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
});
