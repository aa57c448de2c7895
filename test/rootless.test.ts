/**
 * Rootless capsule, run for real: a throwaway user is made (useradd), capsule's built files
 * are copied where that user can read them, and the CLI and a library script run through
 * `setpriv --reuid --regid --clear-groups`. The escape suite's probes run inside, as in
 * test/security/escape.test.ts, and must all be contained; what a user namespace cannot do
 * (cgroup limits, devices, leased host ids) must be refused with one line.
 */
import { execFileSync } from 'node:child_process';
import {
  accessSync,
  chmodSync,
  chownSync,
  constants as fsConstants,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { detectCgroups } from '../src/cgroup/detect.js';
import type { DoctorReport } from '../src/doctor.js';
import { packageRoot } from '../src/native.js';
import { rootlessIdPlan, subordinateRange } from '../src/rootless.js';
import { mountCount, processesWith } from './helpers/host.js';
import { cleanup, type Fixture, hostState, makeFixture, markUnread } from './security/fixtures.js';

/** Why this machine cannot run the rootless path (checked at run time), or null. */
function skipReason(): string | null {
  if (process.getuid?.() !== 0) return 'making a throwaway user needs root';
  for (const tool of ['/usr/sbin/useradd', '/usr/sbin/userdel', '/usr/bin/setpriv'])
    if (!existsSync(tool)) return `${tool} is missing (apt-get install passwd util-linux)`;
  const sysctl = (name: string) => {
    try {
      return readFileSync(`/proc/sys/${name}`, 'utf8').trim();
    } catch {
      return null;
    }
  };
  if (sysctl('user/max_user_namespaces') === '0') return 'user.max_user_namespaces is 0';
  if (sysctl('kernel/unprivileged_userns_clone') === '0') return 'kernel.unprivileged_userns_clone is 0';
  if (sysctl('kernel/apparmor_restrict_unprivileged_userns') === '1')
    return 'kernel.apparmor_restrict_unprivileged_userns is 1';
  return null;
}

function etcWritable(): boolean {
  try {
    accessSync('/etc/passwd', fsConstants.W_OK);
    return true;
  } catch {
    return false;
  }
}

const reason = skipReason();
const probe = inject('probe');
const NAME = `capsule-rl-${process.pid}`;
let uid = -1;
let added = false;
let gid = -1;
let pkg = '';
let f: Fixture;

beforeAll(async () => {
  if (reason) return;
  f = await makeFixture(probe);
  if (etcWritable()) {
    execFileSync('/usr/sbin/useradd', [
      '--system',
      '--no-create-home',
      '--user-group',
      '--shell',
      '/usr/sbin/nologin',
      NAME,
    ]);
    added = true;
    uid = Number(execFileSync('id', ['-u', NAME], { encoding: 'utf8' }));
    gid = Number(execFileSync('id', ['-g', NAME], { encoding: 'utf8' }));
  } else {
    /* A read-only /etc (the cgroup v2 VM, run-in-v2): an id no entry names is as unprivileged. */
    uid = gid = 61000 + (process.pid % 3000);
  }
  /* The worktree may not be readable by that user: a copy of what a run needs, readable by all. */
  pkg = mkdtempSync(join(tmpdir(), 'capsule-rootless-'));
  const root = packageRoot();
  copyFileSync(join(root, 'package.json'), join(pkg, 'package.json'));
  /*
   * Not the CLI's start-up snapshot (5 MB, which these tests do not start: they run the
   * bundle): a synchronous copy that slow blocks the worker long enough, in the emulated
   * cgroup v2 VM, for vitest's own RPC to time out.
   */
  cpSync(join(root, 'dist'), join(pkg, 'dist'), {
    recursive: true,
    filter: (src) => !src.endsWith('.blob'),
  });
  mkdirSync(join(pkg, 'build/Release'), { recursive: true });
  for (const file of ['capsule.node', 'capsule-init'])
    copyFileSync(join(root, 'build/Release', file), join(pkg, 'build/Release', file));
  writeFileSync(
    join(pkg, 'lib.mjs'),
    `const { run } = await import(${JSON.stringify(join(pkg, 'dist/src/index.js'))});
const r = await run({ rootfs: process.argv[2], argv: process.argv.slice(3), wallTimeLimitMs: 10000 });
console.log(JSON.stringify({ exitCode: r.exitCode, stdout: r.stdout, accounting: r.accounting, cpuTimeMs: r.cpuTimeMs, memoryPeakBytes: r.memoryPeakBytes, verdict: r.verdict }));
`,
  );
  execFileSync('chmod', ['-R', 'a+rX', pkg]);
}, 900_000); /* compiling the probes takes minutes in the cgroup v2 VM (run-in-v2) */

afterAll(async () => {
  if (reason) return;
  if (added) execFileSync('/usr/sbin/userdel', [NAME]);
  if (pkg) rmSync(pkg, { recursive: true, force: true });
  await cleanup(f);
});

/** `capsule ARGS` as the throwaway user (with its own gid unless `asGid` says otherwise). */
function capsule(args: string[], asGid = gid, extraEnv: Record<string, string> = {}) {
  return execa(
    '/usr/bin/setpriv',
    [
      `--reuid=${uid}`,
      `--regid=${asGid}`,
      '--clear-groups',
      '--',
      process.execPath,
      join(pkg, 'dist/capsule.mjs'),
      ...args,
    ],
    {
      reject: false,
      cwd: pkg,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/', ...extraEnv },
      extendEnv: false,
    },
  );
}

/**
 * A library script (ESM) run as the throwaway user: argv[2] is the library's path, the rest
 * `args`. The script is written into the package copy, readable by that user.
 */
async function library(script: string, args: string[]) {
  const file = join(pkg, `script-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(file, script, { mode: 0o644 });
  try {
    return await execa(
      '/usr/bin/setpriv',
      [
        `--reuid=${uid}`,
        `--regid=${gid}`,
        '--clear-groups',
        '--',
        process.execPath,
        file,
        join(pkg, 'dist/src/index.js'),
        ...args,
      ],
      { reject: false, cwd: pkg, env: { PATH: '/usr/bin:/bin', HOME: '/' }, extendEnv: false },
    );
  } finally {
    rmSync(file, { force: true });
  }
}

/**
 * A rootless session through the library, start to end: argv[3] the rootfs, argv[4] a
 * directory of the user's with in.txt, argv[5] a host process of the user's (a canary).
 * Prints what each step saw, as JSON.
 */
const SESSION_SCRIPT = String.raw`
const { create, run } = await import(process.argv[2]);
const { readFileSync, readlinkSync, writeFileSync } = await import('node:fs');
const [rootfs, dir] = process.argv.slice(3);
const o = {};
const box = await create({ rootfs, cwd: '/tmp' });
const pick = (r) => ({ exitCode: r.exitCode, verdict: r.verdict, stdout: r.stdout, accounting: r.accounting });
o.a = pick(await box.exec(['/bin/sh', '-c', 'echo hello > /tmp/state; exit 3']));
o.b = pick(await box.exec(['/bin/cat', '/tmp/state']));
await box.copyIn(dir + '/in.txt', '/tmp/in.txt');
o.inFile = pick(await box.exec(['/bin/sh', '-c', 'cat /tmp/in.txt && echo appended >> /tmp/in.txt && stat -c "%u %g" /tmp/in.txt']));
await box.copyOut('/tmp/in.txt', dir + '/out.txt');
writeFileSync(dir + '/secret', 'host secret\n');
writeFileSync(dir + '/payload', 'payload\n');
o.planted = (await box.exec(['/bin/sh', '-c', '/bin/busybox ln -s / /tmp/root && /bin/busybox ln -s ' + dir + '/secret /tmp/host'])).exitCode;
o.loops = [];
for (const p of ['/tmp/root/etc/passwd', '/tmp/host']) {
  await box.copyOut(p, dir + '/got').catch((e) => o.loops.push(e.code));
  await box.copyIn(dir + '/payload', p).catch((e) => o.loops.push(e.code));
}
await box.copyOut('/../../../etc/passwd', dir + '/passwd');
o.passwd = readFileSync(dir + '/passwd', 'utf8');
o.boxNs = {};
for (const ns of ['mnt', 'net', 'pid', 'ipc', 'uts', 'user']) o.boxNs[ns] = readlinkSync('/proc/' + box.pid + '/ns/' + ns);
o.ns = {};
for (const m of (await box.exec(['/bin/ls', '-l', '/proc/self/ns'])).stdout.matchAll(/ (\w+) -> (\w+:\[\d+\])/g)) o.ns[m[1]] = m[2];
o.cgroupLines = (await box.exec(['/bin/cat', '/proc/self/cgroup'])).stdout.trim().split('\n');
o.maps = (await box.exec(['/bin/cat', '/proc/self/uid_map', '/proc/self/gid_map'])).stdout;
const fresh = JSON.parse((await run({ rootfs, argv: ['/probe', 'info'], cwd: '/tmp' })).stdout);
const joined = JSON.parse((await box.exec(['/probe', 'info'])).stdout);
for (const k of ['pid', 'ppid', 'sid', 'procPids']) { delete fresh[k]; delete joined[k]; }
o.fresh = fresh; o.joined = joined;
const guarded = await create({ rootfs, seccomp: 'default-kill' });
const bad = await guarded.exec(['/probe', 'forbidden']);
o.violation = { verdict: bad.verdict, syscall: bad.violation?.syscall, after: (await guarded.exec(['/bin/true'])).verdict };
await guarded.destroy();
o.escapes = {};
for (const name of ['kill_all', 'ptrace', 'caps_status', 'mount', 'unshare_user', 'setuid_root', 'pivot_root', 'keyctl'])
  o.escapes[name] = (await box.exec(['/escape/' + name])).stdout;
o.timed = (await box.exec(['/probe', 'sleep', '10000'], { wallTimeLimitMs: 200 })).verdict;
const server = box.spawn(['/bin/sh', '-c', 'read l; echo "got $l $(cat /tmp/state)"']);
let streamed = '';
server.stdout.on('data', (d) => (streamed += d));
server.stdin.end('one\n');
o.spawned = { exitCode: (await server.result).exitCode, streamed };
const marker = 'capsule-rl-leftover-' + process.pid;
await box.exec(['/bin/sh', '-c', 'exec -a ' + marker + ' /probe sleep 60000 & echo started']);
o.leftover = (await box.exec(['/bin/sh', '-c', 'ps -o args | grep ' + marker + ' | grep -v grep || true'])).stdout;
o.psWorks = (await box.exec(['/bin/sh', '-c', 'ps -o args'])).stdout;
await box.exec(['/bin/touch', '/tmp/mark']);
const before = box.pid;
await box.reset();
o.resetPidChanged = box.pid !== before;
o.resetMark = (await box.exec(['/bin/ls', '/tmp/mark'])).exitCode;
const pid = box.pid;
await box.destroy();
let alive = true;
try { alive = !/\) [ZX] /.test(readFileSync('/proc/' + pid + '/stat', 'utf8')); } catch { alive = false; }
o.destroyed = { alive, after: await box.exec(['/bin/true']).then(() => 'ran', (e) => e.message.includes('the box has ended') ? 'the box has ended' : e.message) };
console.log(JSON.stringify(o));
`;

/** What SESSION_SCRIPT prints. */
interface SessionSeen {
  a: unknown;
  b: unknown;
  inFile: unknown;
  planted: number;
  loops: string[];
  passwd: string;
  boxNs: Record<string, string>;
  ns: Record<string, string>;
  cgroupLines: string[];
  maps: string;
  fresh: Record<string, unknown>;
  joined: Record<string, unknown>;
  violation: unknown;
  escapes: Record<string, string>;
  timed: string;
  spawned: unknown;
  leftover: string;
  psWorks: string;
  resetPidChanged: boolean;
  resetMark: number;
  destroyed: unknown;
}

/** Host processes of the throwaway user: none may outlive a run. */
function processesOfUser(): number[] {
  const found: number[] = [];
  for (const name of execFileSync('ls', ['/proc'], { encoding: 'utf8' }).split('\n')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (statSync(`/proc/${name}`).uid === uid) found.push(Number(name));
    } catch {
      /* gone */
    }
  }
  return found;
}

describe.skipIf(reason !== null)(`rootless capsule${reason ? ` (skipped: ${reason})` : ''}`, () => {
  it("runs the program as the sandbox's nobody, mapped from the caller's uid and gid alone", async () => {
    const r = await capsule([
      'run',
      f.rootfs,
      '/bin/sh',
      '-c',
      'id; cat /proc/self/uid_map /proc/self/gid_map',
    ]);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    const [id, uidMap, gidMap] = r.stdout.split('\n');
    expect(id).toMatch(/^uid=65534\(nobody\) gid=65534\(nogroup\)/);
    expect(uidMap!.trim().split(/\s+/)).toEqual(['65534', String(uid), '1']);
    expect(gidMap!.trim().split(/\s+/)).toEqual(['65534', String(gid), '1']);
    const chosen = await capsule([
      'run',
      '--uid',
      '1000',
      '--gid',
      '1001',
      f.rootfs,
      '/bin/cat',
      '/proc/self/uid_map',
      '/proc/self/gid_map',
    ]);
    expect(chosen.stdout.split('\n').map((l) => l.trim().split(/\s+/))).toEqual([
      ['1000', String(uid), '1'],
      ['1001', String(gid), '1'],
    ]);
  });

  it('builds the same sandbox: own /proc, the host device nodes bound into /dev, a read-only root, /tmp', async () => {
    const r = await capsule([
      'run',
      f.rootfs,
      '/bin/sh',
      '-c',
      'ls /dev; echo x > /dev/null && echo null-ok; ls /proc | grep -c "^[0-9]"; touch /tmp/t && echo tmp-ok; touch /x || echo root-ro',
    ]);
    expect(r.exitCode).toBe(0);
    const lines = r.stdout.split('\n');
    for (const node of [
      'full',
      'null',
      'random',
      'tty',
      'urandom',
      'zero',
      'fd',
      'stdin',
      'stdout',
      'stderr',
    ])
      expect(lines).toContain(node);
    expect(lines).toContain('null-ok');
    expect(lines).toContain('tmp-ok');
    expect(lines).toContain('root-ro');
    /* capsule-init, sh, ls and grep: the host's processes are not there. */
    expect(Number(lines[lines.indexOf('null-ok') + 1])).toBeLessThanOrEqual(4);
  });

  describe('the escape probes are contained', () => {
    const contained: [string, (f: Fixture) => string[]][] = [
      ['chroot_escape', (f) => [f.secret, '/tmp']],
      ['proc_root_walk', (f) => [f.secret]],
      [
        'host_pids',
        (f) => [
          String(f.canary.pid),
          f.marker.slice(0, f.marker.lastIndexOf('-') + 1),
          f.marker.slice(f.marker.lastIndexOf('-') + 1),
        ],
      ],
      ['net_connect', (f) => [String(f.port)]],
      ['raw_socket', () => []],
      ['netlink', () => []],
      ['mount', () => []],
      ['umount', () => ['/etc']],
      ['pivot_root', () => []],
      ['unshare_user', () => []],
      ['setuid_root', () => []],
      ['caps_status', () => []],
      ['ptrace', () => []],
      ['keyctl', () => []],
      ['bpf', () => []],
      ['perf_event', () => []],
      ['modules', () => []],
      ['reboot', () => []],
      ['clock', () => []],
      ['open_by_handle', () => []],
      ['mknod', () => ['/tmp']],
      ['dev_access', () => []],
      ['proc_leaks', () => []],
      ['proc_sys_write', () => []],
      ['io_uring', () => []],
      ['userfaultfd', () => []],
      ['root_write', () => ['/capsule-probe-write']],
      ['suid_exec', () => ['/suid_helper']],
      ['hostname', () => ['capsule-pwned']],
      ['kill_all', () => []],
    ];
    for (const [name, args] of contained) {
      it(name, async () => {
        const mounts = mountCount();
        f.secretAtimeMs = markUnread(f.secret);
        f.connections = 0;
        const r = await capsule(['run', f.rootfs, `/escape/${name}`, ...args(f)]);
        const host = hostState(f);
        expect(r.stderr).toBe('');
        expect(r.stdout).toMatch(/^CONTAINED: /);
        expect(host.secretAtimeMs, 'the secret outside the rootfs was read').toBe(f.secretAtimeMs);
        expect(host.canaryAlive, "the host's canary was killed").toBe(true);
        expect(host.hostname).toBe(f.hostname);
        expect(host.connections, "the host's loopback listener was reached").toBe(0);
        expect(host.probesLeft).toEqual([]);
        expect(mountCount()).toBe(mounts);
      });
    }
    it.skipIf(process.arch !== 'x64')(
      'x32 and int80: the ABI bypasses are killed by the filter',
      async () => {
        for (const name of ['x32', 'int80']) {
          const r = await capsule(['run', f.rootfs, `/escape/${name}`]);
          expect(r.stdout, name).toBe('');
          expect(r.exitCode, name).toBe(128 + 31 /* SIGSYS */);
        }
      },
    );
  });

  it('refuses what needs root with one line naming what to enable', async () => {
    for (const [flags, says] of [
      [['--memory-limit', '64m'], '--memory-limit needs a cgroup'],
      [['--pids-limit', '10'], '--pids-limit needs a cgroup'],
      [['--cpu-time-limit', '1s'], '--cpu-time-limit needs a cgroup'],
      [['--device', '/dev/kmsg:r'], "with access 'r' needs root"],
      [['--host-ids', 'unique'], "'unique' needs root"],
    ] as const) {
      const r = await capsule(['run', ...flags, f.rootfs, '/bin/true']);
      expect(r.exitCode, flags.join(' ')).toBe(125);
      expect(r.stderr.trim().split('\n'), flags.join(' ')).toHaveLength(1);
      expect(r.stderr).toContain(says);
      if (!flags[0].includes('host-ids')) expect(r.stderr).toContain('capsule doctor');
    }
  });

  it("--device binds the host's node in ('rw'): the program opens it as the node's mode lets the user, and cannot make one", async () => {
    /* A node of the test's own (the numbers of /dev/null), in a directory the user can reach. */
    const nodes = join(pkg, 'nodes');
    mkdirSync(nodes, { mode: 0o755 });
    execFileSync('mknod', ['-m', '666', join(nodes, 'fake0'), 'c', '1', '3']);
    execFileSync('mknod', ['-m', '600', join(nodes, 'private0'), 'c', '1', '3']);
    try {
      const r = await capsule([
        'run',
        '--device',
        `${join(nodes, 'fake0')}:/dev/fake0`,
        f.rootfs,
        '/bin/sh',
        '-c',
        'echo hi > /dev/fake0 && /bin/busybox stat -c "%t:%T" /dev/fake0 && (/bin/busybox mknod /dev/made c 1 3 2>/dev/null && echo made || echo no-mknod)',
      ]);
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
      expect(r.stdout.trim().split('\n')).toEqual(['1:3', 'no-mknod']);
      /* A node the user may not open on the host stays closed inside: the bind adds no right. */
      const denied = await capsule([
        'run',
        '--device',
        `${join(nodes, 'private0')}:/dev/private0`,
        f.rootfs,
        '/bin/sh',
        '-c',
        '(echo hi > /dev/private0) 2>/dev/null && echo opened || echo denied',
      ]);
      expect(denied.stdout.trim()).toBe('denied');
    } finally {
      rmSync(nodes, { recursive: true, force: true });
    }
  });

  it('rlimits and the wall timer still apply', async () => {
    const wall = await capsule(['run', '--wall-time-limit', '300ms', f.rootfs, '/bin/sleep', '30']);
    expect(wall.exitCode).toBe(137);
    expect(wall.stderr).toContain('wall time limit of 300 ms exceeded');
    const fsize = await capsule([
      'run',
      '--file-size-limit',
      '4k',
      f.rootfs,
      '/bin/sh',
      '-c',
      'head -c 100000 /dev/zero > /tmp/big; echo $?',
    ]);
    expect(fsize.stdout.trim()).not.toBe('0');
  });

  it('the library run() as that user: accounting falls back to rusage, a lower bound', async () => {
    const r = await execa(
      '/usr/bin/setpriv',
      [
        `--reuid=${uid}`,
        `--regid=${gid}`,
        '--clear-groups',
        '--',
        process.execPath,
        join(pkg, 'lib.mjs'),
        f.rootfs,
        '/bin/sh',
        '-c',
        'id -u',
      ],
      { reject: false, cwd: pkg, env: { PATH: '/usr/bin:/bin' }, extendEnv: false },
    );
    expect(r.stderr).toBe('');
    const result = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(result).toMatchObject({
      exitCode: 0,
      stdout: '65534\n',
      accounting: 'rusage-lower-bound',
      verdict: 'OK',
    });
    expect(result.memoryPeakBytes ?? null).toBeNull();
  });

  it('--explain shows the user-namespace steps and none of the root-only ones', async () => {
    const r = await capsule(['explain', '--json', f.rootfs, '/bin/true']);
    expect(r.exitCode).toBe(0);
    const steps = (JSON.parse(r.stdout) as { step: string; call: string }[]).map((s) => s.step);
    expect(steps).toContain('map_user_ids');
    expect(steps).toContain('bind_dev_node');
    for (const absent of ['make_userns', 'set_userns', 'set_groups', 'set_netns'])
      expect(steps).not.toContain(absent);
    const ran = await capsule(['run', '--explain', f.rootfs, '/bin/true']);
    expect(ran.exitCode).toBe(0);
    expect(ran.stderr).toMatch(/parent clone +clone\(CLONE_NEWUSER\|CLONE_NEWPID/);
    expect(ran.stderr).toMatch(
      /child {2}map_user_ids +write\("\/proc\/self\/setgroups", "deny"\); gid_map "65534 \d+ 1"; uid_map "65534 \d+ 1"/,
    );
  });

  it('capsule doctor as that user: user namespaces ticked, no delegated cgroup crossed', async () => {
    const r = await capsule(['doctor', '--json']);
    const report = JSON.parse(r.stdout) as DoctorReport;
    expect(report.uid).toBe(uid);
    const status = (id: string) => report.checks.find((c) => c.id === id)?.status;
    for (const ns of ['mnt', 'pid', 'net', 'uts', 'ipc', 'cgroup', 'user'])
      expect(status(`namespace.${ns}`)).toBe('ok');
    expect(status('userns.map')).toBe('ok');
    expect(report.checks.find((c) => c.id === 'userns.subid')!.summary).toMatch(
      /capsule maps one id: the sandbox's uid is yours on the host/,
    );
    expect(r.exitCode).toBe(report.ok ? 0 : 1);
  });

  it.skipIf(!existsSync('/usr/bin/unshare'))(
    'user.max_user_namespaces = 0 (set in a user namespace of the test, so the host is untouched): the run fails at clone naming the sysctl and `capsule doctor`, which crosses it',
    async () => {
      /* Root mapped to root in a user namespace whose limit is 0, every capability dropped: a rootless caller. */
      const blocked = (args: string[]) =>
        execa(
          '/usr/bin/unshare',
          [
            '--user',
            '--map-root-user',
            '--',
            '/bin/sh',
            '-c',
            'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"',
            'sh',
            '/usr/bin/setpriv',
            '--bounding-set=-all',
            '--inh-caps=-all',
            '--',
            process.execPath,
            join(pkg, 'dist/capsule.mjs'),
            ...args,
          ],
          { reject: false },
        );
      const r = await blocked(['run', f.rootfs, '/bin/true']);
      expect(r.exitCode).toBe(125);
      expect(r.stderr).toMatch(
        /^capsule: clone failed: clone\(CLONE_NEWUSER\|.*\): No space left on device \(.*user\.max_user_namespaces = 0 .*run `capsule doctor`/,
      );
      const d = await blocked(['doctor', '--json']);
      expect(d.exitCode).toBe(1);
      const report = JSON.parse(d.stdout) as DoctorReport;
      expect(report.privileged).toBe(false);
      const check = (id: string) => report.checks.find((c) => c.id === id)!;
      expect(check('userns.max_user_namespaces').status).toBe('missing');
      expect(check('userns.max_user_namespaces').fix).toContain('sysctl -w user.max_user_namespaces=');
      expect(check('userns.map').summary).toContain('ENOSPC');
      expect(check('namespace.pid')).toMatchObject({ status: 'missing' });
      expect(check('namespace.pid').fix).toContain('user namespaces are not available to you');
    },
  );

  it.skipIf(!detectCgroups().unified)(
    'a cgroup v2 directory delegated to the user (chowned to it, the caller started inside) gives cgroup accounting, and limits as far as it offers controllers',
    async () => {
      const unified = detectCgroups().unified!;
      /* What a delegating systemd does: a directory whose controllers root enabled, then one the user owns per caller. */
      const dir = join(unified.mountPoint, `capsule-rl-${process.pid}`);
      mkdirSync(dir);
      const offered = readFileSync(join(dir, 'cgroup.controllers'), 'utf8').split(/\s+/).filter(Boolean);
      const wanted = offered.filter((c) => ['memory', 'pids', 'cpu'].includes(c));
      if (wanted.length > 0)
        writeFileSync(join(dir, 'cgroup.subtree_control'), wanted.map((c) => `+${c}`).join(' '));
      const leaves: string[] = [];
      /* The caller starts in a leaf of its own (as `systemd-run --user --scope -p Delegate=yes` does). */
      const inside = (cmd: string[]) => {
        const leaf = join(dir, `caller${leaves.length}`);
        mkdirSync(leaf);
        leaves.push(leaf);
        for (const p of [
          leaf,
          ...['cgroup.procs', 'cgroup.subtree_control', 'cgroup.threads'].map((n) => join(leaf, n)),
        ])
          chownSync(p, uid, gid);
        return execa(
          '/bin/sh',
          [
            '-c',
            'echo $$ > "$0/cgroup.procs" && exec "$@"',
            leaf,
            '/usr/bin/setpriv',
            `--reuid=${uid}`,
            `--regid=${gid}`,
            '--clear-groups',
            '--',
            process.execPath,
            ...cmd,
          ],
          { reject: false, cwd: pkg, env: { PATH: '/usr/bin:/bin' }, extendEnv: false },
        );
      };
      try {
        const r = await inside([join(pkg, 'lib.mjs'), f.rootfs, '/bin/sh', '-c', 'id -u']);
        expect(r.stderr).toBe('');
        const result = JSON.parse(r.stdout) as Record<string, unknown>;
        expect(result).toMatchObject({ exitCode: 0, stdout: '65534\n', accounting: 'cgroup', verdict: 'OK' });
        const mem = await inside([
          join(pkg, 'dist/capsule.mjs'),
          'run',
          '--memory-limit',
          '32m',
          f.rootfs,
          '/probe',
          'mem',
          '100',
        ]);
        if (wanted.includes('memory')) {
          /* The pure v2 machine: the limit holds, from a user's delegated subtree. */
          expect(mem.exitCode).toBe(137);
          expect(mem.stderr).toContain(
            'memory limit of 33554432 bytes exceeded (killed by the cgroup OOM killer)',
          );
          /* capsule left the leaf it started in, so that it could enable memory for its sandboxes. */
          expect(readFileSync(join(leaves[1]!, 'cgroup.subtree_control'), 'utf8')).toContain('memory');
        } else {
          const leaf = leaves[1]!;
          expect(mem.exitCode).toBe(125);
          expect(mem.stderr.trim()).toBe(
            `capsule: --memory-limit needs the memory controller, which the cgroup delegated to you (${leaf}) does not offer (it offers: ${readFileSync(join(leaf, 'cgroup.controllers'), 'utf8').trim() || 'none'}): ask for it to be delegated (systemd: Delegate=memory), or run capsule as root`,
          );
        }
        /*
         * A session there: the box and each command get a cgroup of their own in the delegated
         * subtree, so figures are exact and what a command leaves (a setsid'd daemon, out of
         * reach of its session) is ended with the command's cgroup.
         */
        const marker = `capsule-rl-daemon-${process.pid}`;
        const script = join(pkg, 'session-delegated.mjs');
        writeFileSync(
          script,
          `const { create } = await import(${JSON.stringify(join(pkg, 'dist/src/index.js'))});
           const box = await create({ rootfs: process.argv[2]${wanted.includes('pids') ? ', pidsLimit: 64' : ''} });
           const d = await box.exec(['/probe', 'daemon', process.argv[3]]);
           const after = [];
           for (let i = 0; i < 3; i++) after.push((await box.exec(['/bin/echo', 'next'])).stdout);
           const c = await box.exec(['/bin/cat', '/proc/self/cgroup']);
           await box.destroy();
           console.log(JSON.stringify({ daemon: d.exitCode, after, accounting: c.accounting, cgroup: c.stdout.trim().split('\\n').every((l) => l.endsWith(':/')) }));`,
          { mode: 0o644 },
        );
        const sess = await inside([script, f.rootfs, marker]);
        expect(sess.stderr).toBe('');
        /* The commands after it ran: a cgroup once killed is not reused (src/cgroup/v2.ts). */
        expect(JSON.parse(sess.stdout)).toEqual({
          daemon: 0,
          after: ['next\n', 'next\n', 'next\n'],
          accounting: 'cgroup',
          cgroup: true,
        });
        expect(processesWith(marker)).toEqual([]);
        /* The sandboxes' cgroups are gone with the run; only capsule's parent is left. */
        for (const leaf of leaves)
          if (existsSync(join(leaf, 'capsule')))
            expect(
              readdirSync(join(leaf, 'capsule'), { withFileTypes: true }).filter((e) => e.isDirectory()),
            ).toEqual([]);
      } finally {
        for (const leaf of leaves) {
          for (const sub of ['capsule', 'capsule.self'])
            if (existsSync(join(leaf, sub))) rmdirSync(join(leaf, sub));
          rmdirSync(leaf);
        }
        rmdirSync(dir);
      }
    },
  );

  describe('sessions as that user (no cgroup delegated: each command without one, rusage figures)', () => {
    let canary: ReturnType<typeof execa> | undefined;
    let xdg = '';
    beforeAll(async () => {
      /* A process of the throwaway user on the host: what kill(-1) from a command would reach. */
      canary = execa('/usr/bin/setpriv', [
        `--reuid=${uid}`,
        `--regid=${gid}`,
        '--clear-groups',
        '--',
        '/bin/sleep',
        '600',
      ]);
      canary.catch(() => {});
      xdg = mkdtempSync(join(tmpdir(), 'capsule-rl-xdg-'));
      chownSync(xdg, uid, gid);
      chmodSync(xdg, 0o700);
    });
    afterAll(async () => {
      canary?.kill('SIGKILL');
      await canary?.catch(() => {});
      if (xdg) rmSync(xdg, { recursive: true, force: true });
    });

    it('create, exec, copyIn, copyOut and destroy from the library, with the isolation of a rootless run()', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'capsule-rl-sess-'));
      try {
        writeFileSync(join(dir, 'in.txt'), 'from the host\n', { mode: 0o644 });
        chownSync(dir, uid, gid);
        chownSync(join(dir, 'in.txt'), uid, gid);
        const r = await library(SESSION_SCRIPT, [f.rootfs, dir, String(canary!.pid)]);
        expect(r.stderr).toBe('');
        const o = JSON.parse(r.stdout) as SessionSeen;
        /* State carries between commands, each with its own result; figures are rusage's (no cgroup). */
        expect(o.a).toMatchObject({
          exitCode: 3,
          verdict: 'RUNTIME_ERROR',
          accounting: 'rusage-lower-bound',
        });
        expect(o.b).toMatchObject({ exitCode: 0, stdout: 'hello\n' });
        /* copyIn's file belongs to the box's user, who can change it; copyOut brings it back. */
        expect(o.inFile).toMatchObject({ exitCode: 0, stdout: 'from the host\n65534 65534\n' });
        expect(readFileSync(join(dir, 'out.txt'), 'utf8')).toBe('from the host\nappended\n');
        /* No symlink the program planted is followed, either way; .. stays in the box. */
        expect(o.planted).toBe(0);
        expect(o.loops).toEqual(['ELOOP', 'ELOOP', 'ELOOP', 'ELOOP']);
        expect(readFileSync(join(dir, 'secret'), 'utf8')).toBe('host secret\n');
        expect(o.passwd).toBe(readFileSync(join(f.rootfs, 'etc/passwd'), 'utf8'));
        /* The namespaces of the box's PID 1, the user namespace included; none of the host's. */
        for (const ns of ['mnt', 'net', 'pid', 'ipc', 'uts', 'user']) {
          expect(o.ns[ns], ns).toBe(o.boxNs[ns]);
          expect(o.boxNs[ns], ns).not.toBe(readlinkSync(`/proc/self/ns/${ns}`));
        }
        expect(o.ns.cgroup).not.toBe(readlinkSync('/proc/self/ns/cgroup'));
        expect(o.cgroupLines.every((l: string) => l.endsWith(':/'))).toBe(true);
        /* The maps are the box's, not written again: the caller's uid and gid alone. */
        expect(
          o.maps
            .trim()
            .split('\n')
            .map((l: string) => l.trim().split(/\s+/)),
        ).toEqual([
          ['65534', String(uid), '1'],
          ['65534', String(gid), '1'],
        ]);
        /* What the probe sees in a command is what it sees in a fresh rootless run(). */
        expect(o.joined).toEqual(o.fresh);
        expect(o.joined).toMatchObject({
          uid: 65534,
          CapEff: '0000000000000000',
          NoNewPrivs: '1',
          Seccomp: '2',
        });
        expect(o.violation).toMatchObject({ verdict: 'SECURITY_VIOLATION', syscall: 'mount', after: 'OK' });
        for (const [name, out] of Object.entries(o.escapes as Record<string, string>))
          expect(out, name).toMatch(/^CONTAINED: /);
        expect(o.timed).toBe('TIME_LIMIT');
        /* box.spawn(): streams both ways, in the same box. */
        expect(o.spawned).toEqual({ exitCode: 0, streamed: 'got one hello\n' });
        /* A command ends what it left behind in its own session; the box's PID 1 is fresh after reset. */
        expect(o.leftover).toBe('');
        expect(o.psWorks).toContain('ps -o args');
        expect(o.resetMark).not.toBe(0);
        expect(o.resetPidChanged).toBe(true);
        expect(o.destroyed).toEqual({ alive: false, after: 'the box has ended' });
        expect(mountCount()).toBeGreaterThan(0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      /* kill(-1) from a command, and the commands ended at their limit, reached no process of the user's. */
      expect(canary!.exitCode).toBeNull();
      expect(existsSync(`/proc/${canary!.pid}`)).toBe(true);
      expect(processesOfUser().filter((p) => p !== canary!.pid)).toEqual([]);
    });

    it('limits a session needs a cgroup for are refused in one line, as for run()', async () => {
      const r = await library(
        `const { create } = await import(process.argv[2]);
         try { await create({ rootfs: process.argv[3], memoryLimitBytes: 64 << 20 }); console.log('made'); }
         catch (e) { console.log(e.message); }`,
        [f.rootfs],
      );
      expect(r.stdout).toMatch(
        /^memoryLimitBytes needs a cgroup, and without root capsule has none it may write/,
      );
    });

    it('capsule create, exec, cp, ps and rm as that user, its state under $XDG_RUNTIME_DIR', async () => {
      const name = `rl${process.pid}`;
      const env = { XDG_RUNTIME_DIR: xdg };
      const dir = mkdtempSync(join(tmpdir(), 'capsule-rl-cli-'));
      chownSync(dir, uid, gid);
      try {
        const c = await capsule(['create', '--name', name, f.rootfs], gid, env);
        expect(c.stderr).toBe('');
        expect(c.stdout).toBe(name);
        const state = JSON.parse(readFileSync(join(xdg, 'capsule/sessions', name, 'state.json'), 'utf8')) as {
          pid: number;
        };
        expect(statSync(join(xdg, 'capsule/sessions')).uid).toBe(uid);
        const e1 = await capsule(
          ['exec', name, '/bin/sh', '-c', 'echo kept > /tmp/k; id -u; exit 4'],
          gid,
          env,
        );
        expect(e1).toMatchObject({ exitCode: 4, stdout: '65534' });
        const e2 = await capsule(['exec', name, '/bin/cat', '/tmp/k'], gid, env);
        expect(e2).toMatchObject({ exitCode: 0, stdout: 'kept' });
        const ls = await capsule(['exec', name, '/bin/ls', '-l', '/proc/self/ns/user'], gid, env);
        const ns = / -> (user:\[\d+\])$/.exec(ls.stdout)?.[1];
        expect(ns).toBe(readlinkSync(`/proc/${state.pid}/ns/user`));
        expect(ns).not.toBe(readlinkSync('/proc/self/ns/user'));
        const cpOut = await capsule(['cp', `${name}:/tmp/k`, join(dir, 'k')], gid, env);
        expect(cpOut.stderr).toBe('');
        expect(readFileSync(join(dir, 'k'), 'utf8')).toBe('kept\n');
        writeFileSync(join(dir, 'up'), 'up\n');
        chownSync(join(dir, 'up'), uid, gid);
        expect((await capsule(['cp', join(dir, 'up'), `${name}:/tmp/up`], gid, env)).exitCode).toBe(0);
        const e3 = await capsule(
          ['exec', name, '/bin/sh', '-c', 'echo more >> /tmp/up && cat /tmp/up'],
          gid,
          env,
        );
        expect(e3).toMatchObject({ exitCode: 0, stdout: 'up\nmore' });
        const ps = await capsule(['ps'], gid, env);
        expect(ps.stdout).toMatch(new RegExp(`^${name} +${state.pid} +running `, 'm'));
        const rm = await capsule(['rm', name], gid, env);
        expect(rm).toMatchObject({ exitCode: 0, stderr: '' });
        expect(existsSync(`/proc/${state.pid}`)).toBe(false);
        expect(existsSync(join(xdg, 'capsule/sessions', name))).toBe(false);
        const gone = await capsule(['exec', name, '/bin/true'], gid, env);
        expect(gone.exitCode).toBe(125);
        expect(gone.stderr).toContain(`no session named ${name}`);
      } finally {
        await capsule(['rm', name], gid, env);
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  it.skipIf(!detectCgroups().unified)(
    "capsule gc as that user removes a crashed run's sandbox cgroup in its delegated subtree, killing what is inside, and keeps live ones",
    async () => {
      const unified = detectCgroups().unified!;
      /* As systemd's user@UID.service with Delegate=yes: a directory the user owns, a scope per caller below. */
      const dir = join(unified.mountPoint, `capsule-rl-gc-${process.pid}`);
      mkdirSync(dir);
      const own = (d: string) => {
        for (const p of [
          d,
          ...['cgroup.procs', 'cgroup.subtree_control', 'cgroup.threads'].map((n) => join(d, n)),
        ])
          chownSync(p, uid, gid);
      };
      own(dir);
      const crashed = join(dir, 'crashed.scope');
      const gcScope = join(dir, 'gc.scope');
      const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
      /* A sandbox cgroup of a capsule process that cannot exist (a pid above pid_max), and one of a live one (ours). */
      const dead = join(crashed, 'capsule', `${pidMax + 1}-12345-1`);
      const myStart = readFileSync(`/proc/${process.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19]!;
      const live = join(crashed, 'capsule', `${process.pid}-${myStart}-1`);
      const asUser = ['/usr/bin/setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--'];
      let sleeper: ReturnType<typeof execa> | undefined;
      try {
        execFileSync(asUser[0]!, [...asUser.slice(1), '/bin/mkdir', '-p', crashed, gcScope, dead, live]);
        /* What a killed capsule leaves: a process of the user's still in its sandbox's cgroup. */
        sleeper = execa(
          '/bin/sh',
          ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', dead, ...asUser, '/bin/sleep', '600'],
          {
            reject: false,
          },
        );
        for (let i = 0; i < 200 && readFileSync(join(dead, 'cgroup.procs'), 'utf8').trim() === ''; i++)
          await new Promise((r) => setTimeout(r, 25));
        const inside = Number(readFileSync(join(dead, 'cgroup.procs'), 'utf8').trim());
        expect(inside).toBeGreaterThan(0);
        const r = await execa(
          '/bin/sh',
          [
            '-c',
            'echo $$ > "$0/cgroup.procs" && exec "$@"',
            gcScope,
            ...asUser,
            process.execPath,
            join(pkg, 'dist/capsule.mjs'),
            'gc',
            '--json',
          ],
          { reject: false, cwd: pkg, env: { PATH: '/usr/bin:/bin' }, extendEnv: false },
        );
        expect(r.stderr).toBe('');
        expect(r.exitCode).toBe(0);
        expect(JSON.parse(r.stdout)).toEqual({ removed: [dead], killed: [inside], failed: [], live: [live] });
        expect(existsSync(dead)).toBe(false);
        expect((await sleeper).signal).toBe('SIGKILL');
      } finally {
        sleeper?.kill('SIGKILL');
        await sleeper;
        for (const d of [dead, live, join(crashed, 'capsule'), crashed, gcScope, dir])
          if (existsSync(d)) rmdirSync(d);
      }
    },
  );

  /*
   * A subordinate range (/etc/subuid, /etc/subgid): an entry for the throwaway user, its name
   * unique to this run, appended and then removed, leaving both files as they were. A read-only
   * /etc (the cgroup v2 VM) or no newuidmap cannot grant one.
   */
  /*
   * A subordinate range (/etc/subuid, /etc/subgid) for the throwaway user, its name unique to
   * this run. A writable /etc: the entry is appended, then removed, leaving both files as they
   * were. A read-only /etc (the cgroup v2 VM, run-in-v2, where the user has no passwd entry
   * either): copies of /etc/passwd, /etc/subuid and /etc/subgid with the user's lines are
   * bind-mounted over them for these tests and unmounted after, as newuidmap reads those paths.
   */
  const etcRO = !etcWritable();
  const OVERLAID = ['/etc/passwd', '/etc/subuid', '/etc/subgid'];
  const rangeSkip =
    !existsSync('/usr/bin/newuidmap') || !existsSync('/usr/bin/newgidmap')
      ? 'newuidmap and newgidmap are missing (apt-get install uidmap)'
      : etcRO && !OVERLAID.every((file) => existsSync(file))
        ? `/etc is read-only and lacks one of ${OVERLAID.join(', ')} to bind a copy over`
        : null;
  describe.skipIf(rangeSkip !== null)(
    `with a subordinate id range${rangeSkip ? ` (skipped: ${rangeSkip})` : ''}`,
    () => {
      /* Far above any id useradd hands out, and distinct per run. */
      const START = 400_000_000 + (process.pid % 1000) * 65_536;
      const entry = () => `${NAME}:${START}:65536\n`;
      const existed = new Map<string, boolean>();
      const added = new Map<string, string>();
      let copies = '';
      const mounted: string[] = [];

      beforeAll(() => {
        if (etcRO) {
          copies = mkdtempSync(join(tmpdir(), 'capsule-rl-etc-'));
          for (const file of OVERLAID) {
            const text = readFileSync(file, 'utf8');
            const line = file === '/etc/passwd' ? `${NAME}:x:${uid}:${gid}::/:/usr/sbin/nologin\n` : entry();
            const copy = join(copies, file.slice('/etc/'.length));
            writeFileSync(copy, `${text}${text === '' || text.endsWith('\n') ? '' : '\n'}${line}`);
            chmodSync(copy, 0o644);
            execFileSync('mount', ['--bind', copy, file]);
            mounted.push(file);
          }
          return;
        }
        for (const file of ['/etc/subuid', '/etc/subgid']) {
          existed.set(file, existsSync(file));
          const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
          added.set(file, `${text === '' || text.endsWith('\n') ? '' : '\n'}${entry()}`);
          writeFileSync(file, text + added.get(file)!);
        }
      });
      afterAll(() => {
        if (etcRO) {
          for (const file of mounted.reverse()) execFileSync('umount', [file]);
          if (copies) rmSync(copies, { recursive: true, force: true });
          return;
        }
        /* Only our line goes (a change another writer made since stays); a file we made goes too. */
        for (const file of ['/etc/subuid', '/etc/subgid']) {
          const now = readFileSync(file, 'utf8');
          const line = added.get(file) ?? entry();
          const at = now.indexOf(line);
          const left = at < 0 ? now : now.slice(0, at) + now.slice(at + line.length);
          if (!existed.get(file) && left === '') rmSync(file);
          else writeFileSync(file, left);
        }
      });

      it("maps the whole range through newuidmap: the sandbox's nobody is a subordinate id, not the caller", async () => {
        const r = await capsule([
          'run',
          f.rootfs,
          '/bin/sh',
          '-c',
          'id; cat /proc/self/uid_map /proc/self/gid_map; grep ^Groups: /proc/self/status',
        ]);
        expect(r.stderr).toBe('');
        expect(r.exitCode).toBe(0);
        const lines = r.stdout.split('\n').map((l) => l.trim().split(/\s+/).join(' '));
        expect(lines[0]).toMatch(/^uid=65534\(nobody\) gid=65534\(nogroup\)/);
        expect(lines.slice(1, 5)).toEqual([
          `0 ${uid} 1`,
          `1 ${START} 65536`,
          `0 ${gid} 1`,
          `1 ${START} 65536`,
        ]);
        /* newgidmap left setgroups allowed, so the caller's groups were dropped (set_groups). */
        expect(lines[5]).toBe('Groups:');
      });

      it("the program cannot write the caller's files, and what it makes belongs to a subordinate id", async () => {
        const dir = mkdtempSync(join(tmpdir(), 'capsule-rl-range-'));
        try {
          writeFileSync(join(dir, 'mine'), 'caller\n', { mode: 0o644 });
          mkdirSync(join(dir, 'open'), { mode: 0o777 });
          execFileSync('chmod', ['0777', join(dir, 'open')]);
          for (const p of [dir, join(dir, 'mine'), join(dir, 'open')]) chownSync(p, uid, gid);
          execFileSync('chmod', ['0755', dir]);
          const r = await capsule([
            'run',
            '--bind',
            `${dir}:/data:rw`,
            f.rootfs,
            '/bin/sh',
            '-c',
            'echo x >> /data/mine && echo wrote-mine; touch /data/open/made && echo made; stat -c %u /data/mine',
          ]);
          expect(r.exitCode).toBe(0);
          expect(r.stdout.split('\n')).not.toContain('wrote-mine');
          expect(r.stdout.split('\n')).toContain('made');
          /* The caller's own files are root's inside: the sandbox's 0 is the caller. */
          expect(r.stdout.split('\n')).toContain('0');
          expect(readFileSync(join(dir, 'mine'), 'utf8')).toBe('caller\n');
          const made = statSync(join(dir, 'open/made'));
          expect(made.uid).toBe(START + 65534 - 1);
          expect(made.uid).not.toBe(uid);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });

      it('--explain says the range is mapped by newuidmap and newgidmap, and set_groups is back', async () => {
        const r = await capsule(['run', '--explain', f.rootfs, '/bin/true']);
        expect(r.exitCode).toBe(0);
        expect(r.stderr).toMatch(
          new RegExp(
            `map_user_ids .*/newuidmap PID 0 ${uid} 1 1 ${START} 65536; \\S*/newgidmap PID 0 ${gid} 1 1 ${START} 65536 \\(the range /etc/subuid and /etc/subgid grant ${NAME}: the sandbox's uid 65534 is host uid ${START + 65533}, not yours\\)`,
          ),
        );
        expect(r.stderr).toMatch(/child {2}set_groups/);
      });

      it("a session over the range: commands join the box's mapped namespace, groups dropped, copyIn's file is the box user's", async () => {
        const dir = mkdtempSync(join(tmpdir(), 'capsule-rl-range-sess-'));
        try {
          writeFileSync(join(dir, 'in.txt'), 'in\n', { mode: 0o644 });
          for (const p of [dir, join(dir, 'in.txt')]) chownSync(p, uid, gid);
          const r = await library(
            `const { create } = await import(process.argv[2]);
             const box = await create({ rootfs: process.argv[3] });
             const sh = async (c) => (await box.exec(['/bin/sh', '-c', c])).stdout;
             const o = {};
             o.ids = await sh('id -u; cat /proc/self/uid_map; grep ^Groups: /proc/self/status');
             await box.copyIn(process.argv[4] + '/in.txt', '/tmp/in.txt');
             o.file = await sh('stat -c "%u %g" /tmp/in.txt && echo more >> /tmp/in.txt && cat /tmp/in.txt');
             await box.copyOut('/tmp/in.txt', process.argv[4] + '/out.txt');
             /* What a command leaves in its session ends with it, even as a subordinate uid. */
             o.bg = await sh('/probe sleep 30000 & echo bg');
             await box.destroy();
             console.log(JSON.stringify(o));`,
            [f.rootfs, dir],
          );
          expect(r.stderr).toBe('');
          const o = JSON.parse(r.stdout) as { ids: string; file: string; bg: string };
          expect(o.bg).toBe('bg\n');
          const lines = o.ids
            .trim()
            .split('\n')
            .map((l) => l.trim().split(/\s+/).join(' '));
          expect(lines).toEqual(['65534', `0 ${uid} 1`, `1 ${START} 65536`, 'Groups:']);
          expect(o.file).toBe('65534 65534\nin\nmore\n');
          expect(readFileSync(join(dir, 'out.txt'), 'utf8')).toBe('in\nmore\n');
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });

      it('a uid the range does not cover is refused in one line', async () => {
        const r = await capsule(['run', '--uid', '70000', f.rootfs, '/bin/true']);
        expect(r.exitCode).not.toBe(0);
        expect(r.stderr.trim().split('\n')).toHaveLength(1);
        expect(r.stderr).toMatch(/uid 70000 lies outside the ids \/etc\/subuid grants/);
      });

      it('fails closed, naming the step, the tool and its words, when newuidmap refuses the range', async () => {
        /* newuidmap checks the caller's gid against its passwd entry's: a different one is refused. */
        const r = await capsule(['run', f.rootfs, '/bin/echo', 'ran'], gid + 1);
        expect(r.exitCode).not.toBe(0);
        expect(r.stdout).not.toContain('ran');
        expect(r.stderr.trim().split('\n')).toHaveLength(1);
        expect(r.stderr).toMatch(
          /map_user_ids failed: \/usr\/bin\/newuidmap \d+ 0 \d+ 1 1 \d+ 65536: newuidmap: .+: Operation not permitted \(newuidmap or newgidmap refused the range/,
        );
      });
    },
  );

  it('leaves no process of that user behind', () => {
    expect(processesOfUser()).toEqual([]);
  });
});

describe('rootlessIdPlan: which map a rootless sandbox gets', () => {
  /* Made when the block runs, not when the file is collected: a run filtered by name made one and never removed it. */
  let etc = '';
  beforeAll(() => {
    etc = mkdtempSync(join(tmpdir(), 'capsule-subid-'));
  });
  afterAll(() => rmSync(etc, { recursive: true, force: true }));
  const plan = (
    subuid: string,
    subgid: string,
    ids = { uid: 65534, gid: 65534 },
    tools: [string, string] | null = ['/t/newuidmap', '/t/newgidmap'],
  ) => {
    writeFileSync(join(etc, 'subuid'), subuid);
    writeFileSync(join(etc, 'subgid'), subgid);
    return rootlessIdPlan(ids, { etc, uid: 1500, gid: 1600, name: 'ann', tools });
  };

  it('reads the entry by login name or by uid, skipping comments, others and malformed lines', () => {
    expect(subordinateRange('# c\nbob:1:2\nann:x:5\nann:100000:65536\n', 1500, 'ann')).toEqual({
      start: 100000,
      count: 65536,
    });
    expect(subordinateRange('1500:200000:10\n', 1500, null)).toEqual({ start: 200000, count: 10 });
    expect(subordinateRange('ann:1:0\nbob:5:5\n', 1500, 'ann')).toBeNull();
  });

  it('maps 0 to the caller and 1.. to the range when both files grant one and the tools are there', () => {
    const p = plan('ann:100000:65536\n', '1500:300000:65536\n');
    expect(p.map).toEqual({
      newuidmap: '/t/newuidmap',
      newgidmap: '/t/newgidmap',
      uids: [
        { inside: 0, outside: 1500, count: 1 },
        { inside: 1, outside: 100000, count: 65536 },
      ],
      gids: [
        { inside: 0, outside: 1600, count: 1 },
        { inside: 1, outside: 300000, count: 65536 },
      ],
    });
    expect(p.why).toContain("the sandbox's uid 65534 is host uid 165533, not yours");
  });

  it('falls back to one id each, saying why, without an entry in either file or without the tools', () => {
    expect(plan('', 'ann:1:65536\n')).toMatchObject({
      map: null,
      why: expect.stringContaining('/subuid grants ann no range'),
    });
    expect(plan('ann:1:65536\n', '')).toMatchObject({
      map: null,
      why: expect.stringContaining('/subgid grants ann no range'),
    });
    expect(plan('ann:1:65536\n', 'ann:1:65536\n', undefined, null)).toMatchObject({
      map: null,
      why: expect.stringContaining('apt-get install uidmap'),
    });
  });

  it('refuses a sandbox uid or gid the range does not cover, naming the option', () => {
    expect(() => plan('ann:100000:1000\n', 'ann:1:65536\n')).toThrow(
      /^uid 65534 lies outside the ids .*subuid grants ann \(1000/,
    );
    expect(() => plan('ann:100000:65536\n', 'ann:1:65536\n', { uid: 1, gid: 70000 })).toThrow(
      /^gid 70000 lies outside/,
    );
  });
});
