/**
 * run()'s lifecycle: a run's kill handle and timers reach only that run's sandbox,
 * run() never settles while its sandbox lives, and an abort at any moment ends the run.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { describe, expect, inject, it } from 'vitest';

import { run, type RunResult, type Sandbox } from '../src/index.js';

const rootfs = inject('rootfs');

function alive(pid: number): boolean {
  return existsSync(`/proc/${pid}`);
}

/**
 * Start a run whose sandbox gets host PID `pid` again, once that PID is free: the kernel
 * hands out the PID after ns_last_pid next (proc(5)), so point it just below. Another
 * process on the machine can take the PID first; try again then.
 */
async function runWithPid(pid: number, argv: string[]) {
  for (let attempt = 0; attempt < 50; attempt++) {
    let spawned!: Sandbox;
    writeFileSync('/proc/sys/kernel/ns_last_pid', String(pid - 1));
    /* hostIds 'shared': make_userns would fork a helper task first, which would take the PID. */
    const p = run({ rootfs, argv, cgroups: false, hostIds: 'shared', onSpawn: (s) => (spawned = s) });
    await new Promise((r) => setTimeout(r, 0));
    const result = p;
    await new Promise<void>((resolve) => {
      const wait = () => (spawned ? resolve() : setTimeout(wait, 1));
      wait();
    });
    if (spawned.pid === pid) return { spawned, result };
    spawned.kill('SIGKILL');
    await result;
  }
  throw new Error(`could not get PID ${pid} again in 50 tries (a busy machine?)`);
}

describe('a kill reaches only its own run', () => {
  it("A's kill handle, after A ended, does not reach B that got A's PID", async () => {
    let a!: Sandbox;
    const ra = await run({ rootfs, argv: ['/bin/true'], cgroups: false, onSpawn: (s) => (a = s) });
    expect(ra.exitCode).toBe(0);
    const { spawned: b, result } = await runWithPid(ra.pid, ['/bin/sleep', '0.5']);
    expect(b.pid).toBe(a.pid);
    expect(a.kill('SIGKILL')).toBe(false);
    const rb = await result;
    expect(rb.signal).toBeNull();
    expect(rb.exitCode).toBe(0);
  });

  it("the SIGKILL armed by A's termination does not reach B that got A's PID", async () => {
    const ac = new AbortController();
    const pa = run({
      rootfs,
      argv: ['/bin/sleep', '10'],
      cgroups: false,
      signal: ac.signal,
      onSpawn: () => setTimeout(() => ac.abort(), 50),
    });
    const ra = await pa;
    expect(ra.aborted).toBe(true);
    /* A ended within its grace period, so the SIGKILL is still armed unless cancelled. */
    const { result } = await runWithPid(ra.pid, ['/bin/sleep', '1.5']);
    const rb = await result;
    expect(rb.signal).toBeNull();
    expect(rb.exitCode).toBe(0);
  });
});

describe('run() never settles while its sandbox lives', () => {
  it('an onSpawn that throws ends the sandbox before run() rejects', async () => {
    let pid = 0;
    const started = performance.now();
    await expect(
      run({
        rootfs,
        argv: ['/bin/sleep', '30'],
        cgroups: false,
        onSpawn: (s) => {
          pid = s.pid;
          throw new Error('onSpawn failed');
        },
      }),
    ).rejects.toThrow('onSpawn failed');
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(pid).toBeGreaterThan(0);
    expect(alive(pid)).toBe(false);
  });

  it('an onOutput that throws ends the sandbox before run() rejects', async () => {
    let pid = 0;
    await expect(
      run({
        rootfs,
        argv: ['/bin/sh', '-c', 'echo hi; exec sleep 30'],
        cgroups: false,
        onSpawn: (s) => (pid = s.pid),
        onOutput: () => {
          throw new Error('onOutput failed');
        },
      }),
    ).rejects.toThrow('onOutput failed');
    expect(pid).toBeGreaterThan(0);
    expect(alive(pid)).toBe(false);
  });
});

/**
 * The documented behaviour: an abort before the clone rejects with the signal's reason
 * (nothing started); one after it kills the sandbox and resolves with aborted: true.
 * Either way the 5 s program does not run to its end.
 */
async function abortedRun(abort: (ac: AbortController) => void) {
  const ac = new AbortController();
  let pid = 0;
  const p = run({ rootfs, argv: ['/bin/sleep', '5'], signal: ac.signal, onSpawn: (s) => (pid = s.pid) });
  abort(ac);
  const r: RunResult | Error = await p.catch((e: Error) => e);
  if (r instanceof Error) {
    expect(r.name).toBe('AbortError');
    expect(pid).toBe(0);
  } else {
    expect(r.aborted).toBe(true);
    expect(r.mechanism).toBe('aborted');
    expect(r.exitCode).toBeNull();
    expect(alive(pid)).toBe(false);
  }
}

describe('an abort at any moment ends the run', () => {
  it('an abort right after the call rejects: nothing was started', async () => {
    const ac = new AbortController();
    const p = run({ rootfs, argv: ['/bin/sleep', '5'], signal: ac.signal });
    ac.abort();
    await expect(p).rejects.toThrow(expect.objectContaining({ name: 'AbortError' }));
  });

  for (const ms of [0, 1, 5, 10, 30]) {
    it(`an abort after ${ms} ms`, async () => {
      await abortedRun((ac) => setTimeout(() => ac.abort(), ms));
    });
  }

  it('an abort once the sandbox runs resolves with aborted: true', async () => {
    const ac = new AbortController();
    const r = await run({
      rootfs,
      argv: ['/bin/sleep', '5'],
      signal: ac.signal,
      onSpawn: () => ac.abort(),
    });
    expect(r.aborted).toBe(true);
    expect(r.verdict).toBe('SIGNALED');
  });

  it('an already aborted signal rejects with its reason and starts nothing', async () => {
    const ac = new AbortController();
    ac.abort(new Error('stop'));
    await expect(run({ rootfs, argv: ['/bin/sleep', '5'], signal: ac.signal })).rejects.toThrow('stop');
  });
});
