/**
 * `capsule run` as a user meets it: exit statuses, one-line errors, stdio,
 * signals forwarded, and the sandbox dying with capsule.
 */
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, inject, it } from 'vitest';

import { processesWith } from '../helpers/host.js';

const rootfs = inject('rootfs');
const cli = join(import.meta.dirname, '../../dist/capsule.mjs');
const capsule = (args: string[], input?: string) =>
  execa('node', [cli, ...args], { reject: false, input, stdin: input === undefined ? 'ignore' : 'pipe' });

async function until(check: () => boolean, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 20))) {
    if (check()) return true;
  }
  return check();
}

/** Every error of capsule's own is exactly one line, and never a stack trace. */
function expectOneLine(stderr: string, pattern: RegExp) {
  expect(stderr.split('\n')).toHaveLength(1);
  expect(stderr).toMatch(/^capsule: /);
  expect(stderr).toMatch(pattern);
  expect(stderr).not.toMatch(/\n\s+at /);
}

describe('capsule run', () => {
  it('shows the sandbox from the issue: PID 2, nobody, only the rootfs, only lo, read-only root', async () => {
    const r = await capsule([
      'run',
      rootfs,
      '/bin/sh',
      '-c',
      'echo $$; id; ls /; cat /proc/net/dev; touch /x',
    ]);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('2');
    expect(lines[1]).toBe(
      'uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)'.replace(' groups=65534(nogroup)', ''),
    );
    expect(lines.slice(2, 9)).toEqual(['bin', 'dev', 'empty', 'etc', 'probe', 'proc', 'tmp']);
    expect(r.stdout).toMatch(/^\s+lo:/m);
    expect(r.stdout).not.toMatch(/eth|ens|veth/);
    expect(r.stderr).toBe('touch: /x: Read-only file system');
    expect(r.exitCode).toBe(1);
  });

  it("exits with the program's code, and 128+N for signal N", async () => {
    expect((await capsule(['run', rootfs, '/probe', 'exit', '42'])).exitCode).toBe(42);
    expect((await capsule(['run', rootfs, '/probe', 'signal', '9'])).exitCode).toBe(137);
  });

  it('passes everything after PROG untouched, and accepts -- before ROOTFS', async () => {
    const r = await capsule(['run', rootfs, '/bin/echo', '--help', '-x', '--', '--env', 'A=B']);
    expect(r.stdout).toBe('--help -x -- --env A=B');
    const dd = await capsule(['run', '--env', 'A=1', '--', rootfs, '/bin/sh', '-c', 'echo $A']);
    expect(dd.stdout).toBe('1');
  });

  it("gives the program the caller's stdin", async () => {
    const r = await capsule(['run', rootfs, '/probe', 'cat'], 'from the caller\n');
    expect(r.stdout).toBe('from the caller');
  });

  it('takes --env, --cwd, --hostname, --uid, --gid and --bind', async () => {
    const r = await capsule([
      'run',
      '--env',
      'A=1',
      '--env',
      'B=two',
      '--cwd',
      '/tmp',
      '--hostname',
      'box',
      '--uid',
      '1000',
      '--gid',
      '1000',
      '--bind',
      `${rootfs}/etc:/empty`,
      rootfs,
      '/bin/sh',
      '-c',
      'echo $A $B; pwd; hostname; id -u; id -g; cat /empty/group | head -1',
    ]);
    expect(r.stdout.split('\n')).toEqual(['1 two', '/tmp', 'box', '1000', '1000', 'root:x:0:']);
  });

  it('exits 127 with one line when the program is not found', async () => {
    const r = await capsule(['run', rootfs, '/bin/nope']);
    expect(r.exitCode).toBe(127);
    expectOneLine(
      r.stderr,
      /cannot execute \/bin\/nope in .*: No such file or directory \(it is not in the rootfs/,
    );
  });

  it('exits 126 with one line when the program cannot be executed', async () => {
    const r = await capsule(['run', rootfs, '/etc/passwd']);
    expect(r.exitCode).toBe(126);
    expectOneLine(r.stderr, /cannot execute \/etc\/passwd .*Permission denied/);
  });

  it.each([
    ['unknown option', ['run', '--frob', rootfs, '/bin/true'], /unknown option '--frob'/],
    ['missing rootfs', ['run', '/nonexistent', '/bin/true'], /rootfs \/nonexistent does not exist/],
    ['relative program', ['run', rootfs, 'true'], /must be absolute .*try \/bin\/true/],
    ['bad size', ['run', '--tmp-size', '12q', rootfs, '/bin/true'], /invalid byte size "12q"/],
    ['bad bind', ['run', '--bind', 'nocolon', rootfs, '/bin/true'], /expected HOST:SANDBOX/],
    ['bad uid', ['run', '--uid', 'root', rootfs, '/bin/true'], /expected a numeric id/],
    ['missing arguments', ['run'], /missing required argument 'rootfs'/],
    ['unknown command', ['frob'], /unknown command 'frob'/],
  ])('exits 125 with one line for bad input: %s', async (_name, args, pattern) => {
    const r = await capsule(args);
    expect(r.exitCode).toBe(125);
    expectOneLine(r.stderr, pattern);
  });

  it('prints --help and --version', async () => {
    const help = await capsule(['run', '--help']);
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toContain('Usage: capsule run [options] <rootfs> <prog> [args...]');
    expect(help.stdout).toContain('Examples:');
    const version = await capsule(['--version']);
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('forwards SIGTERM to the program, even one sent the moment the program first writes', async () => {
    /*
     * The program writes to the caller's stdout itself, so the caller can see "ready" and send
     * SIGTERM before run() has handed the CLI its sandbox. CI once caught the CLI dying of that
     * SIGTERM (a quarter of single tries lost it, measured); eight at once make the window wide.
     */
    const once = async () => {
      const proc = execa(
        'node',
        [
          cli,
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
      return { stdout: r.stdout, exitCode: r.exitCode, signal: r.signal };
    };
    const results = await Promise.all(Array.from({ length: 8 }, once));
    for (const r of results) expect(r).toEqual({ stdout: 'ready\ngot TERM', exitCode: 7, signal: undefined });
  });

  it('takes the whole sandbox down when capsule itself is killed', async () => {
    const marker = `capsule-test-orphan-${process.pid}-${Date.now()}`;
    const proc = execa('node', [cli, 'run', rootfs, '/probe', 'sleep', '60000', marker], { reject: false });
    /* The sandboxed probe, not the CLI (whose command line holds the marker too). */
    const sandboxed = () => processesWith(marker, '/probe');
    expect(await until(() => sandboxed().length === 1, 5000)).toBe(true);
    proc.kill('SIGKILL');
    await proc;
    /* PR_SET_PDEATHSIG kills capsule-init, and with PID 1 gone the kernel kills the namespace. */
    expect(await until(() => sandboxed().length === 0, 3000)).toBe(true);
  });
});
