/**
 * The seccomp layer in a real sandbox: what each built-in profile does, how a
 * violation is reported, and that the report cannot be forged or undone by
 * the program.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { ConfigError, run, type RunOptions } from '../../src/index.js';
import { cachedFilters } from '../../src/seccomp/index.js';
import { mountCount, openFdCount, zombieChildren } from '../helpers/host.js';
import { cleanup, type Fixture, makeFixture } from './fixtures.js';

const probe = inject('probe');
let f: Fixture;

beforeAll(async () => {
  f = await makeFixture(probe);
}, 120_000);
afterAll(() => cleanup(f));

function tool(args: string[], extra: Partial<RunOptions> = {}) {
  return run({ rootfs: f.rootfs, argv: ['/escape/seccomp_tool', ...args], ...extra });
}

function status(args: string[], extra: Partial<RunOptions> = {}) {
  return run({
    rootfs: f.rootfs,
    argv: ['/bin/sh', '-c', 'grep Seccomp /proc/self/status', ...args],
    ...extra,
  });
}

describe('default: a deny-list answered with EPERM', () => {
  it('is on without being asked for, with one filter', async () => {
    const r = await status([]);
    expect(r.stdout).toContain('Seccomp:\t2');
    expect(r.stdout).toContain('Seccomp_filters:\t1');
  });

  it('denies mount with EPERM and lets the program go on', async () => {
    const r = await tool(['mount']);
    expect(r.stdout).toBe('mount: EPERM\n');
    expect(r.verdict).toBe('OK');
    expect(r.violation).toBeNull();
  });

  it('personality: the safe personas and the query pass, the hardening-off bits do not', async () => {
    /* PER_LINUX, PER_LINUX32, UNAME26, query | ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, bit 31 + ADDR_NO_RANDOMIZE, above 32 bits */
    const values = ['0', '8', '20000', 'ffffffff', '40000', '400000', '80040000', '100000000'];
    const r = await tool(['personality', ...values]);
    expect(r.stdout).toBe('ok ok ok ok EPERM EPERM EPERM EPERM\n');
    expect((await tool(['personality', ...values], { seccomp: 'none' })).stdout).toBe(
      'ok ok ok ok ok ok ok ok\n',
    );
  });

  it('leaves sockets alone (the network namespace isolates them)', async () => {
    const r = await tool(['socket']);
    expect(r.stdout).toBe('socket: ok\n');
  });

  it("leaves the program no listener of its own: capsule-init's is the only one", async () => {
    expect((await tool(['own-listener'])).stdout).toBe('own listener: EBUSY\n');
    expect((await tool(['own-listener'], { seccomp: 'none' })).stdout).toBe('own listener: ok\n');
  });

  it('cannot be loosened by a filter the program adds itself', async () => {
    const r = await tool(['own-filter']);
    expect(r.stdout).toBe('unshare: EPERM\n');
  });
});

describe('default-kill and strict: a forbidden call ends the run with SECURITY_VIOLATION', () => {
  it('default-kill: mount', async () => {
    const r = await tool(['mount'], { seccomp: 'default-kill' });
    expect(r.verdict).toBe('SECURITY_VIOLATION');
    expect(r.mechanism).toBe('seccomp');
    expect(r.violation).toEqual({ syscall: 'mount', number: 165, abi: 'x86_64' });
    expect(r.signal).toBe('SIGSYS');
    expect(r.stdout).toBe('');
  });

  it('strict: a C program that only computes and writes runs', async () => {
    const r = await tool(['hello'], { seccomp: 'strict' });
    expect(r.verdict).toBe('OK');
    expect(r.stdout).toBe('hello\n');
  });

  it('strict: socket is "forbidden syscall: socket"', async () => {
    const r = await tool(['socket'], { seccomp: 'strict' });
    expect(r.verdict).toBe('SECURITY_VIOLATION');
    expect(r.violation).toEqual({ syscall: 'socket', number: 41, abi: 'x86_64' });
  });

  it('strict: fork is forbidden', async () => {
    const r = await tool(['fork-socket'], { seccomp: 'strict' });
    expect(r.verdict).toBe('SECURITY_VIOLATION');
    expect(r.violation?.syscall).toMatch(/^(fork|clone|clone3)$/);
  });

  it('a violation in a child process ends the whole sandbox', async () => {
    const r = await run({
      rootfs: f.rootfs,
      argv: ['/bin/sh', '-c', '/escape/seccomp_tool mount; echo after'],
      seccomp: 'default-kill',
    });
    expect(r.verdict).toBe('SECURITY_VIOLATION');
    expect(r.violation?.syscall).toBe('mount');
    expect(r.stdout).not.toContain('after');
  });

  it('a violation in a second thread ends the run', async () => {
    const r = await tool(['threads-socket'], { seccomp: 'default-kill' });
    expect(r.verdict).toBe('OK'); /* socket is allowed there */
    const s = await tool(['threads-socket'], { seccomp: 'strict' });
    expect(s.verdict).toBe('SECURITY_VIOLATION');
    /* glibc starts a thread with clone3 (or clone): the first forbidden call is reported */
    expect(['clone3', 'clone', 'socket']).toContain(s.violation?.syscall);
  });

  it.skipIf(process.arch !== 'x64')(
    'int 0x80 ends the run in every profile, named in the i386 table',
    async () => {
      for (const seccomp of ['default', 'strict'] as const) {
        const r = await run({ rootfs: f.rootfs, argv: ['/escape/int80'], seccomp });
        expect(r.verdict).toBe('SECURITY_VIOLATION');
        expect(r.violation).toEqual({ syscall: 'unshare', number: 310, abi: 'i386' });
      }
    },
  );
});

