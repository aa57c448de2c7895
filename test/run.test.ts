/**
 * The sandbox end to end, each step checked from inside by the probe.
 */
import {
  chmodSync,
  copyFileSync,
  readlinkSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { ConfigError, run, SetupError } from '../src/index.js';
import { fdsLeftSince, mountCount, openFds, processesWith, zombieChildren } from './helpers/host.js';

const rootfs = inject('rootfs');

interface ProbeInfo {
  pid: number;
  uid: number;
  euid: number;
  gid: number;
  egid: number;
  groups: number;
  CapInh: string;
  CapPrm: string;
  CapEff: string;
  CapBnd: string;
  CapAmb: string;
  NoNewPrivs: string;
  hostname: string;
  cwd: string;
  sid: number;
  devTty: string;
  fds: number[];
  env: string[];
  netdevs: string[];
  procPids: number[];
  root: string[];
  rootWrite: string;
  tmpWrite: string;
  sigpipe: string;
  sigmaskEmpty: boolean;
}

async function probeInfo(extra: Partial<Parameters<typeof run>[0]> = {}): Promise<ProbeInfo> {
  const r = await run({ rootfs, argv: ['/probe', 'info'], ...extra });
  expect(r.stderr).toBe('');
  expect(r.exitCode).toBe(0);
  return JSON.parse(r.stdout) as ProbeInfo;
}

describe('isolation, seen from inside', () => {
  let info: ProbeInfo;
  beforeAll(async () => {
    info = await probeInfo();
  });

  it('runs in a new PID namespace under capsule-init', () => {
    expect(info.pid).toBe(2);
    expect(info.procPids.sort()).toEqual([1, 2]);
  });

  it('has a network with only lo', () => {
    expect(info.netdevs).toEqual(['lo']);
  });

  it('gets a network namespace of its own, made ahead or by clone', async () => {
    /*
     * Three sandboxes alive at the same time (each sleeps after looking): namespace inode
     * numbers are recycled once a namespace is freed, so only coexisting ones must differ.
     */
    const netns = async () =>
      (await run({ rootfs, argv: ['/bin/sh', '-c', 'ls -l /proc/self/ns/net; sleep 0.3'] })).stdout
        .replace(/.*-> /s, '')
        .trim();
    await netns(); /* the pool starts on first use: make sure later runs take from it */
    const seen = await Promise.all([netns(), netns(), netns()]);
    expect(seen.every((s) => /^net:\[\d+\]$/.test(s))).toBe(true);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).not.toContain(readlinkSync('/proc/self/ns/net'));
  });

  it('makes every network namespace in clone when CAPSULE_NETNS_POOL=0', async () => {
    const script = `import { run } from '${join(import.meta.dirname, '../dist/src/index.js')}';
      for (let i = 0; i < 3; i++) await run({ rootfs: '${rootfs}', argv: ['/bin/true'] });
      await new Promise((r) => setTimeout(r, 100)); /* time for the pool's thread to fill it */
      const r = await run({ rootfs: '${rootfs}', argv: ['/bin/true'], explain: true });
      console.log(r.explain.map((s) => s.step).join(' '));`;
    const on = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    const off = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      env: { ...process.env, CAPSULE_NETNS_POOL: '0' },
    });
    expect(on.split(' ')).toContain('set_netns');
    expect(off.split(' ')).not.toContain('set_netns');
  });

  it('runs as nobody with no supplementary groups', () => {
    expect([info.uid, info.euid, info.gid, info.egid]).toEqual([65534, 65534, 65534, 65534]);
    expect(info.groups).toBe(0);
  });

  it('holds no capability in any set, and no_new_privs is set', () => {
    for (const set of [info.CapInh, info.CapPrm, info.CapEff, info.CapBnd, info.CapAmb]) {
      expect(set).toBe('0000000000000000');
    }
    expect(info.NoNewPrivs).toBe('1');
  });

  it('sees only the rootfs, read-only, with a private writable /tmp', () => {
    expect(info.root.sort()).toEqual(['bin', 'dev', 'empty', 'etc', 'probe', 'proc', 'tmp']);
    expect(info.rootWrite).toBe('EROFS');
    expect(info.tmpWrite).toBe('ok');
  });

  it('has a /dev with only the default nodes, usable by nobody, and no host device', async () => {
    const r = await run({
      rootfs,
      argv: [
        '/bin/sh',
        '-c',
        'ls /dev; echo x > /dev/null && echo null-ok; /probe open /dev/mem; /probe open /dev/kmsg',
      ],
    });
    expect(r.stdout.split('\n')).toEqual([
      'fd',
      'full',
      'null',
      'random',
      'stderr',
      'stdin',
      'stdout',
      'tty',
      'urandom',
      'zero',
      'null-ok',
      'ENOENT',
      'ENOENT',
      '',
    ]);
    /* /dev itself is read-only once populated. */
    const w = await run({ rootfs, argv: ['/probe', 'write', '/dev/new'], uid: 0, gid: 0 });
    expect(w.stdout).toBe('EROFS\n');
  });

  it('has its own hostname and no controlling terminal', () => {
    expect(info.hostname).toBe('capsule');
    /* capsule-init called setsid(2): the session is PID 1's, with no terminal. */
    expect(info.sid).toBe(1);
    expect(info.devTty).toBe('ENXIO');
  });

  it('gets exactly stdin, stdout and stderr: no inherited descriptor', () => {
    expect(info.fds).toEqual([0, 1, 2]);
  });

  it('gets only the environment it is given, never the host one', async () => {
    process.env.CAPSULE_TEST_SECRET = 'host-secret';
    try {
      expect(info.env).toEqual(['PATH=/usr/local/bin:/usr/bin:/bin']);
      const custom = await probeInfo({ env: { LANG: 'C', A: 'b=c' } });
      expect(custom.env).toEqual(['LANG=C', 'A=b=c']);
    } finally {
      delete process.env.CAPSULE_TEST_SECRET;
    }
  });

  it('starts with default signal dispositions and an empty mask (Node ignores SIGPIPE)', () => {
    expect(info.sigpipe).toBe('default');
    expect(info.sigmaskEmpty).toBe(true);
  });

  it('takes the hostname, cwd, uid and gid it is asked for', async () => {
    const custom = await probeInfo({ hostname: 'judge-7', cwd: '/tmp', uid: 1000, gid: 1001 });
    expect(custom.hostname).toBe('judge-7');
    expect(custom.cwd).toBe('/tmp');
    expect([custom.uid, custom.gid]).toEqual([1000, 1001]);
    expect(custom.CapEff).toBe('0000000000000000');
  });

  it('keeps uid 0 powerless when asked for root', async () => {
    const asRoot = await probeInfo({ uid: 0, gid: 0 });
    expect(asRoot.uid).toBe(0);
    expect(asRoot.CapEff).toBe('0000000000000000');
    expect(asRoot.CapPrm).toBe('0000000000000000');
    expect(asRoot.CapBnd).toBe('0000000000000000');
    expect(asRoot.rootWrite).toBe('EROFS');
  });
});

