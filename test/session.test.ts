/**
 * Sessions (src/session.ts): many commands in one sandbox. State carries between
 * commands, each command has its own result and limits, files move in and out without
 * following what the program planted, and nothing outlives destroy(), the Node process,
 * or the last reference to a box. Isolation is asserted from inside with the probe,
 * comparing a command of a session with a fresh run().
 */
import { execFileSync, spawn } from 'node:child_process';
import {
  existsSync,
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
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { type Box, create, run } from '../src/index.js';
import { HOST_ID_LOCK_DIR } from '../src/ids.js';
import { mountCount, processesWith } from './helpers/host.js';

const rootfs = () => inject('rootfs');
const NAMESPACES = ['mnt', 'net', 'pid', 'ipc', 'uts', 'user'] as const;

/** Every cgroup directory below `parent` in every hierarchy, with the pids in it. */
function cgroupsUnder(parent: string): { dir: string; procs: string }[] {
  const out: { dir: string; procs: string }[] = [];
  for (const h of readdirSync('/sys/fs/cgroup')) {
    const base = join('/sys/fs/cgroup', h, parent);
    if (!existsSync(base)) continue;
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        if (!e.isDirectory()) continue;
        out.push({
          dir: join(d, e.name),
          procs: readFileSync(join(d, e.name, 'cgroup.procs'), 'utf8').trim(),
        });
        walk(join(d, e.name));
      }
    };
    walk(base);
  }
  return out;
}

/** Remove the (empty) parent cgroup a test made, in every hierarchy. */
function removeParent(parent: string): void {
  for (const h of readdirSync('/sys/fs/cgroup')) {
    const base = join('/sys/fs/cgroup', h, parent);
    if (existsSync(base)) rmdirSync(base);
  }
}

/** The cgroup directories a process is in, one per hierarchy (capsule's only). */
function cgroupDirsOf(pid: number): string[] {
  const dirs: string[] = [];
  for (const line of readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n')) {
    const [, controllers, path] = line.split(':') as [string, string, string];
    if (!path.includes('capsule')) continue;
    const h = controllers === '' ? '' : controllers.replace(/^name=/, '');
    /* The v2 hierarchy: /sys/fs/cgroup itself on a pure v2 machine, its unified/ in a hybrid one. */
    const v2 = existsSync('/sys/fs/cgroup/cgroup.controllers') ? '/sys/fs/cgroup' : '/sys/fs/cgroup/unified';
    const dir = h === '' ? join(v2, path) : join('/sys/fs/cgroup', h, path);
    if (existsSync(dir)) dirs.push(dir);
  }
  return dirs;
}

/** The host uid a process runs as: a box's host-id lease is the file named by it. */
function hostUid(pid: number): number {
  return Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}

/** The namespace inodes `ls -l /proc/self/ns` shows inside, by name. */
function nsFromLs(out: string): Record<string, string> {
  const ns: Record<string, string> = {};
  for (const m of out.matchAll(/ (\w+) -> (\w+:\[\d+\])/g)) ns[m[1]!] = m[2]!;
  return ns;
}