describe('a violation cannot be forged, hidden or escaped', () => {
  it('a program that raises SIGSYS itself is SIGNALED, not a violation', async () => {
    const r = await tool(['raise-sigsys'], { seccomp: 'strict' });
    expect(r.signal).toBe('SIGSYS');
    expect(r.verdict).toBe('SIGNALED');
    expect(r.violation).toBeNull();
  });

  it('neither the filter nor the listener reaches the program', async () => {
    for (const seccomp of ['default', 'default-kill', 'strict'] as const) {
      const r = await run({ rootfs: f.rootfs, argv: ['/escape/inherited_fds'], seccomp });
      expect(r.stdout).toBe('CONTAINED: only stdin, stdout and stderr\n');
    }
  });

  it('capsule-init is not dumpable: /proc/1 is not readable by the program', async () => {
    const r = await run({
      rootfs: f.rootfs,
      argv: ['/bin/sh', '-c', 'ls /proc/1/fd 2>&1; cat /proc/1/environ 2>&1'],
    });
    expect(r.stdout).toContain('Permission denied');
  });
});

describe('none: no filter', () => {
  it('loads nothing', async () => {
    const r = await status([], { seccomp: 'none' });
    expect(r.stdout).toContain('Seccomp:\t0');
  });

  it('is what lets unshare(CLONE_NEWUSER) through: the filter, not the namespaces, stops it', async () => {
    const r = await run({ rootfs: f.rootfs, argv: ['/escape/unshare_user'], seccomp: 'none' });
    expect(r.stdout).toMatch(/^ESCAPED: unshare\(CLONE_NEWUSER\)/);
  });
});