describe('host files', () => {
  let hostDir: string;
  beforeAll(() => {
    hostDir = mkdtempSync(join(tmpdir(), 'capsule-host-'));
    /* Open to everyone: what stops the sandbox must be the mount, not file modes. */
    chmodSync(hostDir, 0o777);
    writeFileSync(join(hostDir, 'secret'), 'host secret\n', { mode: 0o644 });
  });
  afterAll(() => rmSync(hostDir, { recursive: true, force: true }));

  it('are invisible outside the rootfs', async () => {
    const r = await run({ rootfs, argv: ['/probe', 'open', join(hostDir, 'secret')] });
    expect(r.stdout.trim()).toBe('ENOENT');
    const etc = await run({ rootfs, argv: ['/probe', 'open', '/etc/shadow'] });
    expect(etc.stdout.trim()).toBe('ENOENT');
  });

  it('appear read-only when bound, and writable only when asked', async () => {
    const ro = await run({
      rootfs,
      argv: ['/bin/sh', '-c', 'cat /empty/secret; /probe write /empty/new'],
      binds: [{ source: hostDir, target: '/empty' }],
    });
    expect(ro.stdout).toBe('host secret\nEROFS\n');
    const rw = await run({
      rootfs,
      argv: ['/probe', 'write', '/empty/new'],
      binds: [{ source: hostDir, target: '/empty', readOnly: false }],
    });
    expect(rw.stdout).toBe('ok\n');
    rmSync(join(hostDir, 'new'));
  });

  it('stay unchanged by a writable root when it was not asked for', async () => {
    const r = await run({ rootfs, argv: ['/bin/touch', '/x'] });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('Read-only file system');
  });
});

