/**
 * Issue 12's benchmark: the OCI command line. One busybox `true` through
 * `RUNTIME --root DIR create --bundle B --pid-file P ID`, `start ID`, waiting for the
 * container's process to exit, and `delete ID`, for runc, crun and capsule-runc
 * (dist/capsule-runc, when it is built) on the same rootfs, p50/p99 per phase and ratios;
 * then `podman run --rm` end to end with each runtime. The timing loop is bench/oci-cycle.c,
 * a child subreaper, so that waiting for the container costs a waitpid(2), not a poll. The
 * runtimes take turns (chunks of 10 lifecycles, podman run by run), so that drift in the load
 * of this shared machine hits them alike.
 *
 *   npm run bench -- --only oci [--runs N]
 *
 * Every bundle sets linux.cgroupsPath (/capsule-bench-oci/RUNTIME): without it runc and crun
 * make the container's cgroup under their own, which here is a memory cgroup under
 * process_api. Everything the bench makes (state dirs, podman's storage, cgroups) is removed
 * at the end, also after a failure.
 *
 * crun 1.8 refuses a hybrid cgroup host whose cgroup2 hierarchy has any controller, as this
 * machine's has (hugetlb); crun, and podman with crun, then run in a private mount namespace
 * without /sys/fs/cgroup/unified (unshare(1)), which the table notes.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

import { packageRoot } from '../src/native.js';
import { spawnWait } from './peers.js';
import { printTable, type Sample } from './stats.js';

export interface OciBenchOptions {
  dir: string;
  rootfs: string;
  /** OCI lifecycles per runtime. */
  n: number;
  /** `podman run --rm` runs per runtime. */
  podmanRuns?: number;
}

const CGROUP_PARENT = 'capsule-bench-oci';
const UNIFIED = '/sys/fs/cgroup/unified';

function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** crun refuses this host's cgroups unless the cgroup2 hierarchy is out of its sight. */
function needsUnifiedHidden(runtime: string): boolean {
  if (basename(runtime) !== 'crun') return false;
  try {
    return readFileSync(join(UNIFIED, 'cgroup.controllers'), 'utf8').trim() !== '';
  } catch {
    return false;
  }
}

/** argv that runs `argv` in a private mount namespace without /sys/fs/cgroup/unified. */
function hidingUnified(argv: string[]): string[] {
  // --propagation private: the umount stays in the new namespace (unshare(1))
  return [
    'unshare',
    '--mount',
    '--propagation',
    'private',
    'sh',
    '-c',
    `umount -l ${UNIFIED} && exec "$@"`,
    'sh',
    ...argv,
  ];
}

/** A bundle for one runtime: the shared rootfs read-only, /bin/true, its own cgroupsPath. */
function makeBundle(dir: string, rootfs: string, name: string): string {
  const bundle = join(dir, `bundle-${name}`);
  mkdirSync(bundle, { recursive: true });
  execFileSync('runc', ['spec'], { cwd: bundle });
  const path = join(bundle, 'config.json');
  const config = JSON.parse(readFileSync(path, 'utf8')) as {
    root: { path: string; readonly: boolean };
    process: { terminal: boolean; args: string[] };
    linux: { cgroupsPath?: string };
  };
  config.root = { path: rootfs, readonly: true };
  config.process.terminal = false;
  config.process.args = ['/bin/true'];
  config.linux.cgroupsPath = `/${CGROUP_PARENT}/${name}`;
  writeFileSync(path, JSON.stringify(config, null, 2));
  return bundle;
}

/** Remove /sys/fs/cgroup/X/capsule-bench-oci everywhere; zombies keep a v1 cgroup busy until PID 1 reaps them. */
async function removeCgroups(): Promise<string[]> {
  const trees = readdirSync('/sys/fs/cgroup')
    .map((h) => join('/sys/fs/cgroup', h, CGROUP_PARENT))
    .filter((p) => existsSync(p));
  const removeTree = (p: string) => {
    for (const e of readdirSync(p, { withFileTypes: true })) if (e.isDirectory()) removeTree(join(p, e.name));
    rmdirSync(p);
  };
  let left = trees;
  for (let i = 0; i < 50 && left.length > 0; i++) {
    left = left.filter((p) => {
      try {
        removeTree(p);
        return false;
      } catch {
        return true;
      }
    });
    if (left.length > 0) await new Promise((r) => setTimeout(r, 200));
  }
  return left;
}

interface Runtime {
  name: string;
  path: string;
}

