/**
 * createRunner(): runs in sandboxes made ahead of time (src/ahead.ts) give what run() gives,
 * each in a sandbox of its own, timed from the run's start, and leave nothing behind.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';

import { createRunner, run, SetupError } from '../src/index.js';
import { LaunchedSandbox } from '../src/lifecycle.js';
import { native } from '../src/native.js';
import { resolveOptions } from '../src/options.js';
import { fdsLeftSince, mountCount, openFds, processesWith, zombieChildren } from './helpers/host.js';

const rootfs = inject('rootfs');
const BB = '/bin/busybox';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Host PIDs of capsule-init waiting for a run: this process's children, or (mine = false) anyone else's. */
function waitingInits(mine = true): number[] {
  return processesWith('capsule-prepared', 'capsule-prepared').filter((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === process.pid) === mine;
    } catch {
      return false; /* gone */
    }
  });
}

/** waitingInits() once it has `n` (the next sandbox is made beside a run, so it may still be in the making). */
async function waitingCount(n: number): Promise<number> {
  let found = waitingInits().length;
  for (let i = 0; i < 300 && found !== n; i++) {
    await sleep(10);
    found = waitingInits().length;
  }
  return found;
}

/** The uid a host PID runs as on the host. */
function hostUid(pid: number): number {
  return Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

describe('createRunner', () => {
  const runner = createRunner({ rootfs, argv: ['/probe', 'info'] });
  afterAll(() => runner.close());

  it('sees from inside exactly the sandbox run() gives', async () => {
    const plain = JSON.parse((await run({ rootfs, argv: ['/probe', 'info'] })).stdout) as Record<
      string,
      unknown
    >;
    await runner.run(); /* the first run prepares the next */
    expect(await waitingCount(1)).toBe(1);
    const r = await runner.run();
    expect(r.verdict).toBe('OK');
    expect(r.stderr).toBe('');
    const ahead = JSON.parse(r.stdout) as Record<string, unknown>;
    /* PID 2 under capsule-init, nobody, no capabilities, no_new_privs, only lo, 0-2 open, the read-only root... */
    expect(ahead).toEqual(plain);
  });

  it('takes argv, env and stdin per run, and reports each run on its own', async () => {
    const sh = { argv: [BB, 'sh', '-c', 'read x; echo "$x $FOO"; echo err >&2; exit $1', 'sh'] };
    const a = await runner.run({ ...sh, argv: [...sh.argv, '3'], stdin: 'one\n', env: { FOO: 'a' } });
    const b = await runner.run({ ...sh, argv: [...sh.argv, '0'], stdin: 'two\n', env: { FOO: 'b' } });
    expect(a).toMatchObject({ exitCode: 3, verdict: 'RUNTIME_ERROR', stdout: 'one a\n', stderr: 'err\n' });
    expect(b).toMatchObject({ exitCode: 0, verdict: 'OK', stdout: 'two b\n', stderr: 'err\n' });
    const buf = await runner.run({ argv: [BB, 'echo', 'bytes'], encoding: 'buffer' });
    expect(buf.stdout).toEqual(Buffer.from('bytes\n'));
  });

  it('gives each run a sandbox of its own: nothing a run leaves is seen by the next, and each has its own host uid', async () => {
    const uids: number[] = [];
    const onSpawn = (s: { pid: number }) => void uids.push(hostUid(s.pid));
    const first = await runner.run({ argv: [BB, 'sh', '-c', 'echo left > /tmp/mark; ls /tmp'], onSpawn });
    expect(first.stdout).toBe('mark\n');
    const second = await runner.run({ argv: [BB, 'ls', '-a', '/tmp'], onSpawn });
    expect(second.stdout).toBe('.\n..\n');
    expect(uids).toHaveLength(2);
    expect(uids[0]).not.toBe(uids[1]);
  });

  it('hands the program its stdio, as run() does, and not the socket its run came on', async () => {
    const list = [BB, 'sh', '-c', `for f in 0 1 2 3 4 5 6 7 8 9; do ${BB} readlink /proc/self/fd/$f; done`];
    const kinds = (out: string) => out.replace(/\[\d+\]/g, '');
    for (const stdin of ['in', 'ignore'] as const) {
      const plain = await run({ rootfs, argv: list, stdin });
      const ahead = await runner.run({ argv: list, stdin });
      expect(ahead.stdout).not.toMatch(/socket/);
      expect(kinds(ahead.stdout)).toBe(kinds(plain.stdout));
    }
  });

  it('counts wallTimeMs and the time limit from the run, not from when its sandbox was made', async () => {
    const r1 = createRunner({ rootfs, argv: ['/bin/true'], wallTimeLimitMs: 1000 });
    try {
      await r1.run();
      await sleep(1500); /* the next run's sandbox waits longer than its limit */
      const r = await r1.run();
      expect(r.verdict).toBe('OK');
      expect(r.wallTimeMs).toBeLessThan(1000);
      const slow = await r1.run({ argv: [BB, 'sleep', '5'] });
      expect(slow).toMatchObject({ verdict: 'TIME_LIMIT', timeLimit: 'wall' });
    } finally {
      await r1.close();
    }
  });

  it("enforces a CPU time limit and reports the run's own CPU time", async () => {
    const r1 = createRunner({ rootfs, argv: ['/probe', 'burn', '5000'], cpuTimeLimitMs: 200 });
    try {
      await r1.run({ argv: ['/bin/true'] });
      const burn = await r1.run();
      expect(burn).toMatchObject({ verdict: 'TIME_LIMIT', timeLimit: 'cpu' });
      const quick = await r1.run({ argv: ['/bin/true'] });
      expect(quick.verdict).toBe('OK');
      expect(quick.cpuTimeMs).not.toBeNull();
      expect(quick.cpuTimeMs!).toBeLessThan(200);
    } finally {
      await r1.close();
    }
  });

  it('runs options of another shape the ordinary way, and makes the next sandbox for them', async () => {
    const r1 = createRunner({ rootfs, argv: ['/bin/true'] });
    try {
      await r1.run();
      const other = await r1.run({ argv: [BB, 'hostname'], hostname: 'other' });
      expect(other.stdout).toBe('other\n');
      expect(await waitingCount(2)).toBe(2); /* the runner above, and this one's for hostname 'other' */
      const again = await r1.run({ argv: [BB, 'hostname'], hostname: 'other' });
      expect(again.stdout).toBe('other\n');
    } finally {
      await r1.close();
    }
  });

  it('ends a sandbox made for other options before the run that changed them starts: its host id is free again', async () => {
    /* One host id in the range: the waiting sandbox holds it until it is gone. */
    const r1 = createRunner({
      rootfs,
      argv: [BB, 'hostname'],
      hostIdRange: { first: 1_930_000_000, count: 1 },
    });
    try {
      expect((await r1.run()).stdout).toBe('capsule\n');
      expect((await r1.run({ hostname: 'other' })).stdout).toBe('other\n');
      expect((await r1.run({ hostname: 'other' })).stdout).toBe('other\n');
    } finally {
      await r1.close();
    }
  });

  it('fails bad options as run() does, and a program that cannot be run with the same SetupError', async () => {
    await expect(runner.run({ argv: ['relative'] })).rejects.toThrow(/must be absolute/);
    const missing = { rootfs: '/nonexistent-capsule-rootfs', argv: ['/bin/true'] };
    const plainBad = (await run(missing).catch((e: Error) => e)) as Error;
    expect(() => createRunner(missing)).toThrow(plainBad.message);
    const plain = (await run({ rootfs, argv: ['/no/such/program'] }).catch((e: Error) => e)) as Error;
    expect(plain).toBeInstanceOf(SetupError);
    await runner.run({ argv: ['/bin/true'] }); /* a sandbox is waiting for the next run */
    const viaRunner = (await runner.run({ argv: ['/no/such/program'] }).catch((e: Error) => e)) as Error;
    expect(viaRunner).toBeInstanceOf(SetupError);
    expect(viaRunner.message).toBe(plain.message);
    expect((viaRunner as SetupError).step).toBe('exec');
  });

  it('runs several at once on one runner, each with its own result', async () => {
    const outs = await Promise.all(
      [0, 1, 2, 3].map((i) => runner.run({ argv: [BB, 'sh', '-c', `echo ${i}; exit ${i}`] })),
    );
    expect(outs.map((r) => [r.exitCode, r.stdout])).toEqual([
      [0, '0\n'],
      [1, '1\n'],
      [2, '2\n'],
      [3, '3\n'],
    ]);
  });

  it('honours an AbortSignal: aborted before, the run rejects and starts nothing; during, it ends aborted', async () => {
    await runner.run({ argv: ['/bin/true'] });
    const early = new AbortController();
    early.abort(new Error('stop before'));
    await expect(runner.run({ argv: ['/bin/true'], signal: early.signal })).rejects.toThrow('stop before');
    const late = new AbortController();
    const r = await runner.run({
      argv: [BB, 'sleep', '10'],
      signal: late.signal,
      onSpawn: () => setTimeout(() => late.abort(), 50),
    });
    expect(r.aborted).toBe(true);
  });

  it("explains a run made ahead: the steps of its making, then capsule-init's", async () => {
    const r1 = createRunner({ rootfs, argv: ['/bin/true'], explain: true });
    try {
      await r1.run();
      const r = await r1.run();
      const steps = r.explain!.map((s) => s.step);
      for (const step of ['clone', 'pivot_root', 'exec_init', 'fork_program', 'exec'])
        expect(steps).toContain(step);
    } finally {
      await r1.close();
    }
  });

  /** Two runs, then the PID of the capsule-init made beside the second, once it waits for the third. */
  async function nextWaiting(runner: ReturnType<typeof createRunner>): Promise<number> {
    await runner.run();
    const before = new Set(waitingInits());
    await runner.run();
    let mine: number[] = [];
    for (let i = 0; i < 200 && mine.length === 0; i++) {
      mine = waitingInits().filter((p) => !before.has(p));
      if (mine.length === 0) await sleep(10);
    }
    expect(mine).toHaveLength(1);
    return mine[0]!;
  }

  it('launches the run the ordinary way when the waiting capsule-init was killed', async () => {
    const r1 = createRunner({ rootfs, argv: [BB, 'echo', 'fine'] });
    try {
      const waiting = await nextWaiting(r1);
      process.kill(waiting, 'SIGKILL');
      for (let i = 0; i < 100 && waitingInits().includes(waiting); i++) await sleep(10);
      expect((await r1.run()).stdout).toBe('fine\n');
    } finally {
      await r1.close();
    }
  });

  it('launches the run the ordinary way when capsule-init dies with the run sent but unread', async () => {
    /*
     * The race the test above can only hope to miss, made certain: the waiting capsule-init
     * is stopped, so the run's message waits in its socket; it is killed before it reads it.
     * Nothing of the run began: it must be launched again, not reported as a killed run.
     */
    const r1 = createRunner({ rootfs, argv: [BB, 'echo', 'fine'] });
    try {
      const waiting = await nextWaiting(r1);
      process.kill(waiting, 'SIGSTOP');
      const running = r1.run();
      await sleep(50);
      process.kill(waiting, 'SIGKILL');
      const r = await running;
      expect(r.stdout).toBe('fine\n');
      expect(r.verdict).toBe('OK');
    } finally {
      await r1.close();
    }
  });

  it('a run message capsule-init cannot read ends the run with a receive_run SetupError', async () => {
    const sb = await LaunchedSandbox.prepare(resolveOptions({ rootfs, argv: ['/bin/true'] }));
    const inner = sb as unknown as { goFd: number; id: number };
    const [r, w] = native().pipe();
    native().setRef(sb.pid, inner.id, true);
    native().sendRun(inner.goFd, Buffer.from('not a run message'), [r, w, w]);
    for (const fd of [r, w]) closeSync(fd);
    const e = await sb.result().catch((err: unknown) => err);
    sb.dispose();
    expect(e).toBeInstanceOf(SetupError);
    expect((e as SetupError).step).toBe('receive_run');
    expect((e as SetupError).message).toMatch(/receive_run failed: .*Protocol error/);
  });

  it('close() ends the sandbox made ahead; nothing is left: process, descriptor, mount, zombie', async () => {
    const fds = openFds();
    const mounts = mountCount();
    const r1 = createRunner({ rootfs, argv: ['/bin/true'] });
    for (let i = 0; i < 3; i++) expect((await r1.run()).verdict).toBe('OK');
    await r1.close();
    expect((await r1.run()).verdict).toBe('OK'); /* after close(): the ordinary way, nothing made ahead */
    expect(await waitingCount(1)).toBe(1); /* the describe's own runner */
    expect(mountCount()).toBe(mounts);
    expect(zombieChildren()).toEqual([]);
    await sleep(50);
    expect(fdsLeftSince(fds)).toEqual([]);
  });

  it('a process that exits without close() exits at once and leaves no sandbox behind', () => {
    const script = `
      import { createRunner } from ${JSON.stringify(join(process.cwd(), 'dist/src/index.js'))};
      const r = createRunner({ rootfs: ${JSON.stringify(rootfs)}, argv: ['/bin/true'] });
      const res = await r.run();
      console.log(res.verdict);
    `;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(out).toBe('OK\n');
    expect(waitingInits(false)).toEqual([]);
  });
});