describe('stdio and results', () => {
  it('feeds stdin and captures stdout and stderr', async () => {
    const r = await run({ rootfs, argv: ['/bin/sh', '-c', 'cat; echo err >&2'], stdin: 'input\n' });
    expect(r.stdout).toBe('input\n');
    expect(r.stderr).toBe('err\n');
  });

  it('moves a large stdin and stdout at once without deadlock', async () => {
    const big = Buffer.alloc(8 << 20, 'x');
    const r = await run({ rootfs, argv: ['/probe', 'cat'], stdin: big, encoding: 'buffer' });
    expect(r.stdout.length).toBe(big.length);
    expect(r.stdout.equals(big)).toBe(true);
  });

  it('reports the exit code', async () => {
    const r = await run({ rootfs, argv: ['/probe', 'exit', '42'] });
    expect(r.exitCode).toBe(42);
    expect(r.signal).toBeNull();
  });

  it('reports a signal as the cause of death', async () => {
    const r = await run({ rootfs, argv: ['/probe', 'signal', '11'] });
    expect(r.exitCode).toBeNull();
    expect(r.signal).toBe('SIGSEGV');
  });

  it('measures CPU time, wall time and peak memory', async () => {
    const r = await run({ rootfs, argv: ['/probe', 'burn', '200'] });
    expect(r.cpuTimeMs).toBeGreaterThanOrEqual(190);
    expect(r.cpuTimeMs).toBeLessThan(400);
    expect(r.wallTimeMs).toBeGreaterThanOrEqual(r.cpuTimeMs * 0.9);
    /* The split adds up to the total (v1 samples user/system per 4 ms tick: 58.6 against 51.4 ms). */
    expect(Math.abs(r.userCpuTimeMs + r.systemCpuTimeMs - r.cpuTimeMs)).toBeLessThan(0.01);
    expect(r.maxRssBytes).toBeGreaterThan(0);
    /* The probe is small: Node's own heap must not show up here. */
    expect(r.maxRssBytes!).toBeLessThan(16 << 20);
  });

  it('ends a run when aborted', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const r = await run({ rootfs, argv: ['/probe', 'sleep', '10000'], signal: ac.signal });
    expect(r.aborted).toBe(true);
    expect(r.signal).toBe('SIGKILL');
    expect(r.wallTimeMs).toBeLessThan(2000);
  });
});

describe('PID 1 duties', () => {
  it('reaps orphans, so no zombie is left in the sandbox', async () => {
    const r = await run({ rootfs, argv: ['/probe', 'orphans', '5'] });
    expect(JSON.parse(r.stdout)).toEqual({ zombies: 0 });
  });

  it('kills what the program leaves behind when it exits: no process of it survives on the host', async () => {
    const marker = `capsule-test-daemon-${process.pid}-${Date.now()}`;
    const start = performance.now();
    const r = await run({ rootfs, argv: ['/probe', 'daemon', marker] });
    expect(r.exitCode).toBe(0);
    /* The daemon sleeps 60 s: the run ends only because PID 1 killed it. */
    expect(performance.now() - start).toBeLessThan(5000);
    expect(processesWith(marker, '/probe')).toEqual([]);
  });
});

