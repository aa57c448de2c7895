/**
 * Issue (1)'s benchmark: the cost of one sandboxed /bin/true, side by side with the
 * peers, in one run. Everything runs busybox's static `true` from the same rootfs.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

import { run } from '../src/index.js';
import { packageRoot } from '../src/native.js';
import { makeRuncBundle, spawnWait } from './peers.js';
import { printTable, type Sample, timeConcurrent, timeInterleaved, timeRuns } from './stats.js';

export interface LaunchBenchOptions {
  dir: string;
  rootfs: string;
  /** Runs for capsule's library (the issue asks for at least 2000). */
  n: number;
}

function heapWorker(mode: 'capsule' | 'spawn', n: number, heapMiB: number, rootfs: string) {
  const worker = join(packageRoot(), 'dist/bench/heap-worker.js');
  const out = execFileSync(
    process.execPath,
    ['--max-old-space-size=4096', worker, mode, String(n), String(heapMiB), rootfs],
    { encoding: 'utf8', maxBuffer: 64 << 20 },
  );
  const { times, rssBytes } = JSON.parse(out) as { times: number[]; rssBytes: number };
  return { times, note: `RSS ${(rssBytes / 2 ** 30).toFixed(2)} GiB` };
}

export async function benchLaunch({ dir, rootfs, n }: LaunchBenchOptions): Promise<void> {
  const root = packageRoot();
  const forkexec = join(dir, 'forkexec');
  execFileSync('cc', ['-O2', '-o', forkexec, join(root, 'bench/forkexec.c')]);
  const trueBin = join(rootfs, 'bin/true');
  const floor = execFileSync(forkexec, [String(n), trueBin], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map(Number);

  const samples: Sample[] = [{ name: 'fork+exec (C)', times: floor }];
  samples.push({
    name: 'capsule library',
    times: await timeRuns(n, () => run({ rootfs, argv: ['/bin/true'] })),
  });
  const two = await timeConcurrent(n, 2, () => run({ rootfs, argv: ['/bin/true'] }));
  samples.push({ name: 'capsule library, 2 at once', times: two.times, runsPerSecond: two.runsPerSecond });
  samples.push({
    name: 'capsule library, 1 GiB heap',
    ...heapWorker('capsule', Math.min(n, 1000), 1024, rootfs),
  });
  samples.push({
    name: 'node spawn',
    times: await timeRuns(Math.min(n, 1000), () => spawnWait(trueBin, [])),
  });
  samples.push({ name: 'node spawn, 1 GiB heap', ...heapWorker('spawn', 300, 1024, rootfs) });
  const bwrapArgs = [
    '--unshare-all',
    '--die-with-parent',
    '--ro-bind',
    rootfs,
    '/',
    '--proc',
    '/proc',
    '--dev',
    '/dev',
    '/bin/true',
  ];
  samples.push({
    name: 'bwrap (spawned from node)',
    times: await timeRuns(500, () => spawnWait('bwrap', bwrapArgs)),
  });
  samples.push({
    name: 'unshare -pnmiuf chroot',
    times: await timeRuns(500, () =>
      spawnWait('unshare', ['-pnmiuf', '--mount-proc', 'chroot', rootfs, '/bin/true']),
    ),
  });
  const bundle = makeRuncBundle(dir, rootfs);
  let id = 0;
  samples.push({
    name: 'runc run',
    times: await timeRuns(
      100,
      () => spawnWait('runc', ['run', '--bundle', bundle, `capsule-bench-${process.pid}-${id++}`]),
      5,
    ),
  });
  printTable(
    `Launching /bin/true in a sandbox (${n} runs for capsule; ms per run)`,
    samples,
    'fork+exec (C)',
  );

  /*
   * dist/capsule is the installed command: a single executable with the CLI's start-up snapshot
   * inside where the build could make one (src/cli/snapshot.ts); dist/capsule.sh the shell
   * launcher of the same snapshot as a blob file; capsule.mjs the bundle.
   */
  const cli = join(root, 'dist/capsule');
  const cliShell = join(root, 'dist/capsule.sh');
  const cliBundle = join(root, 'dist/capsule.mjs');
  /* Interleaved: one process start each takes ~0.1 s, long enough for the load to move between commands. */
  const commands: [string, () => Promise<void>][] = [
    ['node -e 0', () => spawnWait(process.execPath, ['-e', '0'])],
    ['capsule run (CLI)', () => spawnWait(cli, ['run', rootfs, '/bin/true'])],
    ['dist/capsule.sh run (shell launcher)', () => spawnWait(cliShell, ['run', rootfs, '/bin/true'])],
    ['node dist/capsule.mjs run', () => spawnWait(process.execPath, [cliBundle, 'run', rootfs, '/bin/true'])],
    ['bwrap (CLI)', () => spawnWait('bwrap', bwrapArgs)],
  ];
  const cliTimes = await timeInterleaved(
    50,
    commands.map(([, fn]) => fn),
  );
  const cliSamples: Sample[] = commands.map(([name], i) => ({ name, times: cliTimes[i]! }));
  printTable('The command line: one process start each (ms)', cliSamples, 'node -e 0');
}
