/**
 * A host uid and gid of its own for every concurrent sandbox, so that no
 * sandbox can use up a per-user limit of the kernel's that the next one needs (inotify instances, pending signals, message-queue bytes,
 * RLIMIT_NPROC are counted per host user: user_namespaces(7), "ucounts").
 */
import { execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
} from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { run, type RunOptions } from '../../src/index.js';
import { runOptionsFromFlags } from '../../src/cli/run.js';
import { setupError } from '../../src/diagnose.js';
import { DEFAULT_HOST_ID_RANGE, HOST_ID_LOCK_DIR } from '../../src/ids.js';
import { rlimitPlan } from '../../src/limits.js';
import { native } from '../../src/native.js';
import { resolveOptions } from '../../src/options.js';
import { nativeOptions } from '../../src/run.js';

const rootfs = () => inject('rootfs');

function probe(args: string[], extra: Partial<RunOptions> = {}) {
  return run({ rootfs: rootfs(), argv: ['/probe', ...args], ...extra });
}

/** Prints one line ("0 ok"), then sleeps 30 s: a sandbox to look at while it runs. */
const SLEEPER = ['inotify', '0', '30000'];

/** The Uid: and Gid: lines of /proc/PID/status, as the host sees the process: [real, effective, saved, fs]. */
function hostIds(pid: number): { uid: number[]; gid: number[] } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const line = (key: string) =>
    status
      .split('\n')
      .find((l) => l.startsWith(`${key}:`))!
      .slice(key.length + 1)
      .trim()
      .split(/\s+/)
      .map(Number);
  return { uid: line('Uid'), gid: line('Gid') };
}

/** The host PID of the program: the one child of capsule-init (the sandbox's PID 1). */
function programPid(initPid: number): number {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === initPid) return Number(name);
    } catch {
      /* gone */
    }
  }
  throw new Error(`capsule-init (${initPid}) has no child`);
}

/** Run `argv` (a program that prints one line, then sleeps), call `during` once that line is out, then end it. */
async function whileRunning<T>(
  argv: string[],
  extra: Partial<RunOptions>,
  during: (pid: number, firstLine: string) => Promise<T>,
): Promise<{ value: T; firstLine: string }> {
  const ac = new AbortController();
  let pid = 0;
  let resolveLine!: (l: string) => void;
  const line = new Promise<string>((r) => (resolveLine = r));
  let out = '';
  const done = run({
    rootfs: rootfs(),
    argv: argv[0]!.startsWith('/') ? argv : ['/probe', ...argv],
    ...extra,
    signal: ac.signal,
    onSpawn: (s) => (pid = s.pid),
    onOutput: (_stream, chunk) => {
      out += chunk.toString();
      if (out.includes('\n')) resolveLine(out.slice(0, out.indexOf('\n')));
    },
  });
  done.catch(() => resolveLine(''));
  try {
    const firstLine = await line;
    return { value: await during(pid, firstLine), firstLine };
  } finally {
    ac.abort();
    await done.catch(() => undefined);
  }
}

const inRange = (id: number) =>
  id >= DEFAULT_HOST_ID_RANGE.first && id < DEFAULT_HOST_ID_RANGE.first + DEFAULT_HOST_ID_RANGE.count;

