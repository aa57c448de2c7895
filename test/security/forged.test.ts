/**
 * Results the program could forge or hide (issue 9, section 2): what
 * capsule-init reports must rest only on what the kernel says, never on a
 * signal, message or figure the program can reach.
 */
import { describe, expect, inject, it } from 'vitest';

import { run } from '../../src/index.js';

const rootfs = inject('rootfs');
const MiB = 1024 * 1024;

describe('control signals come only from outside the sandbox', () => {
  it('a program that sends the terminate signal (36) to PID 1, then exits 0, gets OK exit 0', async () => {
    const r = await run({ rootfs, argv: ['/probe', 'forge', '36'] });
    /* Each way reaches PID 1 (same uid); none may turn the exit into a kill. */
    expect(r.stdout).toBe('kill: ok\ntgkill: ok\nsigqueue: ok\n');
    expect(r).toMatchObject({ verdict: 'OK', mechanism: 'exit', exitCode: 0, signal: null });
  });

  it('from a shell: kill -36 1', async () => {
    const r = await run({ rootfs, argv: ['/bin/sh', '-c', 'kill -36 1 && /probe sleep 200 && echo alive'] });
    expect(r).toMatchObject({ verdict: 'OK', exitCode: 0, signal: null, stdout: 'alive\n' });
  });

  it('forwarded signals sent from inside do not reach the program through PID 1', async () => {
    /* SIGTERM to PID 1 from inside: were it forwarded, the program would die of it. */
    const r = await run({ rootfs, argv: ['/probe', 'forge', '15'] });
    expect(r).toMatchObject({ verdict: 'OK', exitCode: 0, signal: null });
  });
});

describe('CPU and memory a program hides from rusage', () => {
  /* A child reaped by the kernel (SIGCHLD ignored) never reaches getrusage(RUSAGE_CHILDREN). */
  const hide = ['/probe', 'hide', '300', '600'];

  it('with a cgroup: cpuTimeMs and peakMemoryBytes count the hidden child', async () => {
    const r = await run({ rootfs, argv: hide, cgroups: true });
    expect(r.verdict).toBe('OK');
    if (r.accounting !== 'cgroup')
      return; /* no cgroup CPU accounting on this machine: the next test covers it */
    expect(r.cpuTimeMs).toBeGreaterThan(500);
    expect(r.peakMemoryBytes).toBeGreaterThan(300 * MiB);
  });

  it('without a cgroup: the result says the figures are lower bounds', async () => {
    const r = await run({ rootfs, argv: hide, cgroups: false });
    expect(r.verdict).toBe('OK');
    expect(r.accounting).toBe('rusage-lower-bound');
    expect(r.peakMemoryBytes).toBeNull();
  });

  it('a CPU limit is judged on the cgroup, which sees the hidden child', async () => {
    const r = await run({ rootfs, argv: ['/probe', 'hide', '1', '3000'], cpuTimeLimitMs: 300 });
    expect(r).toMatchObject({ verdict: 'TIME_LIMIT', timeLimit: 'cpu', accounting: 'cgroup' });
  });
});

describe('a forbidden call withdrawn by a signal is still a violation', () => {
  it('6 threads signalling the caller: SECURITY_VIOLATION in 20 of 20 runs', async () => {
    const verdicts: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await run({ rootfs, argv: ['/probe', 'withdraw', '6'], seccomp: 'default-kill' });
      verdicts.push(`${r.verdict} ${r.violation?.syscall ?? ''} ${r.stdout.trim()}`.trim());
    }
    expect(verdicts.filter((v) => !v.startsWith('SECURITY_VIOLATION'))).toEqual([]);
  }, 60_000);
});

describe('the watcher thread is not required', () => {
  /* pidsLimit 2: capsule-init and the program fill it, so the watcher's clone fails with EAGAIN. */
  it('pidsLimit 2 still runs', async () => {
    const r = await run({ rootfs, argv: ['/probe', 'exit', '0'], pidsLimit: 2 });
    expect(r).toMatchObject({ verdict: 'OK', exitCode: 0 });
  });

  it('pidsLimit 2 still reports a forbidden call', async () => {
    const r = await run({ rootfs, argv: ['/probe', 'forbidden'], pidsLimit: 2, seccomp: 'default-kill' });
    expect(r).toMatchObject({ verdict: 'SECURITY_VIOLATION', violation: { syscall: 'mount' } });
  });
});
