/**
 * The sandbox's tie to capsule: PR_SET_PDEATHSIG follows the thread that
 * cloned it, and check_parent closes the race before that prctl by polling a
 * pidfd of that same thread (PIDFD_THREAD, Linux 6.9) or, on older kernels,
 * of the process. Whatever the kernel, a capsule killed outright takes its
 * sandbox with it.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';

import { run } from '../../src/index.js';

const cli = join(import.meta.dirname, '../../dist/capsule.mjs');

/** PIDs of the sandbox's sleepers: `/probe sleep MS marker` (not capsule-init or the CLI, whose argv hold it too). */
function withMarker(marker: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (argv[0] === '/probe' && argv[3] === marker) found.push(Number(name));
    } catch {
      /* gone */
    }
  }
  return found;
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 20)))
    if (cond()) return true;
  return cond();
}

describe('check_parent and the parent-death signal', () => {
  const [major, minor] = release().split('.').map(Number) as [number, number];
  const hasThreadPidfd = major > 6 || (major === 6 && minor >= 9);

  it(`polls ${hasThreadPidfd ? "the cloning thread's pidfd (PIDFD_THREAD, this kernel has it)" : "the process's pidfd (this kernel is before 6.9, without PIDFD_THREAD)"}`, async () => {
    const r = await run({ rootfs: inject('rootfs'), argv: ['/bin/true'], explain: true });
    const calls = r.explain!.filter((s) => s.step === 'check_parent').map((s) => s.call);
    expect(calls.length).toBe(2); /* before reset_signals, and again after set_uid */
    for (const call of calls)
      expect(call).toBe(
        hasThreadPidfd
          ? "poll(the cloning thread's pidfd (PIDFD_THREAD), POLLIN, 0)"
          : "poll(capsule's pidfd, POLLIN, 0)",
      );
  });

  it('a capsule killed with SIGKILL takes its whole sandbox with it', async () => {
    const marker = `capsule-parent-test-${process.pid}`;
    const capsule = spawn(
      process.execPath,
      [
        cli,
        'run',
        inject('rootfs'),
        '/bin/sh',
        '-c',
        `/probe sleep 60000 ${marker} & exec /probe sleep 60000 ${marker}`,
      ],
      { stdio: 'ignore' },
    );
    try {
      /* Both sleepers are up: the sandbox is running (a slow machine takes seconds to start the CLI). */
      expect(await until(() => withMarker(marker).length === 2, 60_000), 'the sandbox never started').toBe(
        true,
      );
      capsule.kill('SIGKILL');
      expect(
        await until(() => withMarker(marker).length === 0, 10_000),
        `left: ${withMarker(marker).join(' ')}`,
      ).toBe(true);
    } finally {
      capsule.kill('SIGKILL');
    }
  }, 90_000);
});
