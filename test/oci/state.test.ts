/**
 * src/oci/state.ts: ids, state.json written atomically, the status computed from the pid
 * and its start time, and the per-id lock (flock through the addon's lease).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { fakeState } from './fake-state.js';
import {
  liveStatus,
  lockContainer,
  lockExisting,
  procStat,
  readState,
  validateId,
  writeState,
} from '../../src/oci/state.js';

/* Made when the file runs, not when it is collected (`vitest list` would leave one behind). */
let root = '';
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'capsule-oci-state-'));
});
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  if (root) rmSync(root, { recursive: true, force: true });
});

function sleeper(): ChildProcess {
  const c = spawn('sleep', ['60'], { stdio: 'ignore' });
  children.push(c);
  return c;
}

const exited = (c: ChildProcess) =>
  new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once('exit', r)));

describe('container ids', () => {
  it.each(['a', 'abc-123', 'A.b_c-d', '0'])('accepts %s', (id) => expect(() => validateId(id)).not.toThrow());
  it.each(['', '.', '..', '../x', 'a/b', '-a', '.hidden', '_a', 'a b', 'a\n'])('refuses %j', (id) =>
    expect(() => validateId(id)).toThrow(/invalid container id/),
  );
});

describe('state.json', () => {
  it('round-trips, written by rename: no temp file is left', async () => {
    const id = 'roundtrip';
    const lock = await lockContainer(root, id, true);
    const s = fakeState(id, process.pid);
    writeState(root, s);
    writeState(root, { ...s, status: 'running' });
    expect(readState(root, id)).toEqual({ ...s, status: 'running' });
    expect(readdirSync(join(root, id)).sort()).toEqual(['0', 'state.json']);
    lock.release();
  });

  it('a second create of one id is refused', async () => {
    await expect(lockContainer(root, 'roundtrip', true)).rejects.toThrow(
      'container with id roundtrip already exists',
    );
  });

  it('an id without a directory does not exist', async () => {
    await expect(lockExisting(root, 'nothere')).rejects.toThrow('container nothere does not exist');
  });

  it('a directory without state.json (a create that died) is removed and does not exist', async () => {
    const lock = await lockContainer(root, 'halfmade', true);
    lock.release();
    await expect(lockExisting(root, 'halfmade')).rejects.toThrow('container halfmade does not exist');
    expect(existsSync(join(root, 'halfmade'))).toBe(false);
  });
});

describe('the status is computed from the pid and its start time', () => {
  it('created while the process lives, stopped once it is gone', async () => {
    const c = sleeper();
    const s = fakeState('x', c.pid!);
    expect(liveStatus(s)).toBe('created');
    expect(liveStatus({ ...s, status: 'running' })).toBe('running');
    c.kill('SIGKILL');
    await exited(c);
    expect(liveStatus(s)).toBe('stopped');
  });

  it('a pid with another start time (reused) is stopped', () => {
    const s = fakeState('x', process.pid, { pidStartTime: '1' });
    expect(liveStatus(s)).toBe('stopped');
  });

  it('a zombie is stopped', async () => {
    /*
     * A parent that never waits: its child stays a zombie. SIGCHLD is set to its default
     * first: an ignored SIGCHLD, inherited, would have the kernel reap the child at once.
     */
    const py =
      'import os, signal, sys, time\nsignal.signal(signal.SIGCHLD, signal.SIG_DFL)\npid = os.fork()\nif pid == 0: os._exit(0)\nprint(pid, flush=True)\ntime.sleep(60)';
    const c = spawn('python3', ['-c', py], { stdio: ['ignore', 'pipe', 'inherit'] });
    const pid = Number(
      await new Promise<string>((r) => c.stdout!.once('data', (d: Buffer) => r(d.toString()))),
    );
    let st = procStat(pid);
    for (let i = 0; i < 200 && st?.state !== 'Z'; i++) {
      await new Promise((r) => setTimeout(r, 10));
      st = procStat(pid);
    }
    expect(st?.state).toBe('Z');
    expect(liveStatus(fakeState('z', pid, { pidStartTime: st!.startTime }))).toBe('stopped');
    c.kill('SIGKILL');
  });
});

describe('the lock', () => {
  it('a second command on the id waits until the first releases it', async () => {
    const id = 'locked';
    const first = await lockContainer(root, id, true);
    writeState(root, fakeState(id, process.pid));
    const order: string[] = [];
    const second = lockExisting(root, id).then((h) => {
      order.push('second');
      return h;
    });
    await new Promise((r) => setTimeout(r, 100));
    order.push('first releases');
    first.release();
    const h = await second;
    expect(order).toEqual(['first releases', 'second']);
    h.lock.release();
  });

  it('a holder that dies (SIGKILL) leaves no stale lock', async () => {
    const id = 'holderdies';
    const mine = await lockContainer(root, id, true);
    writeState(root, fakeState(id, process.pid));
    mine.release();
    const src = join(import.meta.dirname, '../../dist/src/oci/state.js');
    const holder = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const m = await import(${JSON.stringify(src)}); await m.lockContainer(${JSON.stringify(root)}, '${id}', false); console.log('held'); setInterval(() => {}, 1000);`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.push(holder);
    await new Promise((r) => holder.stdout!.once('data', r));
    const waiting = lockExisting(root, id);
    holder.kill('SIGKILL');
    const h = await waiting;
    expect(h.state.id).toBe(id);
    h.lock.release();
  });
});
