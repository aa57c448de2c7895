/**
 * run() under concurrency and descriptor pressure, each in a fresh Node process running
 * the built library (dist/), so that no cgroup manager or pool exists yet.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';

const rootfs = inject('rootfs');
const root = join(import.meta.dirname, '..');

/** Runs `body` (an async function's body, with `run` and `rootfs` in scope) in a fresh node; its JSON result. */
function fresh(body: string, shell = ''): unknown {
  const script = `
    import { readdirSync, existsSync } from 'node:fs';
    const { run } = await import(${JSON.stringify(join(root, 'dist/src/index.js'))});
    const rootfs = process.env.ROOTFS;
    const fds = () => readdirSync('/proc/self/fd').length;
    /* This process's pooled cgroup directories, in the hierarchy that has most of them. */
    const cgroupDirs = () => {
      let most = 0;
      for (const h of ['', ...readdirSync('/sys/fs/cgroup')]) {
        const dir = '/sys/fs/cgroup/' + h + '/capsule';
        if (!existsSync(dir)) continue;
        const n = readdirSync(dir).filter((d) => d.startsWith(process.pid + '-')).length;
        most = Math.max(most, n);
      }
      return most;
    };
    const out = await (async () => { ${body} })();
    process.stdout.write(JSON.stringify(out));
  `;
  const r = spawnSync('bash', ['-c', `${shell} exec node --input-type=module -e "$SCRIPT"`], {
    env: { ...process.env, ROOTFS: rootfs, SCRIPT: script },
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.status !== 0) throw new Error(`the node subprocess failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout);
}

describe('concurrent first runs', () => {
  it('make one cgroup manager, not one per run', () => {
    const one = fresh(`
      const before = fds();
      await run({ rootfs, argv: ['/bin/true'] });
      return { held: fds() - before, dirs: cgroupDirs() };
    `) as { held: number; dirs: number };
    const many = fresh(`
      const before = fds();
      await Promise.all(Array.from({ length: 32 }, () => run({ rootfs, argv: ['/bin/true'] })));
      return { held: fds() - before, dirs: cgroupDirs() };
    `) as { held: number; dirs: number };
    console.log(`fds held after 1 first run: ${one.held}; after 32 concurrent first runs: ${many.held}`);
    const poolSize = 2 * availableParallelism();
    /*
     * One manager keeps at most poolSize cgroups (none where it cannot reuse them: v2 before
     * Linux 6.12 cannot reset memory.peak); 32 managers kept one each, and their fds.
     */
    expect(one.dirs).toBeLessThanOrEqual(1);
    expect(many.dirs).toBeLessThanOrEqual(poolSize);
    expect(many.held).toBeLessThanOrEqual(Math.max(one.held, 1) * poolSize);
  });
});

/** This process's cgroups still on the host (by the `<pid>-` prefix of their names). */
function cgroupsOf(pid: number): string[] {
  const left: string[] = [];
  for (const h of ['', ...readdirSync('/sys/fs/cgroup')]) {
    const dir = `/sys/fs/cgroup/${h}/capsule`;
    if (existsSync(dir)) left.push(...readdirSync(dir).filter((d) => d.startsWith(`${pid}-`)));
  }
  return left;
}

/*
 * Under \`ulimit -n 64\` the subprocess takes every free descriptor but `free` (as an
 * embedder's own files would), runs twice, gives them back and runs twice more; with
 * `hold`, it takes them all again before it exits, so the exit cleanup has none.
 */
const pressure = (warm: boolean, free: number, hold: boolean) => `
  const { openSync, closeSync } = await import('node:fs');
  const results = [];
  const attempt = async () => {
    try {
      const r = await run({ rootfs, argv: ['/bin/true'] });
      results.push('exit ' + r.exitCode);
    } catch (e) {
      results.push(e.name + ': ' + e.message);
    }
  };
  const take = () => { const b = []; for (;;) { try { b.push(openSync('/dev/null', 'r')); } catch { return b; } } };
  if (${warm}) await attempt();
  const ballast = take();
  for (let i = 0; i < ${free}; i++) closeSync(ballast.pop());
  await attempt();
  await attempt();
  for (const fd of ballast) closeSync(fd);
  await attempt();
  await attempt();
  if (${hold}) take();
  return { results, pid: process.pid };
`;

describe('descriptor pressure', () => {
  const cases: [boolean, number, boolean][] = [];
  for (const warm of [false, true]) for (const free of [0, 2, 6, 10]) cases.push([warm, free, warm]);
  it.each(cases)(
    'warm %s, %i fds free: a clear error naming the limit, recovery, no cgroup left (held at exit: %s)',
    (warm, free, hold) => {
      const r = fresh(pressure(warm, free, hold), 'ulimit -n 64;') as { results: string[]; pid: number };
      const results = r.results.slice(warm ? 1 : 0);
      if (warm) expect(r.results[0]).toBe('exit 0');
      for (const failed of results.slice(0, 2)) {
        if (failed === 'exit 0') continue;
        expect(failed).toMatch(
          /^SetupError: capsule could not set up the sandbox: .*RLIMIT_NOFILE.*ulimit -n/,
        );
      }
      expect(results.slice(2)).toEqual(['exit 0', 'exit 0']);
      expect(cgroupsOf(r.pid)).toEqual([]);
    },
  );
});
