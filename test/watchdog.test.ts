/**
 * The watchdog's timers: a TIME_LIMIT verdict means the limit was reached, whatever
 * Node's timers do (they can fire up to a millisecond early), and limits longer than a
 * Node timer can hold (2^31-1 ms, about 24.8 days) still work.
 */
import { describe, expect, inject, it } from 'vitest';

import { run } from '../src/index.js';

const rootfs = inject('rootfs');

/** The names of the process warnings Node emits while `fn` runs. */
async function warningsDuring(fn: () => Promise<void>): Promise<string[]> {
  const names: string[] = [];
  const onWarning = (w: Error) => names.push(w.name);
  process.on('warning', onWarning);
  try {
    await fn();
  } finally {
    process.off('warning', onWarning);
  }
  return names;
}

describe('the wall-time limit', () => {
  it('is never reported passed before it was reached (200 runs of 50 ms)', async () => {
    const early: number[] = [];
    let limited = 0;
    const one = async () => {
      const r = await run({ rootfs, argv: ['/bin/sleep', '1'], wallTimeLimitMs: 50, cgroups: false });
      if (r.verdict !== 'TIME_LIMIT') return;
      limited++;
      if (r.wallTimeMs < 50) early.push(r.wallTimeMs);
    };
    /* Four at a time, as a judge runs them; each is its own run and its own timer. */
    for (let i = 0; i < 50; i++) await Promise.all([one(), one(), one(), one()]);
    expect(limited).toBe(200);
    expect(early).toEqual([]);
  }, 120_000);

  it('of 600 hours (past the 2^31-1 ms a Node timer holds) does not end a short run', async () => {
    const warnings = await warningsDuring(async () => {
      const r = await run({
        rootfs,
        argv: ['/bin/sleep', '0.2'],
        wallTimeLimitMs: 600 * 3600 * 1000,
      });
      expect(r.verdict).toBe('OK');
      expect(r.timeLimit).toBeNull();
    });
    expect(warnings).not.toContain('TimeoutOverflowWarning');
  });
});

describe('the CPU-time limit', () => {
  it('of 1300 hours does not overflow a Node timer', async () => {
    const warnings = await warningsDuring(async () => {
      const r = await run({
        rootfs,
        argv: ['/bin/sh', '-c', 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done'],
        cpuTimeLimitMs: 1300 * 3600 * 1000,
      });
      expect(r.verdict).toBe('OK');
    });
    expect(warnings).not.toContain('TimeoutOverflowWarning');
  });
});