describe('user profiles (OCI/Docker JSON)', () => {
  function profile(json: unknown): string {
    const path = join(f.dir, `profile-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(path, JSON.stringify(json));
    return path;
  }

  it('errnoRet reaches the program', async () => {
    const path = profile({
      defaultAction: 'SCMP_ACT_ALLOW',
      architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
      syscalls: [{ names: ['socket'], action: 'SCMP_ACT_ERRNO', errnoRet: 97 }],
    });
    const r = await tool(['socket'], { seccompProfile: path });
    expect(r.stdout).toBe('socket: EAFNOSUPPORT\n');
  });

  it('an allow-list with SCMP_ACT_KILL_PROCESS as default reports the call', async () => {
    const allowed = ['read', 'write', 'exit_group', 'execve', 'brk', 'arch_prctl', 'set_tid_address'];
    const path = profile({
      defaultAction: 'SCMP_ACT_KILL_PROCESS',
      syscalls: [
        {
          names: [...allowed, 'set_robust_list', 'rseq', 'prlimit64', 'readlink', 'uname', 'mprotect'],
          action: 'SCMP_ACT_ALLOW',
        },
        { names: ['newfstatat', 'fstat', 'getrandom', 'mmap', 'munmap', 'ioctl'], action: 'SCMP_ACT_ALLOW' },
      ],
    });
    const r = await tool(['socket'], { seccompProfile: path });
    expect(r.verdict).toBe('SECURITY_VIOLATION');
    expect(r.violation?.syscall).toBe('socket');
  });

  it("podman's default profile (Docker's format) reads, compiles and runs programs", async () => {
    const path = join(import.meta.dirname, 'profiles/podman-seccomp.json');
    const hello = await tool(['hello'], { seccompProfile: path });
    expect(hello.stdout).toBe('hello\n');
    /* Its allow-list has socket; without CAP_SYS_ADMIN its caps-gated rules do not apply. */
    expect((await tool(['socket'], { seccompProfile: path })).stdout).toBe('socket: ok\n');
    /* bpf is allowed there only `includes: {caps: [CAP_SYS_ADMIN]}`, else EPERM (`excludes` it). */
    const bpf = await run({ rootfs: f.rootfs, argv: ['/escape/bpf'], seccompProfile: path });
    expect(bpf.stdout).toBe('CONTAINED: bpf: EPERM\n');
    /* A call the profile does not name gets its defaultErrnoRet, ENOSYS. */
    const uffd = await run({ rootfs: f.rootfs, argv: ['/escape/io_uring'], seccompProfile: path });
    expect(uffd.stdout).toBe('CONTAINED: io_uring_setup: ENOSYS\n');
    const sh = await run({ rootfs: f.rootfs, argv: ['/bin/sh', '-c', 'ls / | wc -l'], seccompProfile: path });
    expect(sh.verdict).toBe('OK');
    /* And the ABI bypass is still killed, whatever the profile's archMap allows. */
    if (process.arch === 'x64') {
      const int80 = await run({ rootfs: f.rootfs, argv: ['/escape/int80'], seccompProfile: path });
      expect(int80.violation).toMatchObject({ syscall: 'unshare', abi: 'i386' });
    }
  });

  it('a bad profile is a ConfigError naming the field, and nothing runs', async () => {
    const path = profile({
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [{ names: ['mount'], action: 'DENY' }],
    });
    await expect(tool(['hello'], { seccompProfile: path })).rejects.toThrow(
      /syscalls\[0\]\.action: unknown action "DENY"/,
    );
    await expect(tool(['hello'], { seccompProfile: path })).rejects.toBeInstanceOf(ConfigError);
  });

  it('a missing file says so', async () => {
    await expect(tool(['hello'], { seccompProfile: join(f.dir, 'nope.json') })).rejects.toThrow(
      /cannot read seccomp profile .*nope\.json: ENOENT/,
    );
  });

  it('seccomp and seccompProfile together are refused', async () => {
    await expect(tool(['hello'], { seccomp: 'strict', seccompProfile: '/x' })).rejects.toThrow(/not both/);
  });

  it('an unknown built-in name is refused', async () => {
    await expect(tool(['hello'], { seccomp: 'tight' as 'strict' })).rejects.toThrow(
      /seccomp must be one of default, default-kill, strict, none, got "tight"/,
    );
  });

  it('a profile that denies execve fails to start with a clear reason', async () => {
    const path = profile({
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [{ names: ['execve'], action: 'SCMP_ACT_ERRNO' }],
    });
    await expect(tool(['hello'], { seccompProfile: path })).rejects.toThrow(
      /denies execve, which capsule-init needs/,
    );
  });
});

describe('no leaks', () => {
  it('violations, in parallel, leave no descriptor, zombie or mount behind', async () => {
    const batch = () =>
      Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          tool(i % 2 ? ['socket'] : ['mount'], { seccomp: i % 2 ? 'strict' : 'default-kill' }),
        ),
      );
    /* Warm at the same concurrency: the cgroup pool keeps one slot (and its fds) per run in flight. */
    await batch();
    const before = { fds: openFdCount(), mounts: mountCount() };
    for (let i = 0; i < 4; i++) {
      const runs = await batch();
      expect(runs.map((r) => r.verdict)).toEqual(Array(8).fill('SECURITY_VIOLATION'));
    }
    expect(mountCount()).toBe(before.mounts);
    expect(zombieChildren()).toEqual([]);
    /* Sockets close on the next tick after 'close'; give them one. */
    await new Promise((r) => setTimeout(r, 50));
    expect(openFdCount()).toBe(before.fds);
  });
});

describe('compiled once per profile', () => {
  it('many runs with the same profile compile it once', async () => {
    await tool(['hello'], { seccomp: 'strict' });
    const n = cachedFilters();
    await Promise.all(Array.from({ length: 8 }, () => tool(['hello'], { seccomp: 'strict' })));
    expect(cachedFilters()).toBe(n);
  });

  it('a profile too large for the kernel is refused before anything runs', async () => {
    const path = join(f.dir, 'huge.json');
    const values = Array.from({ length: 2100 }, (_, i) => i + 1);
    writeFileSync(
      path,
      JSON.stringify({
        defaultAction: 'SCMP_ACT_ALLOW',
        /* about one instruction per comparison: 4200 distinct ones, past BPF_MAXINSNS */
        syscalls: ['ioctl', 'fcntl'].flatMap((name, n) =>
          values.map((v) => ({
            names: [name],
            action: 'SCMP_ACT_ERRNO',
            args: [{ index: 1, value: v + n * 1_000_000, op: 'SCMP_CMP_EQ' }],
          })),
        ),
      }),
    );
    await expect(tool(['hello'], { seccompProfile: path })).rejects.toThrow(/the kernel takes 1 to 4096/);
  });
});
