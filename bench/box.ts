/**
 * What the writable places cost per run (issue 11 §4): /bin/true in a rootfs that has
 * /proc, /dev and /tmp, with every mount point present, with a bind's target missing (the
 * root becomes an overlay with a small tmpfs upper layer, where the mount point is made),
 * with a missing box, and with overlay: true; interleaved run by run, so that drift hits
 * them alike; warm-up first, then medians and p99. Also the steps' own times from
 * --explain's trace. `cgroups: false`, so the figures are the mounts' alone.
 *

 *   npm run bench -- --only box
 */
import { run, type RunOptions } from '../src/index.js';

const q = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;

export async function benchBox(rootfs: string, runs: number): Promise<void> {
  console.log(
    `\nWritable places: /bin/true with mount points present, missing, a box, an overlay (${runs} runs each, interleaved)`,
  );
  const source = `${rootfs}/proc`;
  const cases: Record<string, Partial<RunOptions>> = {
    'all present': {},
    'bind target missing': { binds: [{ source, target: '/capsule-bench-missing' }] },
    'box missing': { box: '/capsule-bench-box' },
    'overlay: true': { overlay: true },
  };
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  const once = async (extra: Partial<RunOptions>) => {
    const r = await run({ rootfs, argv: ['/bin/true'], cgroups: false, ...extra });
    if (r.exitCode !== 0) throw new Error(`run failed: ${r.stderr}`);
  };
  for (let i = 0; i < 30; i++) for (const extra of Object.values(cases)) await once(extra);
  for (let i = 0; i < runs; i++) {
    const order = Object.entries(cases);
    if (i % 2) order.reverse();
    for (const [name, extra] of order) {
      const t = performance.now();
      await once(extra);
      times[name]!.push(performance.now() - t);
    }
  }
  const steps: Record<string, number[]> = {};
  for (let i = 0; i < 200; i++) {
    const r = await run({ rootfs, argv: ['/bin/true'], explain: true, ...cases['box missing'] });
    for (const s of r.explain!)
      if (['mount_overlay', 'make_mount_point', 'mount_box'].includes(s.step))
        (steps[s.step] ??= []).push(s.durationMs!);
  }
  for (const [k, xs] of Object.entries(times))
    console.log(
      `${k.padEnd(20)} run() p50 ${q(xs, 0.5).toFixed(3)} ms  p99 ${q(xs, 0.99).toFixed(3)} ms  (n=${xs.length})`,
    );
  for (const [k, xs] of Object.entries(steps))
    console.log(
      `${k.padEnd(20)} step  p50 ${q(xs, 0.5).toFixed(3)} ms  p99 ${q(xs, 0.99).toFixed(3)} ms  (n=${xs.length})`,
    );
}