describe('per-user limits: each concurrent sandbox is a host user of its own', () => {
  it('a sandbox that holds every inotify instance it can does not starve the next one', async () => {
    const { value: b, firstLine } = await whileRunning(['inotify', '100000', '30000'], {}, () =>
      probe(['inotify', '1']),
    );
    /* A stopped at the per-user limit (fs.inotify.max_user_instances), not at its fd limit. */
    const [held, why] = firstLine.split(' ');
    expect(why).toBe('EMFILE');
    expect(Number(held)).toBeGreaterThan(0);
    expect(Number(held)).toBeLessThan(1000);
    expect(b.stdout).toBe('1 ok\n');
  }, 60_000);

  it('the program is nobody inside and an id of the range on the host, uid and gid', async () => {
    /* The program (a shell) prints what it is, then stays for the host to look at it. */
    const { value, firstLine } = await whileRunning(
      ['/bin/sh', '-c', '/probe info; exec /probe sleep 30000'],
      {},
      async (initPid) => hostIds(programPid(initPid)),
    );
    const inside = JSON.parse(firstLine) as Record<string, number>;
    expect([inside.uid, inside.euid, inside.gid, inside.egid]).toEqual([65534, 65534, 65534, 65534]);
    expect(inside.groups).toBe(0);
    const uid = value.uid[0]!;
    expect(inRange(uid), `host uid ${uid}`).toBe(true);
    expect(value.uid).toEqual([uid, uid, uid, uid]);
    expect(value.gid).toEqual([uid, uid, uid, uid]);
  }, 60_000);

  it('two concurrent sandboxes have different host ids, and both ids are freed at the end', async () => {
    const { value } = await whileRunning(SLEEPER, {}, (a) =>
      whileRunning(SLEEPER, {}, async (b) => [
        hostIds(programPid(a)).uid[0]!,
        hostIds(programPid(b)).uid[0]!,
      ]),
    );
    const [a, b] = value.value;
    expect(inRange(a!) && inRange(b!)).toBe(true);
    expect(a).not.toBe(b);
    for (const id of [a, b]) expect(existsSync(join(HOST_ID_LOCK_DIR, String(id)))).toBe(false);
  }, 60_000);

  describe('a writable bind', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'capsule-ids-'));
      chmodSync(dir, 0o777);
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('gets files owned by the sandbox host uid and gid', async () => {
      mkdirSync(join(rootfs(), 'empty'), { recursive: true });
      const r = await run({
        rootfs: rootfs(),
        argv: ['/bin/sh', '-c', 'touch /empty/made && echo $$ && ls -ln /empty/made'],
        binds: [{ source: dir, target: '/empty', readOnly: false }],
      });
      expect(r.exitCode).toBe(0);
      /* Inside, the file is nobody's: the program's own uid. */
      expect(r.stdout).toMatch(/ 65534 +65534 /);
      const st = statSync(join(dir, 'made'));
      expect(inRange(st.uid), `host uid ${st.uid}`).toBe(true);
      expect(st.gid).toBe(st.uid);
    });

    it("with hostIds: 'shared', as before: the sandbox's uid itself on the host", async () => {
      const r = await run({
        rootfs: rootfs(),
        argv: ['/bin/touch', '/empty/shared'],
        binds: [{ source: dir, target: '/empty', readOnly: false }],
        hostIds: 'shared',
      });
      expect(r.exitCode).toBe(0);
      expect(statSync(join(dir, 'shared')).uid).toBe(65534);
    });
  });
});

