/**
 * The rename-exchange race of the mount tests (CVE-2021-30465 class): a busybox rootfs,
 * the racer (racers/rename_exchange.c) that swaps two names in it in a loop, and launches
 * driven through the addon directly, so that each reaches the child's own lookups.
 */
import { execFile, spawn } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'vitest';

import { rlimitPlan } from '../../src/limits.js';
import { native, type NativeExit, type NativeStepError } from '../../src/native.js';
import type { ResolvedOptions } from '../../src/options.js';
import { nativeOptions } from '../../src/run.js';
import { BUSYBOX, makeBusyboxRootfs } from '../helpers/rootfs.js';

/** A temp dir with a busybox rootfs and the racer built in it (the caller removes `dir`). */
export async function raceFixture(prefix: string): Promise<{ dir: string; rootfs: string; racer: string }> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const rootfs = join(dir, 'rootfs');
  mkdirSync(rootfs);
  makeBusyboxRootfs(rootfs, BUSYBOX);
  const racer = join(dir, 'rename_exchange');
  await promisify(execFile)('cc', [
    '-D_GNU_SOURCE',
    '-O2',
    '-Wall',
    '-Wextra',
    '-Werror',
    '-o',
    racer,
    join(import.meta.dirname, 'racers/rename_exchange.c'),
  ]);
  return { dir, rootfs, racer };
}

/** Run `body` while the racer swaps `race`/a and `race`/b; it must still be racing at the end. */
export async function withRacer<T>(racer: string, race: string, body: () => Promise<T>): Promise<T> {
  const child = spawn(racer, [race, 'a', 'b'], { stdio: 'ignore' });
  try {
    return await body();
  } finally {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    /* The racer raced all along: it ends by our signal, not by a failed rename. */
    expect(child.signalCode).toBe('SIGKILL');
  }
}

/**
 * Launch `opts` `times` times through the addon, stdio on /dev/null, and count how each
 * ended: `ran, status N` or `refused at STEP, errno N`.
 */
export async function launchOutcomes(opts: ResolvedOptions, times: number): Promise<Map<string, number>> {
  const devnull = openSync('/dev/null', 'r+');
  const outcomes = new Map<string, number>();
  try {
    for (let i = 0; i < times; i++) {
      const n = nativeOptions(opts, [devnull, devnull, devnull], [], rlimitPlan(opts.limits));
      let key: string;
      try {
        const exit = await new Promise<NativeExit>((resolve, reject) => {
          native().spawn(n, resolve).catch(reject);
        });
        key = `ran, status ${exit.report?.waitStatus}`;
      } catch (e) {
        const rec = e as NativeStepError;
        if (typeof rec.step !== 'string') throw e;
        key = `refused at ${rec.step}, errno ${rec.errno}`;
      }
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    }
  } finally {
    closeSync(devnull);
  }
  return outcomes;
}
