/**
 * Issue (10)'s table, from one run: /bin/true from the same static busybox rootfs under
 * fork+exec (C), node spawn, capsule's library (one at a time, 2 at once, 4 in flight),
 * the same through createRunner (sandboxes made ahead of time: src/ahead.ts), bwrap, runc,
 * and a judge's run with every limit on (run() and a runner); p50, p99, runs/s and the ratio to
 * fork+exec, then which of the issue's goals the figures meet. Rows are measured one after
 * the other in the same process, so a busy machine hits them alike only roughly: compare
 * the ratios, and rerun when another load came and went. Then the command line: `capsule run
 * ROOTFS /bin/true` (dist/capsule) against `node -e 0`, in interleaved rounds (timeInterleaved),
 * so the machine's drift falls on both alike.
 *
 *   npm run bench -- --only table [--runs N]
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

import { createRunner, type Runner, run } from '../src/index.js';
import { packageRoot } from '../src/native.js';
import { LIMITS } from './judge.js';
import { makeRuncBundle, spawnWait } from './peers.js';
import { type Sample, summary, timeConcurrent, timeInterleaved, timeRuns } from './stats.js';

type Summary = ReturnType<typeof summary>;

/** The judge bench's limits (bench/judge.ts): every limit capsule has. */
const JUDGE = LIMITS;

interface Row extends Sample {
  key: string;
}

