/**
 * Issue 11's streams benchmark: request/answer round trips through spawn()'s streams,
 * against the same through a plain child_process.spawn of the same program (no sandbox).
 * The program is busybox's `while read l; do echo "got $l"; done`, one line in, one line
 * out; a round trip is writing a line and receiving its answer. Both servers are started
 * once and kept up; the two are measured in alternating blocks so that load on the
 * machine falls on both alike.
 *
 *   npm run bench -- --only streams            (or: node dist/bench/run.js --only streams)
 */
import { spawn as spawnChild } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';

import { spawn } from '../src/index.js';
import { printTable, type Sample } from './stats.js';

const LOOP = 'while read l; do echo "got $l"; done';

/** One request/answer channel: `ask()` writes a line and resolves with the answer's line. */
function channel(stdin: Writable, stdout: Readable) {
  stdout.setEncoding('utf8');
  let buf = '';
  const waiting: ((l: string) => void)[] = [];
  stdout.on('data', (d: string) => {
    buf += d;
    for (let i; (i = buf.indexOf('\n')) >= 0;) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      waiting.shift()?.(l);
    }
  });
  return (q: string) =>
    new Promise<string>((resolve) => {
      waiting.push(resolve);
      stdin.write(`${q}\n`);
    });
}

/** `n` round trips, one after another: milliseconds each. */
async function roundTrips(ask: (q: string) => Promise<string>, n: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    const a = await ask(String(i));
    times.push(performance.now() - start);
    if (a !== `got ${i}`) throw new Error(`streams bench: wrong answer ${JSON.stringify(a)} to ${i}`);
  }
  return times;
}

export async function benchStreams(o: { rootfs: string; n: number }): Promise<void> {
  const box = spawn({ rootfs: o.rootfs, argv: ['/bin/sh', '-c', LOOP], stderr: 'ignore' });
  const child = spawnChild('/bin/busybox', ['sh', '-c', LOOP], { stdio: ['pipe', 'pipe', 'ignore'] });
  const inBox = channel(box.stdin!, box.stdout!);
  const plain = channel(child.stdin, child.stdout);
  try {
    await roundTrips(inBox, 200);
    await roundTrips(plain, 200);
    /* Blocks of round trips, alternating; a block's rate is its round trips over its wall time. */
    const boxTimes: number[] = [];
    const plainTimes: number[] = [];
    const boxRates: number[] = [];
    const plainRates: number[] = [];
    const block = 200;
    const measure = async (ask: typeof inBox, times: number[], rates: number[]) => {
      const start = performance.now();
      times.push(...(await roundTrips(ask, block)));
      rates.push((block / (performance.now() - start)) * 1000);
    };
    for (let done = 0; done < o.n; done += block) {
      await measure(inBox, boxTimes, boxRates);
      await measure(plain, plainTimes, plainRates);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    const samples: Sample[] = [
      { name: 'plain child_process.spawn', times: plainTimes, runsPerSecond: median(plainRates) },
      { name: 'capsule spawn()', times: boxTimes, runsPerSecond: median(boxRates) },
    ];
    printTable(
      `request/answer round trips over stdin/stdout, one server kept up; runs/s: the median of ${boxRates.length} blocks of ${block}`,
      samples,
      'plain child_process.spawn',
    );
    const ratio = median(boxRates) / median(plainRates);
    console.log(
      `capsule spawn(): ${median(boxRates).toFixed(0)} round trips/s, plain child process: ` +
        `${median(plainRates).toFixed(0)}/s (${(ratio * 100).toFixed(0)}%)`,
    );
  } finally {
    box.stdin!.end();
    child.stdin.end();
  }
  const r = await box.result;
  if (r.verdict !== 'OK') throw new Error(`streams bench: the sandboxed server ended ${r.verdict}`);
}
