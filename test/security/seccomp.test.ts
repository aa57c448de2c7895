/**
 * The seccomp layer in a real sandbox: what each built-in profile does, how a
 * violation is reported, and that the report cannot be forged or undone by
 * the program.
 */
import { execFile } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { ConfigError, run, type RunOptions } from '../../src/index.js';
import { cachedFilters } from '../../src/seccomp/index.js';
import { fdsLeftSince, mountCount, openFds, zombieChildren } from '../helpers/host.js';
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

describe('default: an allow-list; what capsule denies by name is EPERM, any other call ENOSYS', () => {
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

  it('AF_VSOCK is denied however the family is spelled: the kernel reads an int, the filter the low 32 bits', async () => {
    /* AF_VSOCK (0x28), AF_VSOCK with bit 32 set, AF_UNIX */
    const r = await tool(['socket-family', '28', '100000028', '1']);
    expect(r.stdout).toBe('EPERM EPERM ok\n');
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

/** `syscall_scan` output as a map: number -> EPERM or ENOSYS, for the calls refused. */
async function scan(ranges: string[], extra: Partial<RunOptions> = {}): Promise<Map<number, string>> {
  const r = await run({ rootfs: f.rootfs, argv: ['/escape/syscall_scan', ...ranges], ...extra });
  expect(r.verdict, r.stderr).toBe('OK');
  return new Map(
    r.stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [nr, name] = line.split(' ');
        return [Number(nr), name!] as const;
      }),
  );
}

describe('default: a call the allow-list does not name never reaches the kernel', () => {
  /* x86_64 numbers; on aarch64 the generic table numbers these the same from 424 on. */
  const NEWER = {
    memfd_secret: 447,
    statmount: 457,
    listmount: 458,
    lsm_get_self_attr: 459,
    mseal: 462,
    open_tree_attr: 467,
    file_setattr: 469,
  };

  it('memfd_secret, statmount, listmount, open_tree_attr, file_setattr and later numbers get ENOSYS', async (ctx) => {
    const numbers = [...Object.values(NEWER), 470, 480, 500, 1000].map(String);
    /* The kernel must have some of them: where it has none, its own ENOSYS looks the same as the filter's. */
    const none = await scan(numbers, { seccomp: 'none' });
    const reached = Object.entries(NEWER).filter(([, n]) => !none.has(n));
    if (reached.length === 0)
      ctx.skip(
        `this kernel has none of ${Object.keys(NEWER).join(', ')} (Linux 6.8 and later; memfd_secret needs secretmem on): the filter's ENOSYS cannot be told from the kernel's`,
      );
    for (const seccomp of ['default', 'default-kill'] as const) {
      const refused = await scan(numbers, { seccomp });
      for (const n of numbers.map(Number)) expect([n, refused.get(n)]).toEqual([n, 'ENOSYS']);
    }
  });

  it('every number 0..470 either reaches the kernel or is refused, and the refusals are the expected ones', async () => {
    const none = await scan(['0-470'], { seccomp: 'none' });
    const dflt = await scan(['0-470']);
    /* Named denials answer EPERM (mount 165, ptrace 101, bpf 321, unshare 272, io_uring_setup 425). */
    if (process.arch === 'x64')
      for (const n of [101, 165, 272, 321, 425]) expect([n, dflt.get(n)]).toEqual([n, 'EPERM']);
    /* Calls every program makes still reach the kernel (read 0, write 1, openat 257, futex 202). */
    if (process.arch === 'x64')
      for (const n of [0, 1, 202, 257]) expect([n, dflt.get(n)]).toEqual([n, none.get(n)]);
    /* Whatever the kernel refuses by itself stays refused (EPERM where capsule denies it by name: uselib, _sysctl). */
    for (const [n, e] of none) if (e === 'ENOSYS') expect([n, dflt.has(n)]).toEqual([n, true]);
  });
});

/*
 * The languages a judge offers, compiled and run under `default` with the
 * host's /usr and /etc bound read-only (Debian's merged /usr: /bin, /lib and
 * /lib64 are links into it). CI installs what these need (scripts/setup.sh);
 * a language whose toolchain is not on this machine is skipped by name.
 */
describe('default and compile run the languages a judge compiles and runs', () => {
  let hostRoot: string;
  beforeAll(() => {
    hostRoot = join(f.dir, 'host-usr-root');
    for (const d of ['proc', 'dev', 'tmp', 'usr', 'etc']) mkdirSync(join(hostRoot, d), { recursive: true });
    for (const d of ['bin', 'lib', 'lib64', 'sbin']) symlinkSync(`usr/${d}`, join(hostRoot, d));
  });

  async function inHost(
    script: string,
    files: Record<string, string> = {},
    seccomp: RunOptions['seccomp'] = 'default',
  ) {
    const writes = Object.entries(files)
      .map(([name, text]) => `printf '%s' '${text.replace(/'/g, `'\\''`)}' > /tmp/${name}`)
      .join(' && ');
    const r = await run({
      rootfs: hostRoot,
      argv: ['/bin/sh', '-c', writes ? `${writes} && ${script}` : script],
      binds: [
        { source: '/usr', target: '/usr' },
        { source: '/etc', target: '/etc' },
      ],
      env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: '/tmp', LANG: 'C.UTF-8' },
      tmpSizeBytes: 512 * 1024 * 1024,
      seccomp,
    });
    return r;
  }
  const has = (path: string) => existsSync(path);

  it.skipIf(!has('/usr/bin/gcc'))(
    'C: gcc compiles, the program runs (needs gcc)',
    async () => {
      const r = await inHost('gcc -O2 -o /tmp/a /tmp/a.c && /tmp/a', {
        'a.c': '#include <stdio.h>\nint main(void) { puts("c ok"); return 0; }\n',
      });
      expect([r.verdict, r.stdout, r.stderr]).toEqual(['OK', 'c ok\n', '']);
    },
    60_000,
  );

  it.skipIf(!has('/usr/bin/g++'))(
    'C++: g++ compiles a program with threads, it runs (needs g++)',
    async () => {
      const r = await inHost('g++ -O2 -pthread -o /tmp/a /tmp/a.cc && /tmp/a', {
        'a.cc':
          '#include <iostream>\n#include <thread>\nint main() { std::thread t([] { std::cout << "cpp ok" << std::endl; }); t.join(); }\n',
      });
      expect([r.verdict, r.stdout, r.stderr]).toEqual(['OK', 'cpp ok\n', '']);
    },
    60_000,
  );

  it.skipIf(!has('/usr/bin/python3'))(
    'Python 3 with threads and subprocesses (needs python3)',
    async () => {
      const r = await inHost(
        `python3 -c 'import threading, subprocess, json; t = threading.Thread(target=print, args=("python ok",)); t.start(); t.join(); subprocess.run(["true"], check=True)'`,
      );
      expect([r.verdict, r.stdout, r.stderr]).toEqual(['OK', 'python ok\n', '']);
    },
    60_000,
  );

  it.skipIf(!has('/usr/bin/go'))(
    'Go: go build, and the static binary runs its goroutines (needs golang-go)',
    async () => {
      const r = await inHost(
        'cd /tmp && CGO_ENABLED=0 GOCACHE=/tmp/gocache go build -o /tmp/h /tmp/h.go && /tmp/h',
        {
          'h.go':
            'package main\nimport "fmt"\nfunc main() { c := make(chan string); go func() { c <- "go ok" }(); fmt.Println(<-c) }\n',
        },
      );
      expect([r.verdict, r.stdout, r.stderr]).toEqual(['OK', 'go ok\n', '']);
    },
    300_000,
  );

  it.skipIf(!has('/usr/bin/javac'))(
    'Java: javac compiles, the JVM runs it (needs default-jdk-headless)',
    async () => {
      const r = await inHost('cd /tmp && javac Main.java && java -cp /tmp Main', {
        'Main.java':
          'public class Main { public static void main(String[] a) { System.out.println("java ok"); } }\n',
      });
      expect([r.verdict, r.stdout]).toEqual(['OK', 'java ok\n']);
    },
    120_000,
  );

  it.skipIf(!has('/usr/bin/node'))(
    'JavaScript: node with a worker thread (needs nodejs)',
    async () => {
      const r = await inHost(
        `node -e 'const { Worker } = require("node:worker_threads"); new Worker("console.log(\\"node ok\\")", { eval: true })'`,
      );
      expect([r.verdict, r.stdout, r.stderr]).toEqual(['OK', 'node ok\n', '']);
    },
    60_000,
  );

  /*
   * compile: the compilers a judge runs, each compiling and its output
   * running in the same sandbox (compilers start processes, which strict
   * refuses; see docs/judges.md).
   */
  it.skipIf(!has('/usr/bin/g++'))(
    'compile: gcc and g++ (needs build-essential)',
    async () => {
      const r = await inHost(
        'gcc -O2 -o /tmp/a /tmp/a.c && /tmp/a && g++ -O2 -pthread -o /tmp/b /tmp/b.cc && /tmp/b',
        {
          'a.c': '#include <stdio.h>\nint main(void) { puts("c ok"); return 0; }\n',
          'b.cc': '#include <iostream>\nint main() { std::cout << "cpp ok" << std::endl; }\n',
        },
        'compile',
      );
      expect([r.verdict, r.stdout, r.stderr]).toEqual(['OK', 'c ok\ncpp ok\n', '']);
    },
    60_000,
  );

  it.skipIf(!has('/usr/bin/javac'))(
    'compile: javac (needs default-jdk-headless)',
    async () => {
      const r = await inHost(
        'cd /tmp && javac Main.java && java -cp /tmp Main',
        {
          'Main.java':
            'public class Main { public static void main(String[] a) { System.out.println("java ok"); } }\n',
        },
        'compile',
      );
      expect([r.verdict, r.stdout]).toEqual(['OK', 'java ok\n']);
    },
    120_000,
  );

  it.skipIf(!has('/usr/bin/go'))(
    'compile: go build (needs golang-go)',
    async () => {
      const r = await inHost(
        'cd /tmp && CGO_ENABLED=0 GOCACHE=/tmp/gocache go build -o /tmp/h /tmp/h.go && /tmp/h',
        { 'h.go': 'package main\nimport "fmt"\nfunc main() { fmt.Println("go ok") }\n' },
        'compile',
      );
      expect([r.verdict, r.stdout, r.stderr]).toEqual(['OK', 'go ok\n', '']);
    },
    300_000,
  );

  it.skipIf(!has('/usr/bin/rustc'))(
    'compile: rustc (needs rustc)',
    async () => {
      const r = await inHost(
        'cd /tmp && rustc -O -o /tmp/r /tmp/r.rs && /tmp/r',
        { 'r.rs': 'fn main() { println!("rust ok"); }\n' },
        'compile',
      );
      expect([r.verdict, r.stdout, r.stderr]).toEqual(['OK', 'rust ok\n', '']);
    },
    120_000,
  );

  it.skipIf(!has('/usr/bin/tsc'))(
    'compile: tsc (needs node-typescript)',
    async () => {
      const r = await inHost(
        'cd /tmp && tsc --outDir /tmp/out /tmp/a.ts && node /tmp/out/a.js',
        { 'a.ts': 'const s: string = "ts ok";\nconsole.log(s);\n' },
        'compile',
      );
      expect([r.verdict, r.stdout, r.stderr]).toEqual(['OK', 'ts ok\n', '']);
    },
    120_000,
  );
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

  it('strict: fork is forbidden (glibc forks with clone without CLONE_THREAD)', async () => {
    const r = await tool(['fork-socket'], { seccomp: 'strict' });
    expect(r.verdict).toBe('SECURITY_VIOLATION');
    expect(r.violation?.syscall).toBe('clone');
    expect(r.stdout).toBe('');
  });

  it('strict: vfork and posix_spawn are forbidden too', async () => {
    const v = await tool(['vfork'], { seccomp: 'strict' });
    expect([v.verdict, v.violation?.syscall, v.stdout]).toEqual(['SECURITY_VIOLATION', 'vfork', '']);
    /* glibc's posix_spawn: clone3 (ENOSYS), then clone(CLONE_VM|CLONE_VFORK) */
    const s = await tool(['spawn'], { seccomp: 'strict' });
    expect([s.verdict, s.violation?.syscall, s.stdout]).toEqual(['SECURITY_VIOLATION', 'clone', '']);
  });

  it("strict: clone3 is ENOSYS (its flags are in memory, out of the filter's reach), so libcs fall back to clone", async () => {
    const r = await tool(['clone3'], { seccomp: 'strict' });
    expect([r.verdict, r.stdout]).toEqual(['OK', 'clone3: ENOSYS\n']);
    for (const seccomp of ['default', 'default-kill'] as const) {
      expect((await tool(['clone3'], { seccomp })).stdout).toBe('clone3: ENOSYS\n');
    }
  });

  it.skipIf(process.arch !== 'x64')(
    'strict: clone with the flags of glibc, musl and Go threads passes the filter',
    async () => {
      /*
       * Each value gets CLONE_SETTLS and a kernel address as the TLS, which the
       * kernel refuses with EPERM: the filter let the call through, no thread starts.
       * glibc and musl pthread_create (musl adds CLONE_DETACHED), Go's newosproc,
       * and the bare minimum a thread needs (CLONE_VM|CLONE_SIGHAND|CLONE_THREAD).
       */
      const r = await tool(['clone-thread', '3d0f00', '7d0f00', '50f00', '10900'], { seccomp: 'strict' });
      expect([r.verdict, r.stdout]).toEqual(['OK', 'EPERM EPERM EPERM EPERM\n']);
    },
  );

  it.skipIf(process.arch !== 'x64')('strict: a thread clone with any other flag is a violation', async () => {
    /* glibc's thread flags plus CLONE_NEWNS, CLONE_NEWUSER, CLONE_VFORK, CLONE_PARENT, CLONE_PTRACE, CLONE_PIDFD, an exit signal */
    const thread = 0x3d0f00;
    for (const extra of [0x20000, 0x10000000, 0x4000, 0x8000, 0x2000, 0x1000, 17]) {
      const r = await tool(['clone-thread', (thread | extra).toString(16)], { seccomp: 'strict' });
      expect([r.verdict, r.violation?.syscall, r.stdout]).toEqual(['SECURITY_VIOLATION', 'clone', '']);
    }
    /* and the thread flags less CLONE_THREAD: a process sharing memory (what vfork does) */
    const p = await tool(['clone-thread', (thread & ~0x10000).toString(16)], { seccomp: 'strict' });
    expect([p.verdict, p.violation?.syscall]).toEqual(['SECURITY_VIOLATION', 'clone']);
  });

  it('compile: processes and AF_UNIX sockets pass, any other socket is EACCES, mount a violation', async () => {
    const r = await tool(['fork-socket'], { seccomp: 'compile' });
    expect([r.verdict, r.stdout]).toEqual(['OK', 'child done\n']);
    /* AF_UNIX, AF_UNIX with bit 32 set (the kernel reads an int), AF_INET, AF_INET6, AF_NETLINK, AF_VSOCK */
    const u = await tool(['socket-family', '1', '100000001', '2', 'a', '10', '28'], { seccomp: 'compile' });
    expect([u.verdict, u.stdout]).toEqual(['OK', 'ok ok EACCES EACCES EACCES EACCES\n']);
    expect((await tool(['socket'], { seccomp: 'compile' })).stdout).toBe('socket: EACCES\n');
    const s = await tool(['spawn'], { seccomp: 'compile' });
    expect([s.verdict, s.stdout]).toEqual(['OK', 'hello\nspawn: ok\n']);
    const d = await tool(['mount'], { seccomp: 'compile' });
    expect([d.verdict, d.violation?.syscall]).toEqual(['SECURITY_VIOLATION', 'mount']);
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
    /* strict lets the thread start (clone3 ENOSYS, then clone with CLONE_THREAD): its socket is the violation */
    expect([s.verdict, s.violation?.syscall, s.stdout]).toEqual(['SECURITY_VIOLATION', 'socket', '']);
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

  it('a name libseccomp does not know: dropped with a warning where allowed, refused where denied', async () => {
    /* An allow-list (a rule that allows what the default allows is dropped before it is compiled). */
    const allowed = profile({
      defaultAction: 'SCMP_ACT_ERRNO',
      syscalls: [
        {
          names: [
            'capsule_future_call',
            ...'read write exit_group execve brk arch_prctl set_tid_address'.split(' '),
          ],
          action: 'SCMP_ACT_ALLOW',
        },
        {
          names:
            'set_robust_list rseq prlimit64 readlink uname mprotect newfstatat fstat getrandom mmap munmap ioctl'.split(
              ' ',
            ),
          action: 'SCMP_ACT_ALLOW',
        },
      ],
    });
    const warned: string[] = [];
    const listen = (w: Error) => warned.push(w.name + ': ' + w.message);
    process.on('warning', listen);
    try {
      const r = await tool(['hello'], { seccompProfile: allowed, explain: true });
      expect(r.stdout).toBe('hello\n');
      const load = r.explain?.find((s) => s.step === 'load_seccomp');
      expect(load?.call).toContain('capsule_future_call, which this libseccomp does not know');
      await tool(['hello'], { seccompProfile: allowed });
      await new Promise((resolve) => setImmediate(resolve));
      expect(warned.filter((w) => w.includes('capsule_future_call'))).toEqual([
        `CapsuleWarning: seccomp profile ${allowed}: allows capsule_future_call, which this libseccomp does not know: left out, so the default action answers them (as Docker and runc do)`,
      ]);
    } finally {
      process.off('warning', listen);
    }
    const denied = profile({
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [{ names: ['mount', 'capsule_future_call'], action: 'SCMP_ACT_ERRNO' }],
    });
    const err = await tool(['hello'], { seccompProfile: denied }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(
      /"capsule_future_call" is a system call name this libseccomp does not know, in a rule that denies it/,
    );
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
      /seccomp must be one of default, default-kill, strict, compile, none, got "tight"/,
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

/*
 * Docker's own default.json (test/security/profiles/README.md). Docker turns
 * it into the OCI form for a container's capabilities before runc sees it;
 * `mobyToOci` is that step (moby/profiles seccomp/seccomp_linux.go,
 * setupSeccomp) with the empty capability set a capsule program has, written
 * here apart from capsule's reader so that the two can disagree.
 */
const DOCKER_DEFAULT = join(import.meta.dirname, 'profiles/docker-default.json');

interface DockerRule {
  names?: string[] | null;
  name?: string;
  action: string;
  errnoRet?: number;
  args?: unknown[] | null;
  includes?: { arches?: string[] | null; caps?: string[] | null; minKernel?: string } | null;
  excludes?: { arches?: string[] | null; caps?: string[] | null; minKernel?: string } | null;
}

function mobyToOci(d: {
  defaultAction: string;
  defaultErrnoRet?: number;
  archMap?: { architecture: string; subArchitectures: string[] | null }[];
  syscalls: DockerRule[];
}) {
  const arch = process.arch === 'arm64' ? 'arm64' : 'amd64';
  const scmp = process.arch === 'arm64' ? 'SCMP_ARCH_AARCH64' : 'SCMP_ARCH_X86_64';
  const entry = (d.archMap ?? []).find((a) => a.architecture === scmp);
  const [major, minor] = release().split('.').map(Number) as [number, number];
  const kernelAtLeast = (v: string) => {
    const [a, b] = v.split('.').map(Number) as [number, number];
    return major > a || (major === a && minor >= b);
  };
  const caps: string[] = [];
  const keep = (c: DockerRule) => {
    const ex = c.excludes;
    if (ex?.arches?.includes(arch)) return false;
    if (ex?.caps?.some((cap) => caps.includes(cap))) return false;
    if (ex?.minKernel && kernelAtLeast(ex.minKernel)) return false;
    const inc = c.includes;
    if (inc?.arches?.length && !inc.arches.includes(arch)) return false;
    if (inc?.caps?.some((cap) => !caps.includes(cap))) return false;
    if (inc?.minKernel && !kernelAtLeast(inc.minKernel)) return false;
    return true;
  };
  return {
    defaultAction: d.defaultAction,
    defaultErrnoRet: d.defaultErrnoRet,
    architectures: entry ? [entry.architecture, ...(entry.subArchitectures ?? [])] : [],
    syscalls: d.syscalls.filter(keep).map((c) => ({
      names: c.names ?? [c.name],
      action: c.action,
      ...(c.errnoRet === undefined ? {} : { errnoRet: c.errnoRet }),
      ...(c.args ? { args: c.args } : {}),
    })),
  };
}

const RUNC = ['/usr/sbin/runc', '/usr/bin/runc', '/usr/local/sbin/runc'].find((p) => existsSync(p));

describe("Docker's default.json", () => {
  it('is read as Docker reads it (null lists, LOONGARCH64, caps, minKernel) and runs programs', async () => {
    const r = await tool(['hello'], { seccompProfile: DOCKER_DEFAULT });
    expect([r.verdict, r.stdout]).toEqual(['OK', 'hello\n']);
    const sh = await run({
      rootfs: f.rootfs,
      argv: ['/bin/sh', '-c', 'ls / | wc -l'],
      seccompProfile: DOCKER_DEFAULT,
    });
    expect(sh.verdict).toBe('OK');
    /* mount is allowed only with CAP_SYS_ADMIN: EPERM, the default errno */
    expect((await tool(['mount'], { seccompProfile: DOCKER_DEFAULT })).stdout).toBe('mount: EPERM\n');
    /*
     * Unnamed below the profile's highest call (400: a hole in x86_64's table): EPERM, its default.
     * Above it (statmount 457, 470): ENOSYS, runc's stub.
     */
    if (process.arch === 'x64') {
      const refused = await scan(['400', '457', '470'], { seccompProfile: DOCKER_DEFAULT });
      expect([...refused]).toEqual([
        [400, 'EPERM'],
        [457, 'ENOSYS'],
        [470, 'ENOSYS'],
      ]);
    }
  });

  /*
   * The same profile under runc (config.json's linux.seccomp, as Docker
   * passes it) and under capsule: every number 0..470 with the arguments -1,
   * in a child each (probes/syscall_scan.c). The answers must be the same,
   * errno for errno, for every number.
   */
  it.skipIf(!RUNC)(
    'refuses the same calls, with the same errno, as runc with the same profile (needs runc)',
    async () => {
      const oci = mobyToOci(JSON.parse(readFileSync(DOCKER_DEFAULT, 'utf8')));
      const bundle = mkdtempSync(join(f.dir, 'runc-'));
      const id = `capsule-test-runc-${process.pid}`;
      const cgroupsPath = `/${id}`;
      const state = join(bundle, 'state');
      writeFileSync(
        join(bundle, 'config.json'),
        JSON.stringify({
          ociVersion: '1.0.2',
          process: {
            terminal: false,
            user: { uid: 65534, gid: 65534 },
            args: ['/escape/syscall_scan', '0-470'],
            env: ['PATH=/bin'],
            cwd: '/',
            capabilities: { bounding: [], effective: [], permitted: [], inheritable: [], ambient: [] },
            noNewPrivileges: true,
          },
          root: { path: f.rootfs, readonly: true },
          hostname: 'runc',
          mounts: [
            { destination: '/proc', type: 'proc', source: 'proc' },
            { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'mode=755'] },
            { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev'] },
          ],
          linux: {
            namespaces: ['pid', 'network', 'ipc', 'uts', 'mount'].map((type) => ({ type })),
            cgroupsPath,
            seccomp: oci,
          },
        }),
      );
      let runcOut: string;
      try {
        runcOut = (await promisify(execFile)(RUNC!, ['--root', state, 'run', '--bundle', bundle, id])).stdout;
      } finally {
        await promisify(execFile)(RUNC!, ['--root', state, 'delete', '--force', id]).catch(() => {});
        /* runc removes its cgroups on delete; a leftover one would be this test's, so it goes. */
        for (const ctrl of readdirSync('/sys/fs/cgroup')) {
          const dir = join('/sys/fs/cgroup', ctrl, id);
          if (existsSync(dir)) rmdirSync(dir);
        }
        rmSync(bundle, { recursive: true, force: true });
      }
      const parse = (out: string) =>
        Object.fromEntries(
          out
            .trim()
            .split('\n')
            .filter(Boolean)
            .map((l) => l.split(' ')),
        ) as Record<string, string>;
      const runcRefused = parse(runcOut);
      const capsuleRefused = Object.fromEntries(await scan(['0-470'], { seccompProfile: DOCKER_DEFAULT }));
      const none = Object.fromEntries(await scan(['0-470'], { seccomp: 'none' }));
      /* The profile refuses much more than the kernel does by itself: the comparison has something to compare. */
      expect(Object.keys(runcRefused).length).toBeGreaterThan(Object.keys(none).length + 20);
      const diff = Array.from({ length: 471 }, (_, n) => n)
        .filter((n) => runcRefused[n] !== capsuleRefused[n])
        .map((n) => `${n}: runc ${runcRefused[n] ?? 'kernel'}, capsule ${capsuleRefused[n] ?? 'kernel'}`);
      expect(diff).toEqual([]);
    },
    120_000,
  );
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
    const before = { fds: openFds(), mounts: mountCount() };
    for (let i = 0; i < 4; i++) {
      const runs = await batch();
      expect(runs.map((r) => r.verdict)).toEqual(Array(8).fill('SECURITY_VIOLATION'));
    }
    expect(mountCount()).toBe(before.mounts);
    expect(zombieChildren()).toEqual([]);
    /* Sockets close on the next tick after 'close'; give them one. */
    await new Promise((r) => setTimeout(r, 50));
    expect(fdsLeftSince(before.fds)).toEqual([]);
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
