/** Percentiles and the side-by-side table every benchmark prints. */

export interface Sample {
  name: string;
  /** Milliseconds per run, unsorted. */
  times: number[];
  /** Runs per second when measured with concurrency (otherwise derived from the mean). */
  runsPerSecond?: number;
  note?: string;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export function summary(times: number[]) {
  const sorted = [...times].sort((a, b) => a - b);
  const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
  return { n: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), mean };
}

/** Print samples as a table, with each p50 as a ratio to `baseline`'s. */
export function printTable(title: string, samples: Sample[], baseline?: string): void {
  const base = baseline ? samples.find((s) => s.name === baseline) : undefined;
  const baseP50 = base ? summary(base.times).p50 : NaN;
  const rows = samples.map((s) => {
    const st = summary(s.times);
    const rps = s.runsPerSecond ?? 1000 / st.mean;
    return [
      s.name,
      String(st.n),
      st.p50.toFixed(3),
      st.p99.toFixed(3),
      rps.toFixed(0),
      Number.isNaN(baseP50) ? '' : `${(st.p50 / baseP50).toFixed(2)}x`,
      s.note ?? '',
    ];
  });
  const head = ['', 'runs', 'p50 ms', 'p99 ms', 'runs/s', base ? `vs ${base.name}` : '', ''];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === 0 || i === r.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ');
  console.log(`\n${title}`);
  console.log(line(head));
  for (const r of rows) console.log(line(r));
}

/** Time `fn` `n` times after `warm` unmeasured runs; milliseconds per run. */
export async function timeRuns(
  n: number,
  fn: () => Promise<unknown> | unknown,
  warm = 20,
): Promise<number[]> {
  for (let i = 0; i < warm; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    await fn();
    times.push(performance.now() - start);
  }
  return times;
}

/**
 * Time several commands in rounds, each once per round and in a rotating order, so that a
 * machine whose load drifts (a shared VM) weighs on all of them alike rather than on
 * whichever ran during a busy minute. `warm` rounds first, untimed. One list of times each.
 */
export async function timeInterleaved(
  rounds: number,
  fns: (() => Promise<unknown> | unknown)[],
  warm = 3,
): Promise<number[][]> {
  const times = fns.map((): number[] => []);
  for (let r = 0; r < warm + rounds; r++) {
    for (let k = 0; k < fns.length; k++) {
      const i = (r + k) % fns.length;
      const start = performance.now();
      await fns[i]!();
      if (r >= warm) times[i]!.push(performance.now() - start);
    }
  }
  return times;
}

/** Run `fn` `n` times with `concurrency` in flight; returns per-run latencies and the overall rate. */
export async function timeConcurrent(n: number, concurrency: number, fn: () => Promise<unknown>) {
  const times: number[] = [];
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < n) {
        const s = performance.now();
        await fn();
        times.push(performance.now() - s);
      }
    }),
  );
  return { times, runsPerSecond: (n / (performance.now() - start)) * 1000 };
}