export async function benchTable({ dir, rootfs, n }: { dir: string; rootfs: string; n: number }) {
  const root = packageRoot();
  const forkexec = join(dir, 'forkexec');
  execFileSync('cc', ['-O2', '-o', forkexec, join(root, 'bench/forkexec.c')]);
  const trueBin = join(rootfs, 'bin/true');
  const prog = join(rootfs, 'judge-prog');
  execFileSync('cc', ['-static', '-O2', '-o', prog, join(root, 'bench/judge-prog.c')]);
  const lib = async () => {
    const r = await run({ rootfs, argv: ['/bin/true'] });
    if (r.exitCode !== 0) throw new Error(`bench: /bin/true exited ${r.exitCode}: ${r.stderr}`);
  };
  const judge = async () => {
    const r = await run({ rootfs, argv: ['/judge-prog'], stdin: '7\n', ...JUDGE });
    if (r.stdout !== '49\n') throw new Error(`bench: judge run answered ${JSON.stringify(r.stdout)}`);
  };
  const rows: Row[] = [];
  const floor = execFileSync(forkexec, [String(n), trueBin], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map(Number);
  rows.push({ key: 'fork', name: 'fork+exec (C)', times: floor });
  rows.push({
    key: 'spawn',
    name: 'node spawn, no sandbox',
    times: await timeRuns(Math.min(n, 1000), () => spawnWait(trueBin, [])),
  });
  rows.push({ key: 'lib', name: 'capsule library', times: await timeRuns(n, lib) });
  for (const k of [2, 4]) {
    await timeConcurrent(40, k, lib); /* warm-up */
    const c = await timeConcurrent(n, k, lib);
    rows.push({
      key: `lib${k}`,
      name: k === 2 ? 'capsule library, 2 at once' : 'capsule library, 4 in flight',
      ...c,
    });
  }
  /* createRunner: one runner per run in flight, each with its next sandbox made ahead. */
  const runners: Runner[] = [];
  const viaRunner = (opts: Parameters<typeof createRunner>[0], check: (stdout: string) => boolean) => {
    const free: Runner[] = [];
    return async () => {
      const r = free.pop() ?? runners[runners.push(createRunner(opts)) - 1]!;
      try {
        const res = await r.run();
        if (!check(res.stdout) || res.exitCode !== 0)
          throw new Error(`bench: a runner's run failed: ${res.stderr}`);
      } finally {
        free.push(r);
      }
    };
  };
  const ahead = viaRunner({ rootfs, argv: ['/bin/true'] }, () => true);
  await timeRuns(40, ahead);
  rows.push({ key: 'ahead', name: 'capsule createRunner (made ahead)', times: await timeRuns(n, ahead) });
  const ahead4 = viaRunner({ rootfs, argv: ['/bin/true'] }, () => true);
  await timeConcurrent(40, 4, ahead4);
  rows.push({
    key: 'ahead4',
    name: 'capsule createRunner, 4 in flight',
    ...(await timeConcurrent(n, 4, ahead4)),
  });
  const bwrapArgs = ['--unshare-all', '--die-with-parent', '--ro-bind', rootfs, '/'];
  rows.push({
    key: 'bwrap',
    name: 'bwrap spawned from node',
    times: await timeRuns(Math.min(n, 500), () =>
      spawnWait('bwrap', [...bwrapArgs, '--proc', '/proc', '--dev', '/dev', '/bin/true']),
    ),
  });
  const bundle = makeRuncBundle(dir, rootfs);
  let id = 0;
  rows.push({
    key: 'runc',
    name: 'runc run',
    times: await timeRuns(
      Math.min(n, 100),
      () => spawnWait('runc', ['run', '--bundle', bundle, `capsule-bench-${process.pid}-${id++}`]),
      5,
    ),
  });
  rows.push({
    key: 'judge',
    name: 'judge run, every limit on',
    times: await timeRuns(Math.min(n, 1000), judge),
  });
  await timeConcurrent(40, 4, judge);
  rows.push({
    key: 'judge4',
    name: 'judge run, every limit on, 4 in flight',
    ...(await timeConcurrent(Math.min(n, 1000), 4, judge)),
  });
  const judgeAhead = viaRunner(
    { rootfs, argv: ['/judge-prog'], stdin: '7\n', ...JUDGE },
    (o) => o === '49\n',
  );
  await timeRuns(40, judgeAhead);
  rows.push({
    key: 'judgeAhead',
    name: 'judge run, every limit on, createRunner',
    times: await timeRuns(Math.min(n, 1000), judgeAhead),
  });
  const judgeAhead4 = viaRunner(
    { rootfs, argv: ['/judge-prog'], stdin: '7\n', ...JUDGE },
    (o) => o === '49\n',
  );
  await timeConcurrent(40, 4, judgeAhead4);
  rows.push({
    key: 'judgeAhead4',
    name: 'judge run, every limit on, createRunner, 4 in flight',
    ...(await timeConcurrent(Math.min(n, 1000), 4, judgeAhead4)),
  });
  await Promise.all(runners.map((r) => r.close()));
  printIssueTable(rows);
  await benchCli(rootfs, Math.max(20, Math.min(60, Math.round(n / 10))));
}

/** The CLI's goal: `capsule run ROOTFS /bin/true` within 15 ms of `node -e 0`, `rounds` interleaved rounds. */
async function benchCli(rootfs: string, rounds: number): Promise<void> {
  const capsule = join(packageRoot(), 'dist/capsule');
  const cmds: [string, string, string[]][] = [
    ['`node -e 0`', process.execPath, ['-e', '0']],
    ['`capsule run ROOTFS /bin/true` (dist/capsule)', capsule, ['run', rootfs, '/bin/true']],
  ];
  const times = await timeInterleaved(
    rounds,
    cmds.map(
      ([, file, args]) =>
        () =>
          spawnWait(file, args),
    ),
  );
  const stats = times.map((t) => summary(t));
  console.log(`\nThe command line (${rounds} interleaved rounds; ms per process, start to exit)`);
  console.log('| | p50 ms | mean ms |');
  console.log('| --- | --- | --- |');
  cmds.forEach(([name], i) =>
    console.log(`| ${name} | ${stats[i]!.p50.toFixed(1)} | ${stats[i]!.mean.toFixed(1)} |`),
  );
  const [node, cli] = stats as [Summary, Summary];
  const over = cli.p50 - node.p50;
  console.log(
    `  ${over <= 15 ? 'met    ' : 'NOT met'}  CLI within 15 ms of node -e 0: +${over.toFixed(1)} ms at p50 (+${(cli.mean - node.mean).toFixed(1)} ms in the means)`,
  );
}

function printIssueTable(rows: Row[]): void {
  const st = new Map(
    rows.map((r) => {
      const s = summary(r.times);
      return [r.key, { ...s, rps: r.runsPerSecond ?? 1000 / s.mean }];
    }),
  );
  const base = st.get('fork')!.p50;
  console.log(`\n/bin/true, static busybox rootfs (issue 10's table; ms per run, one process, one run)`);
  console.log('| | runs | p50 ms | p99 ms | runs/s | p50 vs fork+exec |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const r of rows) {
    const s = st.get(r.key)!;
    console.log(
      `| ${r.name} | ${s.n} | ${s.p50.toFixed(3)} | ${s.p99.toFixed(3)} | ${s.rps.toFixed(0)} | ${(s.p50 / base).toFixed(2)}x |`,
    );
  }
  const goal = (name: string, value: string, met: boolean) =>
    console.log(`  ${met ? 'met    ' : 'NOT met'}  ${name}: ${value}`);
  for (const [how, keys] of [
    ['run()', ['lib', 'lib4', 'judge', 'judge4']],
    ['createRunner()', ['ahead', 'ahead4', 'judgeAhead', 'judgeAhead4']],
  ] as const) {
    const [lib, four, judge, judge4] = keys.map((k) => st.get(k)!) as unknown as [Stat, Stat, Stat, Stat];
    console.log(`\nThe issue's goals, on these figures, through ${how}:`);
    goal('library p50 <= 1.2 ms', `${lib.p50.toFixed(3)} ms`, lib.p50 <= 1.2);
    goal('library p50 <= 2x fork+exec', `${(lib.p50 / base).toFixed(2)}x`, lib.p50 <= 2 * base);
    goal('library p99 <= 3 ms', `${lib.p99.toFixed(3)} ms`, lib.p99 <= 3);
    goal('library >= 800 runs/s with 4 in flight', `${four.rps.toFixed(0)} runs/s`, four.rps >= 800);
    goal('judge p50 <= 1.5 ms', `${judge.p50.toFixed(3)} ms`, judge.p50 <= 1.5);
    goal('judge p99 <= 4 ms', `${judge.p99.toFixed(3)} ms`, judge.p99 <= 4);
    goal('judge >= 700 runs/s (4 in flight)', `${judge4.rps.toFixed(0)} runs/s`, judge4.rps >= 700);
  }
}

interface Stat {
  p50: number;
  p99: number;
  rps: number;
}
