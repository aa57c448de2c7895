/**
 * What hostIds: 'unique' costs per run: /bin/true in a busybox rootfs, with a leased host
 * id and its user namespace against hostIds: 'shared', interleaved run by run so that drift
 * hits both alike; warm-up first, then medians and p99. `cgroups: false`, so the figure is
 * the user namespace's alone. Also make_userns's own time, from --explain's trace.
 *
 *   npm run build:ts && node dist/bench/host-ids.js ROOTFS [RUNS]
 */
import { run } from '../src/index.js';

const rootfs = process.argv[2];
const runs = Number(process.argv[3] ?? 500);
if (!rootfs) throw new Error('usage: host-ids.js ROOTFS [RUNS]');

const q = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;
const times: Record<'unique' | 'shared', number[]> = { unique: [], shared: [] };
for (let i = 0; i < 50; i++)
  for (const hostIds of ['unique', 'shared'] as const)
    await run({ rootfs, argv: ['/bin/true'], cgroups: false, hostIds });
for (let i = 0; i < runs; i++) {
  for (const hostIds of i % 2 ? (['unique', 'shared'] as const) : (['shared', 'unique'] as const)) {
    const t = performance.now();
    const r = await run({ rootfs, argv: ['/bin/true'], cgroups: false, hostIds });
    times[hostIds].push(performance.now() - t);
    if (r.exitCode !== 0) throw new Error(`run failed: ${r.stderr}`);
  }
}
const make: number[] = [];
for (let i = 0; i < 200; i++) {
  const r = await run({ rootfs, argv: ['/bin/true'], cgroups: false, explain: true });
  make.push(r.explain!.find((s) => s.step === 'make_userns')!.durationMs!);
}
for (const [k, xs] of Object.entries(times))
  console.log(
    `${k.padEnd(7)} run() p50 ${q(xs, 0.5).toFixed(3)} ms  p99 ${q(xs, 0.99).toFixed(3)} ms  (n=${xs.length})`,
  );
console.log(
  `make_userns p50 ${q(make, 0.5).toFixed(3)} ms  p99 ${q(make, 0.99).toFixed(3)} ms  (n=${make.length})`,
);