describe('leases', () => {
  /* A one-id range of the tests' own, far from the default cursor's neighbourhood. */
  const ONE = { first: 0x7001_0000 + (process.pid % 1000), count: 1 };
  const full = /every host id of hostIdRange \(\d+-\d+\) is leased by a running sandbox: widen hostIdRange/;

  it('an id leased by a running sandbox of this process is not leased again', async () => {
    await whileRunning(SLEEPER, { hostIdRange: ONE }, async () => {
      await expect(probe(['exit', '0'], { hostIdRange: ONE })).rejects.toThrow(full);
    });
    /* Free again once that run ended. */
    expect((await probe(['exit', '0'], { hostIdRange: ONE })).exitCode).toBe(0);
  }, 60_000);

  it('nor one leased by another capsule process', async () => {
    const cli = join(import.meta.dirname, '../../dist/capsule.mjs');
    const range = `${ONE.first}-${ONE.first}`;
    const other = spawn(
      process.execPath,
      [cli, 'run', '--host-id-range', range, rootfs(), '/probe', 'inotify', '0', '30000'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      await new Promise<void>((resolve) => other.stdout.once('data', () => resolve()));
      await expect(probe(['exit', '0'], { hostIdRange: ONE })).rejects.toThrow(full);
    } finally {
      other.kill('SIGKILL');
      await new Promise((r) => other.once('exit', r));
    }
    /* Its process died with the lease held: the kernel dropped the lock, so the id is free. */
    expect((await probe(['exit', '0'], { hostIdRange: ONE })).exitCode).toBe(0);
  }, 60_000);
});

describe('failing closed', () => {
  it('an id the addon cannot pass to the kernel is refused before anything starts', () => {
    /* (u32)-1 means "leave it unchanged" to setresuid(2): never a host id. */
    const opts = resolveOptions({ rootfs: rootfs(), argv: ['/bin/true'] });
    const n = { ...nativeOptions(opts, [-1, -1, -1], [], rlimitPlan(opts.limits)), hostUid: 2 ** 32 - 1 };
    expect(() => native().spawn(n, () => undefined)).toThrow(
      /option hostUid must be an integer from 0 to 4294967294, got 4294967295/,
    );
  });

  it('a user namespace the kernel refuses fails the run at make_userns, before clone', () => {
    /*
     * A chrooted process may not make a user namespace (user_namespaces(7), unshare(2):
     * EPERM). A child Node process is chrooted into a bind of / in a mount namespace of
     * its own, so the kernel refuses for real; nothing of it outlives the child.
     */
    const dir = mkdtempSync(join(tmpdir(), 'capsule-chroot-'));
    const index = join(import.meta.dirname, '../../dist/src/index.js');
    const script = `
      import { run } from ${JSON.stringify(index)};
      try {
        const r = await run({ rootfs: process.argv[1], argv: ['/bin/true'], cgroups: false });
        console.log(JSON.stringify({ ran: r.verdict }));
      } catch (e) {
        console.log(JSON.stringify({ name: e.name, step: e.step, code: e.code, message: e.message }));
      }`;
    try {
      const out = execFileSync(
        'unshare',
        [
          '--mount',
          '--propagation',
          'private',
          'sh',
          '-c',
          'mount --rbind / "$0" && exec chroot "$0" "$1" --input-type=module -e "$2" "$3"',
          dir,
          process.execPath,
          script,
          rootfs(),
        ],
        { encoding: 'utf8', timeout: 30_000 },
      );
      const r = JSON.parse(out) as Record<string, string>;
      expect(r).toMatchObject({ name: 'SetupError', step: 'make_userns', code: 'EPERM' });
      expect(r.message).toContain("hostIds: 'shared'");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says which sysctl to raise, and which option turns per-sandbox ids off', async () => {
    const err = await setupError(
      {
        step: 'make_userns',
        syscall: 'unshare',
        errno: osConstants.errno.ENOSPC,
        detail: 'CLONE_NEWUSER as host uid 1879048192',
      },
      { rootfs: '/r', rootfsArg: '/r', program: '/bin/true' },
    );
    expect(err.message).toMatch(
      /^make_userns failed: unshare\(CLONE_NEWUSER as host uid 1879048192\): No space left on device/,
    );
    expect(err.message).toContain('user.max_user_namespaces');
    expect(err.message).toContain("hostIds: 'shared' (--host-ids shared)");
  });

  it('refuses a bad hostIds or hostIdRange before anything runs', async () => {
    const bad: [Partial<RunOptions>, RegExp][] = [
      [{ hostIds: 'own' as 'unique' }, /hostIds must be 'unique' or 'shared'/],
      [{ hostIdRange: { first: 0, count: 10 } }, /hostIdRange.first must be an integer from 1/],
      [
        { hostIdRange: { first: 2 ** 32 - 10, count: 20 } },
        /hostIdRange.count must be an integer from 1 to 9/,
      ],
    ];
    for (const [extra, message] of bad)
      await expect(run({ rootfs: rootfs(), argv: ['/bin/true'], ...extra })).rejects.toThrow(message);
  });

  it('the CLI passes --host-ids and --host-id-range through', () => {
    const o = runOptionsFromFlags('/r', ['/bin/true'], {
      hostIds: 'shared',
      hostIdRange: { first: 5, count: 2 },
    });
    expect([o.hostIds, o.hostIdRange]).toEqual(['shared', { first: 5, count: 2 }]);
  });
});

describe('leased ahead: the user-namespace pool (native/userns_pool.h)', () => {
  /* Ranges of this file's own (64 ids: the smallest the pool serves), one per test. */
  const range = (n: number) => ({ first: 0x7003_0000 + ((process.pid % 200) * 8 + n) * 64, count: 64 });
  /* The ids the pool holds now: its lease descriptors name /run/capsule/ids/ID. */
  const poolIds = () =>
    native()
      .hostIdPoolFds()
      .map((fd) => readlinkSync(`/proc/self/fd/${fd}`))
      .filter((l) => l.startsWith(`${HOST_ID_LOCK_DIR}/`))
      .map((l) => Number(l.slice(HOST_ID_LOCK_DIR.length + 1)));
  const ready = async (n: number) => {
    for (let i = 0; i < 500 && poolIds().length < n; i++) await new Promise((r) => setTimeout(r, 10));
    return poolIds();
  };
  /* The host id a run had, and whether its namespace was made ahead, from its explain. */
  const made = async (extra: Partial<RunOptions>) => {
    const r = await probe(['exit', '0'], { ...extra, explain: true });
    expect(r.exitCode).toBe(0);
    const step = r.explain!.find((s) => s.step === 'make_userns')!;
    return {
      id: Number(/setresuid\(-1, (\d+), -1\)/.exec(step.call)![1]),
      ahead: step.call.startsWith('made ahead'),
    };
  };

  it('from the second run of a shape on, the lease and namespace come made ahead, one per run', async () => {
    const r = range(0);
    const first = [await made({ hostIdRange: r }), await made({ hostIdRange: r })];
    /* A process's first runs of a shape make their own: one run alone never pays for a pool. */
    expect(first.map((m) => m.ahead)).toEqual([false, false]);
    const held = await ready(2);
    expect(held).toHaveLength(2);
    const later = [await made({ hostIdRange: r }), await made({ hostIdRange: r })];
    expect(later.map((m) => m.ahead)).toEqual([true, true]);
    /* The ids the pool held are the ones those runs had: each used once, never shared. */
    expect(later.map((m) => m.id).sort()).toEqual([...held].sort());
    const ids = [...first, ...later].map((m) => m.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) {
      expect(id >= r.first && id < r.first + r.count).toBe(true);
      expect(existsSync(join(HOST_ID_LOCK_DIR, String(id)))).toBe(false);
    }
    /* The program runs as its own host id, and the lease is held while it runs. */
    await ready(2);
    const { value } = await whileRunning(SLEEPER, { hostIdRange: r }, async (pid) => {
      const uid = hostIds(programPid(pid)).uid[0]!;
      return { uid, leased: existsSync(join(HOST_ID_LOCK_DIR, String(uid))), pooled: poolIds() };
    });
    expect(value.uid >= r.first && value.uid < r.first + r.count).toBe(true);
    expect(value.leased).toBe(true);
    expect(value.pooled).not.toContain(value.uid);
    expect(existsSync(join(HOST_ID_LOCK_DIR, String(value.uid)))).toBe(false);
  }, 60_000);

  it('a run of another shape ends what was made for the last, even a one-id range inside it', async () => {
    const r = range(1);
    for (let i = 0; i < 3; i++) await made({ hostIdRange: r });
    const held = await ready(2);
    expect(held).toHaveLength(2);
    /* The one id of this range is one the pool holds: the run gets it, not "every id leased". */
    const one = { first: held[0]!, count: 1 };
    expect((await probe(['exit', '0'], { hostIdRange: one })).exitCode).toBe(0);
    for (const id of held) expect(existsSync(join(HOST_ID_LOCK_DIR, String(id)))).toBe(false);
    /* And a range that small is never leased ahead. */
    for (let i = 0; i < 3; i++) expect((await made({ hostIdRange: one })).ahead).toBe(false);
    expect(poolIds()).toEqual([]);
  }, 60_000);

  it('CAPSULE_USERNS_POOL=0 makes nothing ahead', () => {
    const index = join(import.meta.dirname, '../../dist/src/index.js');
    const nativeJs = join(import.meta.dirname, '../../dist/src/native.js');
    const script = `
      import { run } from ${JSON.stringify(index)};
      import { native } from ${JSON.stringify(nativeJs)};
      const made = [];
      for (let i = 0; i < 4; i++) {
        const r = await run({ rootfs: process.argv[1], argv: ['/bin/true'], hostIdRange: ${JSON.stringify(range(3))}, explain: true });
        made.push(r.explain.find((s) => s.step === 'make_userns').call.startsWith('made ahead'));
        await new Promise((res) => setTimeout(res, 50));
      }
      console.log(JSON.stringify({ made, held: native().hostIdPoolFds().length }));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script, rootfs()], {
      encoding: 'utf8',
      timeout: 30_000,
      env: { ...process.env, CAPSULE_USERNS_POOL: '0' },
    });
    expect(JSON.parse(out)).toEqual({ made: [false, false, false, false], held: 0 });
  }, 60_000);

  it('what was leased ahead ends with the process', () => {
    const r = range(2);
    const index = join(import.meta.dirname, '../../dist/src/index.js');
    const nativeJs = join(import.meta.dirname, '../../dist/src/native.js');
    const script = `
      import { readlinkSync } from 'node:fs';
      import { run } from ${JSON.stringify(index)};
      import { native } from ${JSON.stringify(nativeJs)};
      const range = ${JSON.stringify(r)};
      for (let i = 0; i < 3; i++) await run({ rootfs: process.argv[1], argv: ['/bin/true'], hostIdRange: range });
      let held = [];
      for (let i = 0; i < 500 && held.length < 2; i++) {
        await new Promise((res) => setTimeout(res, 10));
        held = native().hostIdPoolFds().map((fd) => readlinkSync('/proc/self/fd/' + fd)).filter((l) => l.startsWith('/run/'));
      }
      console.log(JSON.stringify(held));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script, rootfs()], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    const held = JSON.parse(out) as string[];
    expect(held).toHaveLength(2);
    for (const path of held) expect(existsSync(path), path).toBe(false);
  }, 60_000);
});
