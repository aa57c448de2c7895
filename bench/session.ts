/**
 * Sessions (issue 11 §3): `box.exec(['/bin/true'])` in a warm box against a fresh run() of
 * the same program and against a plain child_process spawn of it, side by side, medians
 * and p99, with each p50 as a ratio to the exec's. Same busybox rootfs for all three.
 */
import { join } from 'node:path';

import { create, run } from '../src/index.js';
import { spawnWait } from './peers.js';
import { printTable, type Sample, timeRuns } from './stats.js';

export async function benchSession(rootfs: string, n: number): Promise<void> {
  const samples: Sample[] = [];
  const box = await create({ rootfs });
  try {
    samples.push({
      name: 'box.exec (warm session)',
      times: await timeRuns(n, () => box.exec(['/bin/true'])),
    });
  } finally {
    await box.destroy();
  }
  samples.push({
    name: 'run() (fresh sandbox)',
    times: await timeRuns(n, () => run({ rootfs, argv: ['/bin/true'] })),
  });
  samples.push({
    name: 'node spawn (no sandbox)',
    times: await timeRuns(n, () => spawnWait(join(rootfs, 'bin/true'), [])),
  });
  printTable('session: /bin/true, one command', samples, 'box.exec (warm session)');
}
