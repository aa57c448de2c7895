/**
 * Runs launches from a Node process holding a large heap, to show whether launch cost
 * grows with it. Usage: node heap-worker.js capsule|spawn N HEAP_MIB ROOTFS
 * Prints a JSON array of milliseconds per run.
 */
import { join } from 'node:path';

import { run } from '../src/index.js';
import { spawnWait } from './peers.js';
import { timeRuns } from './stats.js';

const [mode, n, heapMiB, rootfs] = process.argv.slice(2);
const keep: number[][] = [];
/* ~1 MiB of live heap per array of 128 Ki small integers. */
for (let i = 0; i < Number(heapMiB); i++) keep.push(new Array<number>(128 * 1024).fill(i));
const rss = process.memoryUsage().rss;
const times =
  mode === 'capsule'
    ? await timeRuns(Number(n), () => run({ rootfs: rootfs!, argv: ['/bin/true'] }))
    : await timeRuns(Number(n), () => spawnWait(join(rootfs!, 'bin/true'), []));
process.stdout.write(JSON.stringify({ times, rssBytes: rss, kept: keep.length }));
