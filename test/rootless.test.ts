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
import { mountCount } from './helpers/host.js';
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
function capsule(args: string[], asGid = gid) {
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
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/' },
      extendEnv: false,
    },
  );
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
      [['--device', '/dev/kmsg'], '--device needs root'],
      [['--host-ids', 'unique'], "'unique' needs root"],
    ] as const) {
      const r = await capsule(['run', ...flags, f.rootfs, '/bin/true']);
      expect(r.exitCode, flags.join(' ')).toBe(125);
      expect(r.stderr.trim().split('\n'), flags.join(' ')).toHaveLength(1);
      expect(r.stderr).toContain(says);
      if (!flags[0].includes('host-ids')) expect(r.stderr).toContain('capsule doctor');
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

  it('sessions are refused in one line that says why and what to do instead', async () => {
    const r = await capsule(['create', '--name', `rl${process.pid}`, f.rootfs]);
    expect(r.exitCode).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(
      /sessions need root: each command joins the sandbox's namespaces and runs in a cgroup of its own, .*capsule run each command/,
    );
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