describe('exec errors', () => {
  let dir: string;
  let box: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'capsule-exec-'));
    box = join(dir, 'box');
    for (const d of ['proc', 'dev', 'tmp', 'bin']) mkdirSync(join(box, d), { recursive: true });
    /* A dynamically linked program without its interpreter. */
    copyFileSync('/bin/ls', join(box, 'bin/ls'));
    writeFileSync(join(box, 'bin/script'), '#!/bin/bash\necho hi\n', { mode: 0o755 });
    writeFileSync(join(box, 'bin/noexec'), 'data', { mode: 0o644 });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('names a program missing from the rootfs', async () => {
    const e = await run({ rootfs: box, argv: ['/bin/nope'] }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SetupError);
    const se = e as SetupError;
    expect(se.step).toBe('exec');
    expect(se.code).toBe('ENOENT');
    expect(se.message).toBe(
      `cannot execute /bin/nope in ${box}: No such file or directory (it is not in the rootfs: copy it in, or build the rootfs with \`capsule rootfs build --bin\`)`,
    );
  });

  it('names the missing interpreter of a dynamic program', async () => {
    const e = (await run({ rootfs: box, argv: ['/bin/ls'] }).catch((x: unknown) => x)) as SetupError;
    expect(e.message).toMatch(
      /^cannot execute \/bin\/ls in .*: No such file or directory \(its interpreter \/lib.*ld-linux.* is missing from the rootfs/,
    );
  });

  it('names the missing #! interpreter of a script', async () => {
    const e = (await run({ rootfs: box, argv: ['/bin/script'] }).catch((x: unknown) => x)) as SetupError;
    expect(e.message).toContain('its #! interpreter /bin/bash is missing from the rootfs');
  });

  it('says when a file is not executable', async () => {
    const e = (await run({ rootfs: box, argv: ['/bin/noexec'] }).catch((x: unknown) => x)) as SetupError;
    expect(e.code).toBe('EACCES');
    expect(e.message).toContain('Permission denied');
  });
});

describe('bad input is one clear ConfigError before anything runs', () => {
  const cases: [string, Parameters<typeof run>[0], RegExp][] = [
    [
      'missing rootfs',
      { rootfs: '/nonexistent/box', argv: ['/bin/sh'] },
      /rootfs \/nonexistent\/box does not exist/,
    ],
    ['relative program', { rootfs: '', argv: ['sh'] }, /rootfs is required/],
    ['empty argv', { rootfs: '.', argv: [] }, /argv must name the program/],
    ['bad uid', { rootfs: '.', argv: ['/bin/sh'], uid: -1 }, /uid must be an integer/],
    ['bad hostname', { rootfs: '.', argv: ['/bin/sh'], hostname: 'a b' }, /hostname must be/],
    [
      'bad tmp size',
      { rootfs: '.', argv: ['/bin/sh'], tmpSizeBytes: 1.5 },
      /tmpSizeBytes must be an integer/,
    ],
  ];
  it.each(cases)('%s', async (_name, options, message) => {
    const fixed = { ...options, rootfs: options.rootfs === '.' ? rootfs : options.rootfs };
    await expect(run(fixed)).rejects.toThrow(ConfigError);
    await expect(run(fixed)).rejects.toThrow(message);
  });

  it('rejects a relative program path with a suggestion', async () => {
    await expect(run({ rootfs, argv: ['sh'] })).rejects.toThrow(/absolute .* try \/bin\/sh/);
  });

  it('makes the mount points a rootfs lacks, except in the host directory itself (writableRoot)', async () => {
    const bare = mkdtempSync(join(tmpdir(), 'capsule-bare-'));
    chmodSync(bare, 0o755);
    try {
      /* /proc, /dev and /tmp are made in an overlay (test/box.test.ts): only the program is missing. */
      await expect(run({ rootfs: bare, argv: ['/bin/sh'] })).rejects.toThrow(
        /cannot execute \/bin\/sh .*it is not in the rootfs/,
      );
      await expect(run({ rootfs: bare, argv: ['/bin/sh'], writableRoot: true })).rejects.toThrow(
        /has no \/proc .*with writableRoot capsule makes no mount point in the host directory: mkdir -p/,
      );
    } finally {
      rmSync(bare, { recursive: true });
    }
  });
});

describe('no leaks', () => {
  it('leaves no mount, zombie or descriptor behind after many runs, in parallel too', async () => {
    /*
     * Warm at the same concurrency: the addon opens its memfd and pidfd once, and the
     * cgroup pool keeps one slot (and its cgroup.procs fds) per run in flight at its peak.
     * After that, nothing may grow.
     */
    await Promise.all(Array.from({ length: 10 }, () => run({ rootfs, argv: ['/bin/true'] })));
    const mounts = mountCount();
    const fds = openFds();
    for (let batch = 0; batch < 10; batch++) {
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          run({ rootfs, argv: ['/probe', 'exit', String(i)], stdin: 'x' }),
        ),
      );
      expect(results.map((r) => r.exitCode)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }
    expect(mountCount()).toBe(mounts);
    expect(zombieChildren()).toEqual([]);
    /* Sockets close on the next tick after 'close'; give them one. */
    await new Promise((r) => setTimeout(r, 50));
    expect(fdsLeftSince(fds)).toEqual([]);
  });
});