export async function benchOci({ dir, rootfs, n, podmanRuns = 30 }: OciBenchOptions): Promise<void> {
  const root = packageRoot();
  const work = join(dir, 'oci');
  mkdirSync(work, { recursive: true });
  const cycle = join(work, 'oci-cycle');
  execFileSync('cc', ['-O2', '-Wall', '-Werror', '-o', cycle, join(root, 'bench/oci-cycle.c')]);

  const runtimes: Runtime[] = [];
  for (const name of ['runc', 'crun']) {
    const path = which(name);
    if (path) runtimes.push({ name, path });
    else console.log(`\noci: ${name} is not installed (Debian package ${name}); skipped`);
  }
  const capsuleRunc = join(root, 'dist/capsule-runc');
  if (existsSync(capsuleRunc)) runtimes.push({ name: 'capsule-runc', path: capsuleRunc });
  else console.log(`\noci: ${capsuleRunc} does not exist yet (issue 12's OCI runtime mode); skipped`);

  const hidden = runtimes.filter((r) => needsUnifiedHidden(r.path)).map((r) => r.name);
  const note = (r: Runtime) => (hidden.includes(r.name) ? `no ${UNIFIED} (see bench/oci.ts)` : '');
  const states: Record<string, string> = {};
  try {
    // --- the OCI command line -------------------------------------------------------------
    // Interleaved in chunks, runtime after runtime, so that drift in the machine's load (it is
    // shared) hits them alike; each runtime's first chunk is preceded by unmeasured runs.
    const rows: Record<string, number[][]> = {};
    const argvOf: Record<string, (chunk: number, count: number, warm: number) => string[]> = {};
    for (const r of runtimes) {
      const bundle = makeBundle(work, rootfs, r.name);
      const state = join(work, `state-${r.name}`);
      states[r.path] = state;
      rows[r.name] = [];
      argvOf[r.name] = (chunk, count, warm) => {
        const argv = [
          cycle,
          String(count),
          String(warm),
          bundle,
          join(work, `${r.name}.pid`),
          `capsule-bench-${process.pid}-${chunk}`,
          r.path,
          '--root',
          state,
        ];
        return hidden.includes(r.name) ? hidingUnified(argv) : argv;
      };
    }
    const chunk = 10;
    for (let done = 0, c = 0; done < n; done += chunk, c++) {
      const order = c % 2 ? [...runtimes].reverse() : runtimes;
      for (const r of order) {
        const cmd = argvOf[r.name]!(c, Math.min(chunk, n - done), c === 0 ? Math.min(20, n) : 0);
        const out = execFileSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', maxBuffer: 64 << 20 });
        for (const l of out.trim().split('\n')) rows[r.name]!.push(l.split(' ').map(Number));
      }
    }
    const total: Sample[] = runtimes.map((r) => ({
      name: r.name,
      times: rows[r.name]!.map((x) => x[0]!),
      note: note(r),
    }));
    const phases: Record<string, Sample[]> = {};
    for (const [i, p] of ['create', 'start', 'wait', 'delete'].entries())
      phases[p] = runtimes.map((r) => ({ name: r.name, times: rows[r.name]!.map((x) => x[i + 1]!) }));
    if (total.length > 0) {
      printTable(
        `OCI command line: create + start + wait + delete of busybox true (${n} runs each; ms)`,
        total,
        'runc',
      );
      for (const [p, samples] of Object.entries(phases)) printTable(`  ${p} (ms)`, samples, 'runc');
    }

    // --- podman run --rm, end to end ---------------------------------------------------------
    const podman = which('podman');
    if (!podman) {
      console.log('\noci: podman is not installed (Debian package podman); podman run skipped');
      return;
    }
    const storage = join(work, 'podman');
    const base = [
      '--root',
      join(storage, 'root'),
      '--runroot',
      join(storage, 'run'),
      '--cgroup-manager',
      'cgroupfs',
      '--events-backend',
      'file',
    ];
    const image = 'localhost/capsule-bench-busybox';
    const tar = join(work, 'rootfs.tar');
    execFileSync('tar', ['-C', rootfs, '-cf', tar, '.']);
    execFileSync(podman, [...base, 'import', tar, image], { stdio: 'ignore' });
    const podmanArgv = (r: Runtime) => {
      const argv = [
        podman,
        ...base,
        '--runtime',
        r.path,
        'run',
        '--rm',
        '--network',
        'none',
        '--cgroup-parent',
        `/${CGROUP_PARENT}/podman-${r.name}`,
        '--ulimit',
        'nofile=20000:20000',
        '--ulimit',
        'nproc=32768:32768',
        image,
        '/bin/true',
      ];
      return hidden.includes(r.name) ? hidingUnified(argv) : argv;
    };
    const podmanTimes: Record<string, number[]> = Object.fromEntries(runtimes.map((r) => [r.name, []]));
    for (let i = -3; i < podmanRuns; i++)
      for (const r of i % 2 ? [...runtimes].reverse() : runtimes) {
        const cmd = podmanArgv(r);
        const t = performance.now();
        await spawnWait(cmd[0]!, cmd.slice(1));
        if (i >= 0) podmanTimes[r.name]!.push(performance.now() - t);
      }
    const podmanSamples: Sample[] = runtimes.map((r) => ({
      name: `podman + ${r.name}`,
      times: podmanTimes[r.name]!,
      note: note(r),
    }));
    printTable(
      `podman run --rm busybox true, end to end (${podmanRuns} runs each; --network none; ms)`,
      podmanSamples,
      'podman + runc',
    );
    spawnSync(podman, [...base, 'rm', '--all', '--force'], { stdio: 'ignore' });
    spawnSync(podman, [...base, 'rmi', '--all', '--force'], { stdio: 'ignore' });
  } finally {
    // containers a failed run left, then podman's mounts, cgroups, files
    for (const [path, state] of Object.entries(states)) {
      if (!existsSync(state)) continue;
      const list = spawnSync(path, ['--root', state, 'list', '-q'], { encoding: 'utf8' });
      for (const id of (list.stdout ?? '').split('\n').filter(Boolean))
        spawnSync(path, ['--root', state, 'delete', '--force', id], { stdio: 'ignore' });
    }
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((m): m is string => !!m && m.startsWith(`${work}/`))
      .sort()
      .reverse();
    for (const m of mounts) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
    const left = await removeCgroups();
    if (left.length > 0) console.log(`oci: could not remove the cgroups ${left.join(' ')}`);
    rmSync(work, { recursive: true, force: true });
  }
}
