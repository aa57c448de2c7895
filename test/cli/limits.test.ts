/**
 * The limit flags, --report/--json, and isolate's meta file, as a judge calls them.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

const rootfs = inject('rootfs');
const cli = join(import.meta.dirname, '../../dist/capsule.mjs');
const capsule = (args: string[]) => execa('node', [cli, ...args], { reject: false, stdin: 'ignore' });

/** isolate's meta file as an object. */
function parseMeta(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]),
  );
}

describe('capsule run with limits', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'capsule-cli-limits-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes a meta file isolate-style for a CPU time limit', async () => {
    const meta = join(dir, 'tle.meta');
    const r = await capsule([
      'run',
      '--cpu-time-limit',
      '200ms',
      '--meta',
      meta,
      rootfs,
      '/probe',
      'burn',
      '5000',
    ]);
    expect(r.exitCode).toBe(137);
    expect(r.stderr).toMatch(/^capsule: CPU time limit of 200 ms exceeded \(\d+ ms used\)$/);
    const m = parseMeta(readFileSync(meta, 'utf8'));
    expect(m.status).toBe('TO');
    expect(m.killed).toBe('1');
    expect(m.exitsig).toBe('9');
    expect(m.message).toBe('Time limit exceeded');
    expect(Number(m.time)).toBeGreaterThanOrEqual(0.2);
    expect(Number(m.time)).toBeLessThan(0.3);
    expect(Number(m['time-wall'])).toBeGreaterThan(0);
    expect(Number(m['cg-mem'])).toBeGreaterThan(0);
  });

  it('reports a memory limit through cg-oom-killed', async () => {
    const meta = join(dir, 'mle.meta');
    const r = await capsule(['run', '--memory-limit', '32m', '--meta', meta, rootfs, '/probe', 'mem', '100']);
    expect(r.exitCode).toBe(137);
    const m = parseMeta(readFileSync(meta, 'utf8'));
    expect(m['cg-oom-killed']).toBe('1');
    expect(m.status).toBe('SG');
    expect(Number(m['cg-mem'])).toBeLessThanOrEqual(32 * 1024);
  });

  it('writes status RE and the exit code for a runtime error', async () => {
    const meta = join(dir, 're.meta');
    const r = await capsule(['run', '--meta', meta, rootfs, '/probe', 'exit', '3']);
    expect(r.exitCode).toBe(3);
    const m = parseMeta(readFileSync(meta, 'utf8'));
    expect(m).toMatchObject({ status: 'RE', exitcode: '3', message: 'Exited with error status 3' });
  });

  it('writes no status for a clean run', async () => {
    const meta = join(dir, 'ok.meta');
    await capsule(['run', '--meta', meta, rootfs, '/bin/true']);
    const m = parseMeta(readFileSync(meta, 'utf8'));
    expect(m.status).toBeUndefined();
    expect(m.exitcode).toBe('0');
  });

  it('writes status XX when capsule could not run the program', async () => {
    const meta = join(dir, 'xx.meta');
    const r = await capsule(['run', '--meta', meta, rootfs, '/bin/nope']);
    expect(r.exitCode).toBe(127);
    const m = parseMeta(readFileSync(meta, 'utf8'));
    expect(m.status).toBe('XX');
    expect(m.message).toContain('cannot execute /bin/nope');
  });

  it('cuts output at --output-limit and says so', async () => {
    const r = await capsule(['run', '--output-limit', '10', rootfs, '/probe', 'spew']);
    expect(r.stdout).toBe('x'.repeat(10));
    expect(r.stderr).toBe('capsule: output limit of 10 bytes exceeded (stdout cut there)');
  });

  it('writes the result as JSON with --report and --json', async () => {
    const report = join(dir, 'report.json');
    const r = await capsule([
      'run',
      '--wall-time-limit',
      '200ms',
      '--report',
      report,
      '--json',
      rootfs,
      '/probe',
      'sleep',
      '5000',
    ]);
    const fromFile = JSON.parse(readFileSync(report, 'utf8')) as Record<string, unknown>;
    expect(fromFile).toMatchObject({
      verdict: 'TIME_LIMIT',
      timeLimit: 'wall',
      mechanism: 'wall_timer',
      signal: 'SIGKILL',
    });
    expect((fromFile.limits as Record<string, unknown>).wallTimeLimitMs).toBe(200);
    const fromStderr = JSON.parse(r.stderr.slice(0, r.stderr.lastIndexOf('}') + 1)) as Record<
      string,
      unknown
    >;
    expect(fromStderr.verdict).toBe('TIME_LIMIT');
  });

  it.each([
    [['--memory-limit', '12q'], /invalid byte size "12q"/],
    [['--cpu-time-limit', 'soon'], /soon/],
    [['--cpus', '-1'], /expected a number of CPUs/],
    [['--pids-limit', 'many'], /many/],
    [['--open-files-limit', '99999999'], /--open-files-limit 99999999 is above the hard limit/],
  ])('rejects %j in one line with exit 125', async (flags, message) => {
    const r = await capsule(['run', ...flags, rootfs, '/bin/true']);
    expect(r.exitCode).toBe(125);
    expect(r.stderr.split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(message);
  });
});

describe('capsule run leaves no cgroup behind', () => {
  /** Cgroups named for `pid` (PID-STARTTIME-N after the process that made them, src/cgroup/names.ts). */
  function cgroupsOf(pid: number): string[] {
    const left: string[] = [];
    const parents = [
      '/sys/fs/cgroup/capsule',
      ...readdirSync('/sys/fs/cgroup').map((h) => `/sys/fs/cgroup/${h}/capsule`),
    ];
    for (const parent of parents) {
      if (!existsSync(parent)) continue;
      for (const name of readdirSync(parent)) if (name.startsWith(`${pid}-`)) left.push(`${parent}/${name}`);
    }
    return left;
  }
  const limits = ['--memory-limit', '64m', '--cpu-time-limit', '1s', '--pids-limit', '16'];

  it('removes the cgroups a run with limits made, in every hierarchy, when the CLI exits', async () => {
    const p = capsule(['run', ...limits, rootfs, '/probe', 'exit', '0']);
    const r = await p;
    expect(r.exitCode, r.stderr).toBe(0);
    expect(cgroupsOf(p.pid!)).toEqual([]);
  });

  it('removes them too when it runs short of descriptors (ulimit -n 40)', async () => {
    /* exec: the CLI keeps the shell's PID, which names its cgroups. */
    const p = execa(
      'bash',
      ['-c', 'ulimit -n 40; exec node "$@"', 'bash', cli, 'run', ...limits, rootfs, '/probe', 'exit', '0'],
      {
        reject: false,
        stdin: 'ignore',
      },
    );
    const r = await p;
    expect(r.stderr.split('\n').filter(Boolean).length, r.stderr).toBeLessThanOrEqual(1);
    expect(cgroupsOf(p.pid!)).toEqual([]);
  });
});
