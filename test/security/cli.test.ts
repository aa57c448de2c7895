/**
 * `capsule run --seccomp` and `--seccomp-profile` as a judge's script meets
 * them: the exit status, the one line on stderr, the isolate meta file.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { cleanup, type Fixture, makeFixture } from './fixtures.js';

const cli = join(import.meta.dirname, '../../dist/capsule.mjs');
const capsule = (args: string[]) => execa('node', [cli, ...args], { reject: false, stdin: 'ignore' });

let f: Fixture;
beforeAll(async () => {
  f = await makeFixture(inject('probe'));
}, 120_000);
afterAll(() => cleanup(f));

describe('capsule run --seccomp', () => {
  it('strict: "forbidden syscall: socket", 128+SIGSYS, and the meta file says so', async () => {
    const meta = join(f.dir, 'meta.txt');
    const r = await capsule([
      'run',
      '--seccomp',
      'strict',
      '--meta',
      meta,
      f.rootfs,
      '/escape/seccomp_tool',
      'socket',
    ]);
    expect(r.stderr).toBe('capsule: forbidden syscall: socket');
    expect(r.exitCode).toBe(128 + 31);
    const lines = readFileSync(meta, 'utf8').split('\n');
    expect(lines).toEqual(
      expect.arrayContaining(['status:SG', 'message:Forbidden syscall: socket', 'exitsig:31', 'killed:1']),
    );
  });

  it('default: the denied call fails and the program goes on', async () => {
    const r = await capsule(['run', f.rootfs, '/escape/seccomp_tool', 'mount']);
    expect(r.stdout).toBe('mount: EPERM');
    expect(r.exitCode).toBe(0);
  });

  it('none: no filter', async () => {
    const r = await capsule([
      'run',
      '--seccomp',
      'none',
      f.rootfs,
      '/bin/sh',
      '-c',
      'grep Seccomp: /proc/self/status',
    ]);
    expect(r.stdout).toBe('Seccomp:\t0');
  });

  it('an unknown name is a one-line usage error', async () => {
    const r = await capsule(['run', '--seccomp', 'tight', f.rootfs, '/bin/true']);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(
      /^capsule: .*--seccomp.*expected one of default, default-kill, strict, compile, none, got "tight"$/,
    );
  });

  it('--seccomp-profile: a bad profile names the field, exit 125', async () => {
    const path = join(f.dir, 'bad.json');
    writeFileSync(
      path,
      JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mount'], action: 'NOPE' }] }),
    );
    const r = await capsule(['run', '--seccomp-profile', path, f.rootfs, '/bin/true']);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toBe(
      `capsule: seccomp profile ${path}: syscalls[0].action: unknown action "NOPE": expected one of SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_LOG, SCMP_ACT_TRACE, SCMP_ACT_TRAP, SCMP_ACT_KILL, SCMP_ACT_KILL_PROCESS, SCMP_ACT_KILL_THREAD, SCMP_ACT_NOTIFY`,
    );
  });

  it('--seccomp-profile: a Docker-style profile with errnoRet', async () => {
    const path = join(f.dir, 'docker.json');
    writeFileSync(
      path,
      JSON.stringify({
        defaultAction: 'SCMP_ACT_ALLOW',
        archMap:
          process.arch === 'arm64'
            ? [{ architecture: 'SCMP_ARCH_AARCH64', subArchitectures: ['SCMP_ARCH_ARM'] }]
            : [{ architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32'] }],
        syscalls: [{ names: ['socket'], action: 'SCMP_ACT_ERRNO', errnoRet: 97, comment: 'no sockets' }],
      }),
    );
    const r = await capsule(['run', '--seccomp-profile', path, f.rootfs, '/escape/seccomp_tool', 'socket']);
    expect(r.stdout).toBe('socket: EAFNOSUPPORT');
  });
});