describe('a session', () => {
  let box: Box;
  beforeAll(async () => {
    box = await create({ rootfs: rootfs() });
  });
  afterAll(async () => {
    await box.destroy();
  });

  it('keeps files in /tmp from one command to the next, each with its own exit code', async () => {
    const a = await box.exec(['/bin/sh', '-c', 'echo hello > /tmp/state; exit 3']);
    expect(a).toMatchObject({ exitCode: 3, verdict: 'RUNTIME_ERROR', signal: null });
    const b = await box.exec(['/bin/cat', '/tmp/state']);
    expect(b).toMatchObject({ exitCode: 0, verdict: 'OK', stdout: 'hello\n' });
    const c = await box.exec(['/probe', 'signal', '11']);
    expect(c).toMatchObject({ exitCode: null, signal: 'SIGSEGV' });
  });

  it('takes stdin, env and cwd per command, and returns Buffers when asked', async () => {
    const r = await box.exec(['/bin/sh', '-c', 'read x; echo "$x $FOO $(pwd)"'], {
      stdin: 'line\n',
      env: { FOO: 'bar' },
      cwd: '/tmp',
      encoding: 'buffer',
    });
    expect(Buffer.isBuffer(r.stdout)).toBe(true);
    expect(r.stdout.toString()).toBe('line bar /tmp\n');
  });

  it('ends one command at its time limit and stays usable', async () => {
    const slow = await box.exec(['/probe', 'sleep', '10000'], { wallTimeLimitMs: 200 });
    expect(slow).toMatchObject({ verdict: 'TIME_LIMIT', timeLimit: 'wall' });
    const burn = await box.exec(['/probe', 'burn', '5000'], { cpuTimeLimitMs: 100 });
    expect(burn).toMatchObject({ verdict: 'TIME_LIMIT', timeLimit: 'cpu' });
    const next = await box.exec(['/bin/echo', 'still here']);
    expect(next).toMatchObject({ verdict: 'OK', stdout: 'still here\n' });
  });

  it("ends what a command leaves running when it exits, through the command's own cgroup", async () => {
    const marker = `capsule-session-daemon-${process.pid}`;
    const r = await box.exec(['/probe', 'daemon', marker]);
    expect(r.exitCode).toBe(0);
    expect(processesWith(marker)).toEqual([]);
  });

  it('runs commands at the same time, each with its own result', async () => {
    const results = await Promise.all(
      [0, 1, 2, 3].map((i) =>
        box.exec(['/bin/sh', '-c', `echo ${i} > /tmp/c${i}; cat /tmp/c${i}; exit ${i}`]),
      ),
    );
    expect(results.map((r) => [r.exitCode, r.stdout])).toEqual([
      [0, '0\n'],
      [1, '1\n'],
      [2, '2\n'],
      [3, '3\n'],
    ]);
  });

  it('box.spawn(): a server kept up over streams, in the box, seeing what exec() left; EOF ends it', async () => {
    await box.exec(['/bin/sh', '-c', 'echo from-exec > /tmp/spawn-state']);
    const server = box.spawn(['/bin/sh', '-c', 'cat /tmp/spawn-state; while read l; do echo "got $l"; done']);
    const lines: string[] = [];
    let pending = '';
    const next = () =>
      new Promise<string>((resolve) => {
        const take = () => {
          const i = pending.indexOf('\n');
          if (i < 0) return false;
          resolve(pending.slice(0, i));
          pending = pending.slice(i + 1);
          return true;
        };
        if (take()) return;
        const onData = (c: Buffer) => {
          pending += c.toString();
          if (take()) server.stdout!.off('data', onData);
        };
        server.stdout!.on('data', onData);
      });
    lines.push(await next());
    for (const word of ['one', 'two']) {
      server.stdin!.write(`${word}\n`);
      lines.push(await next());
    }
    expect(lines).toEqual(['from-exec', 'got one', 'got two']);
    const pid = await server.pid;
    expect(alive(pid)).toBe(true);
    server.stdin!.end();
    const r = await server.result;
    expect(r).toMatchObject({ verdict: 'OK', exitCode: 0, stdout: '' });
    /* The streamed command is gone, and the box is still up for the next. */
    expect(alive(pid)).toBe(false);
    expect((await box.exec(['/bin/echo', 'after'])).stdout).toBe('after\n');
  });

  it('box.spawn(): kill() and a wall limit end that command only; bad options throw at once', async () => {
    const s = box.spawn(['/probe', 'sleep', '10000'], { stdin: 'ignore' });
    await s.pid;
    s.kill('SIGKILL');
    expect((await s.result).signal).toBe('SIGKILL');
    const slow = box.spawn(['/probe', 'sleep', '10000'], { wallTimeLimitMs: 200, stdout: 'ignore' });
    expect(await slow.result).toMatchObject({ verdict: 'TIME_LIMIT', timeLimit: 'wall' });
    expect(() => box.spawn(['/bin/true'], { onOutput: () => {} } as never)).toThrow(/onOutput is exec\(\)'s/);
    expect(() => box.spawn(['/bin/true'], { memoryLimitBytes: 1 << 20 } as never)).toThrow(
      /memoryLimitBytes is the box's/,
    );
    expect((await box.exec(['/bin/echo', 'ok'])).stdout).toBe('ok\n');
  });

  it('refuses options that belong to the box, and argv at create()', async () => {
    await expect(box.exec(['/bin/true'], { memoryLimitBytes: 1 << 20 } as never)).rejects.toThrow(
      /memoryLimitBytes is the box's/,
    );
    await expect(create({ rootfs: rootfs(), argv: ['/bin/true'] } as never)).rejects.toThrow(
      /argv belongs to one command/,
    );
  });

  it('shares the namespaces of its PID 1 between commands, and none with the host', async () => {
    const ls = async () => nsFromLs((await box.exec(['/bin/ls', '-l', '/proc/self/ns'])).stdout);
    const [a, b] = [await ls(), await ls()];
    for (const ns of NAMESPACES) {
      const boxNs = readlinkSync(`/proc/${box.pid}/ns/${ns}`);
      expect(a[ns]).toBe(boxNs);
      expect(b[ns]).toBe(boxNs);
      expect(boxNs).not.toBe(readlinkSync(`/proc/self/ns/${ns}`));
    }
    /* A cgroup namespace of each command's own, rooted at its own cgroup, as in a fresh sandbox. */
    expect(a.cgroup).not.toBe(readlinkSync('/proc/self/ns/cgroup'));
    const cg = await box.exec(['/bin/cat', '/proc/self/cgroup']);
    for (const line of cg.stdout.trim().split('\n')) expect(line).toMatch(/:\/$/);
  });
});

describe('isolation parity', () => {
  it("a command joined into a box sees what a fresh run()'s program sees (the probe)", async () => {
    const fresh = await run({ rootfs: rootfs(), argv: ['/probe', 'info'], cwd: '/tmp' });
    const box = await create({ rootfs: rootfs(), cwd: '/tmp' });
    try {
      const joined = await box.exec(['/probe', 'info']);
      expect(joined.exitCode).toBe(0);
      const f = JSON.parse(fresh.stdout) as Record<string, unknown>;
      const j = JSON.parse(joined.stdout) as Record<string, unknown>;
      /*
       * What differs by construction: the program's own pid, its parent (the command's
       * capsule-init is outside the box, so getppid() is 0, as for any process whose parent
       * is in an ancestor namespace), its session (led from outside: getsid() is 0), and the
       * pids /proc lists. Everything else must be equal.
       */
      for (const k of ['pid', 'ppid', 'sid', 'procPids']) {
        delete f[k];
        delete j[k];
      }
      expect(j).toEqual(f);
      expect(j).toMatchObject({ uid: 65534, CapEff: '0000000000000000', NoNewPrivs: '1', Seccomp: '2' });
    } finally {
      await box.destroy();
    }
  });

  it('a forbidden system call ends that command with SECURITY_VIOLATION, the box goes on', async () => {
    const box = await create({ rootfs: rootfs(), seccomp: 'default-kill' });
    try {
      const bad = await box.exec(['/probe', 'forbidden']);
      expect(bad.verdict).toBe('SECURITY_VIOLATION');
      expect(bad.violation?.syscall).toBe('mount');
      expect((await box.exec(['/bin/true'])).verdict).toBe('OK');
    } finally {
      await box.destroy();
    }
  });

  it("no program argument selects capsule-init's hold or join mode (argv[0] is capsule's)", async () => {
    for (const prog of ['/capsule-hold', '/capsule-join'])
      await expect(run({ rootfs: rootfs(), argv: [prog] })).rejects.toMatchObject({
        step: 'exec',
        code: 'ENOENT',
      });
    const r = await run({ rootfs: rootfs(), argv: ['/bin/sh', '-c', 'exec -a capsule-hold /probe exit 4'] });
    expect(r.exitCode).toBe(4);
  });

  it("signals no host process: the command's capsule-init is not PID 1 and never kill(-1)s", async () => {
    /* The box runs as host uid 65534 (hostIds 'shared'), and so does this canary on the host. */
    const canary = spawn('/bin/sleep', ['60'], { uid: 65534, gid: 65534, stdio: 'ignore' });
    await new Promise((r) => canary.once('spawn', r));
    const box = await create({ rootfs: rootfs(), hostIds: 'shared' });
    try {
      expect((await box.exec(['/probe', 'exit', '0'])).exitCode).toBe(0);
      expect((await box.exec(['/probe', 'sleep', '5000'], { wallTimeLimitMs: 100 })).verdict).toBe(
        'TIME_LIMIT',
      );
      expect(canary.exitCode).toBe(null);
      expect(canary.signalCode).toBe(null);
      expect(alive(canary.pid!)).toBe(true);
    } finally {
      await box.destroy();
      canary.kill('SIGKILL');
      await new Promise((r) => canary.once('exit', r));
    }
  });
});

describe('copyIn and copyOut', () => {
  let box: Box;
  let dir: string;
  beforeAll(async () => {
    box = await create({ rootfs: rootfs() });
    dir = mkdtempSync(join(tmpdir(), 'capsule-session-'));
  });
  afterAll(async () => {
    await box.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('moves a file in, where the program can use and change it, and back out', async () => {
    writeFileSync(join(dir, 'in.txt'), 'from the host\n', { mode: 0o644 });
    await box.copyIn(join(dir, 'in.txt'), '/tmp/in.txt');
    const r = await box.exec(['/bin/sh', '-c', 'cat /tmp/in.txt && echo appended >> /tmp/in.txt && id -u']);
    expect(r).toMatchObject({ exitCode: 0, stdout: 'from the host\n65534\n' });
    await box.copyOut('/tmp/in.txt', join(dir, 'out.txt'));
    expect(readFileSync(join(dir, 'out.txt'), 'utf8')).toBe('from the host\nappended\n');
  });

  it('follows no symlink the program planted: not to /, not to a host path, not in a directory', async () => {
    const secret = join(dir, 'secret');
    writeFileSync(secret, 'host secret\n');
    const plant = await box.exec([
      '/bin/sh',
      '-c',
      `/bin/busybox ln -s / /tmp/root && /bin/busybox ln -s ${secret} /tmp/host && ` +
        '/bin/busybox ln -s /etc /tmp/etc && /bin/busybox ln -s /tmp/in.txt /tmp/inner',
    ]);
    expect(plant.exitCode).toBe(0);
    writeFileSync(join(dir, 'payload'), 'payload\n');

    for (const p of ['/tmp/root/etc/passwd', '/tmp/host', '/tmp/etc/passwd', '/tmp/inner']) {
      await expect(box.copyOut(p, join(dir, 'got'))).rejects.toMatchObject({ code: 'ELOOP' });
      await expect(box.copyIn(join(dir, 'payload'), p)).rejects.toMatchObject({ code: 'ELOOP' });
    }
    await expect(box.copyIn(join(dir, 'payload'), '/tmp/root/tmp/planted')).rejects.toMatchObject({
      code: 'ELOOP',
    });
    expect(existsSync(join(dir, 'got'))).toBe(false);
    expect(readFileSync(secret, 'utf8')).toBe('host secret\n');
    expect(existsSync('/tmp/planted')).toBe(false);
    expect(readFileSync(join(rootfs(), 'etc/passwd'), 'utf8')).not.toContain('payload');
  });

  it('resolves .. and absolute paths inside the box, never above its root', async () => {
    await box.copyOut('/../../../etc/passwd', join(dir, 'passwd'));
    /* The rootfs's passwd (two lines), not the host's. */
    expect(readFileSync(join(dir, 'passwd'), 'utf8')).toBe(
      readFileSync(join(rootfs(), 'etc/passwd'), 'utf8'),
    );
  });

  it('refuses to write a file with other hard links, and where the box is read-only', async () => {
    const r = await box.exec(['/bin/sh', '-c', 'echo a > /tmp/one && /bin/busybox ln /tmp/one /tmp/two']);
    expect(r.exitCode).toBe(0);
    writeFileSync(join(dir, 'p'), 'p\n');
    await expect(box.copyIn(join(dir, 'p'), '/tmp/two')).rejects.toThrow(/2 hard links/);
    expect((await box.exec(['/bin/cat', '/tmp/one'])).stdout).toBe('a\n');
    await expect(box.copyIn(join(dir, 'p'), '/etc/new')).rejects.toMatchObject({ code: 'EROFS' });
    expect(existsSync(join(rootfs(), 'etc/new'))).toBe(false);
  });

  it('refuses what is not a regular file, and a relative path', async () => {
    await expect(box.copyOut('/tmp', join(dir, 'x'))).rejects.toThrow(/not a regular file/);
    await expect(box.copyOut('tmp/in.txt', join(dir, 'x'))).rejects.toThrow(/must be absolute/);
  });
});

describe('reset and destroy', () => {
  it('reset() brings back the rootfs as it was: what a command wrote is gone', async () => {
    const box = await create({ rootfs: rootfs() });
    try {
      await box.exec(['/bin/touch', '/tmp/mark']);
      expect((await box.exec(['/bin/ls', '/tmp/mark'])).exitCode).toBe(0);
      const before = box.pid;
      await box.reset();
      expect(box.pid).not.toBe(before);
      expect(alive(before)).toBe(false);
      expect((await box.exec(['/bin/ls', '/tmp/mark'])).exitCode).not.toBe(0);
    } finally {
      await box.destroy();
    }
  });

  it('destroy() leaves no process, mount, cgroup with a process, or host-id lease behind', async () => {
    const mounts = mountCount();
    const box = await create({ rootfs: rootfs(), pidsLimit: 32 });
    let running: Promise<unknown> = Promise.resolve();
    try {
      /* A command in flight when the box is destroyed: it is killed with the box. */
      await new Promise((spawned) => {
        running = box.exec(['/probe', 'sleep', '30000'], { onSpawn: spawned });
      });
      const pid = box.pid;
      expect(alive(pid)).toBe(true);
      const lease = join(HOST_ID_LOCK_DIR, String(hostUid(pid)));
      const cgroups = cgroupDirsOf(pid);
      expect(cgroups.length).toBeGreaterThan(0);
      expect(existsSync(lease)).toBe(true);
      await box.destroy();
      expect(((await running) as { signal: string }).signal).toBe('SIGKILL');
      expect(alive(pid)).toBe(false);
      expect(mountCount()).toBe(mounts);
      expect(existsSync(lease)).toBe(false);
      /* Back in the pool, empty, or removed. */
      for (const d of cgroups)
        if (existsSync(d)) expect(readFileSync(join(d, 'cgroup.procs'), 'utf8')).toBe('');
      await expect(box.exec(['/bin/true'])).rejects.toThrow(/the box has ended/);
    } finally {
      await box.destroy(); /* idempotent */
      await running.catch(() => {});
    }
  });
});

describe('outliving nothing', () => {
  const lib = join(import.meta.dirname, '../dist/src/index.js');
  beforeAll(() => {
    if (
      !existsSync(lib) ||
      statSync(lib).mtimeMs < statSync(join(import.meta.dirname, '../src/session.ts')).mtimeMs
    )
      execFileSync('npm', ['run', '--silent', 'build:ts'], { cwd: join(import.meta.dirname, '..') });
  });

  /** Run a Node script (ESM) that gets the library's path and the rootfs; its stdout, parsed. */
  async function child(script: string, args: string[] = []): Promise<{ out: string; code: number | null }> {
    const p = spawn(process.execPath, [...args, '--input-type=module', '-e', script, lib, rootfs()], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((r) => p.once('exit', r));
    return { out, code };
  }

  it('a Node process that exits without destroy() leaves no box, cgroup or lease behind', async () => {
    const parent = `capsule-session-exit-${process.pid}`;
    const { out, code } = await child(
      `const { create } = await import(process.argv[1]);
       const { readFileSync } = await import('node:fs');
       const box = await create({ rootfs: process.argv[2], cgroupParent: '${parent}' });
       await box.exec(['/bin/touch', '/tmp/x']);
       const uid = /^Uid:\\s+(\\d+)/m.exec(readFileSync('/proc/' + box.pid + '/status', 'utf8'))[1];
       console.log(box.pid, uid);
       globalThis.keep = box; /* still referenced: only the exit can end it */`,
    );
    expect(code).toBe(0);
    const [pid, uid] = out.trim().split(' ').map(Number) as [number, number];
    expect(pid).toBeGreaterThan(1);
    expect(alive(pid)).toBe(false);
    expect(processesWith('capsule-hold')).toEqual([]);
    expect(existsSync(join(HOST_ID_LOCK_DIR, String(uid)))).toBe(false);
    expect(cgroupsUnder(parent)).toEqual([]);
    removeParent(parent);
  });

  it('a box whose last reference is dropped is destroyed (FinalizationRegistry)', async () => {
    const { out, code } = await child(
      `const { create } = await import(process.argv[1]);
       const { readFileSync } = await import('node:fs');
       let box = await create({ rootfs: process.argv[2] });
       const pid = box.pid;
       box = null;
       const alive = () => { try { return !/\\) [ZX] /.test(readFileSync('/proc/' + pid + '/stat', 'utf8')); } catch { return false; } };
       for (let i = 0; i < 100 && alive(); i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 20)); }
       console.log(JSON.stringify({ pid, alive: alive() }));`,
      ['--expose-gc'],
    );
    expect(code).toBe(0);
    const r = JSON.parse(out) as { pid: number; alive: boolean };
    expect(r.alive).toBe(false);
  });
});
