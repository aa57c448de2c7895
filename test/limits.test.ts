/**
 * Limits, accounting and verdicts, with the tolerances a judge would accept
 * (issue 2). Timings are checked only as bounds the issue sets, never as speed.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { constants as bufferConstants } from 'node:buffer';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';

import { detectCgroups } from '../src/cgroup/detect.js';
import { detectV2Features } from '../src/cgroup/v2.js';
import { ConfigError, run } from '../src/index.js';
import { DEFAULT_OUTPUT_LIMIT_BYTES } from '../src/options.js';

const rootfs = inject('rootfs');
const MiB = 1024 * 1024;

describe('CPU time', () => {
  it('reports the CPU time a program burns, within 10%', async () => {
    /*
     * The cgroup counts every cycle of the sandbox, starting capsule-init and the probe
     * included: a few ms here, over 50 ms on run-in-v2's emulated CPU, where CI once saw
     * 553 ms. So the burn's 10% is measured above what the same start costs there.
     */
    let start = 0;
    for (let i = 0; i < 3; i++)
      start = Math.max(start, (await run({ rootfs, argv: ['/probe', 'burn', '0'] })).cpuTimeMs);
    const r = await run({ rootfs, argv: ['/probe', 'burn', '500'] });
    expect(r.verdict).toBe('OK');
    expect(r.cpuTimeMs).toBeGreaterThan(450);
    expect(r.cpuTimeMs).toBeLessThan(550 + start);
  });

  it('counts every thread of a multithreaded burner', async () => {
    const r = await run({ rootfs, argv: ['/probe', 'threads', '2', '200'] });
    expect(r.cpuTimeMs).toBeGreaterThan(360);
    expect(r.cpuTimeMs).toBeLessThan(480);
  });

  it('stops a program at its CPU time limit: TIME_LIMIT (cpu) within limit + 100 ms', async () => {
    const r = await run({ rootfs, argv: ['/probe', 'burn', '5000'], cpuTimeLimitMs: 200 });
    expect(r.verdict).toBe('TIME_LIMIT');
    expect(r.timeLimit).toBe('cpu');
    expect(r.mechanism).toBe('cpu_timer');
    expect(r.cpuTimeMs).toBeGreaterThanOrEqual(200);
    expect(r.cpuTimeMs).toBeLessThan(300);
  });

  it('keeps per-sandbox accounting with 2 x cores sandboxes at once', async () => {
    const results = await Promise.all(
      Array.from({ length: 4 }, () => run({ rootfs, argv: ['/probe', 'burn', '150'] })),
    );
    for (const r of results) {
      expect(r.cpuTimeMs).toBeGreaterThan(135);
      expect(r.cpuTimeMs).toBeLessThan(200);
    }
  });
});

describe('wall time', () => {
  it('stops a sleeping program at its wall limit: TIME_LIMIT (wall) within limit + 100 ms', async () => {
    const r = await run({ rootfs, argv: ['/probe', 'sleep', '10000'], wallTimeLimitMs: 300 });
    expect(r.verdict).toBe('TIME_LIMIT');
    expect(r.timeLimit).toBe('wall');
    expect(r.mechanism).toBe('wall_timer');
    expect(r.wallTimeMs).toBeGreaterThanOrEqual(300);
    expect(r.wallTimeMs).toBeLessThan(400);
  });
});

describe('memory', () => {
  it('reports the peak memory of a program that touches 100 MiB, within 10%', async () => {
    const r = await run({ rootfs, argv: ['/probe', 'mem', '100'] });
    expect(r.verdict).toBe('OK');
    expect(r.peakMemoryBytes).toBeGreaterThan(100 * MiB);
    expect(r.peakMemoryBytes).toBeLessThan(110 * MiB);
  });

  it('ends a program over its memory limit as MEMORY_LIMIT, from the cgroup OOM event', async () => {
    const r = await run({ rootfs, argv: ['/probe', 'mem', '100'], memoryLimitBytes: 64 * MiB });
    expect(r.verdict).toBe('MEMORY_LIMIT');
    expect(r.mechanism).toBe('cgroup_oom');
    expect(r.oomKilled).toBe(true);
    expect(r.signal).toBe('SIGKILL');
    expect(r.peakMemoryBytes).toBeLessThanOrEqual(64 * MiB);
  });

  it('does not call a SIGKILL an OOM kill when the cgroup saw none', async () => {
    const r = await run({ rootfs, argv: ['/probe', 'signal', '9'], memoryLimitBytes: 64 * MiB });
    expect(r.oomKilled).toBe(false);
    expect(r.verdict).toBe('SIGNALED');
  });
});

describe('processes', () => {
  it('contains a fork bomb under a pids limit, and the host keeps working', async () => {
    const r = await run({ rootfs, argv: ['/probe', 'forkbomb'], pidsLimit: 32, wallTimeLimitMs: 1000 });
    expect(r.verdict).toBe('TIME_LIMIT');
    expect(r.pidsLimitHit).toBe(true);
    /* The host can still start processes, and the next sandbox starts clean. */
    const after = await run({ rootfs, argv: ['/bin/true'], pidsLimit: 32 });
    expect(after.verdict).toBe('OK');
    expect(after.pidsLimitHit).toBe(false);
  });
});

describe('output', () => {
  it('ends a program that writes without end at the output cap: OUTPUT_LIMIT, output kept up to the cap', async () => {
    const rssBefore = process.memoryUsage().rss;
    const start = performance.now();
    const r = await run({ rootfs, argv: ['/probe', 'spew'], outputLimitBytes: MiB, encoding: 'buffer' });
    expect(r.verdict).toBe('OUTPUT_LIMIT');
    expect(r.mechanism).toBe('output_cap');
    expect(r.stdout.length).toBe(MiB);
    expect(r.stdoutTruncated).toBe(true);
    expect(r.stderrTruncated).toBe(false);
    expect(performance.now() - start).toBeLessThan(2000);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(64 * MiB);
  });

  it('caps captured output by default: 100 MiB per stream, then OUTPUT_LIMIT', async () => {
    const small = await run({ rootfs, argv: ['/bin/true'] });
    /* Checked first: without a default cap the run below would fill Node's memory. */
    expect(small.limits.outputLimitBytes).toBe(DEFAULT_OUTPUT_LIMIT_BYTES);
    expect(DEFAULT_OUTPUT_LIMIT_BYTES).toBe(100 * MiB);
    const r = await run({ rootfs, argv: ['/probe', 'spew'], encoding: 'buffer' });
    expect(r.verdict).toBe('OUTPUT_LIMIT');
    expect(r.stdout.length).toBe(DEFAULT_OUTPUT_LIMIT_BYTES);
    expect(r.stdoutTruncated).toBe(true);
  });

  it('refuses a cap whose output could not become a string (V8 max string length), before running', async () => {
    const over = bufferConstants.MAX_STRING_LENGTH + 1;
    const e: unknown = await run({ rootfs, argv: ['/bin/true'], outputLimitBytes: over }).catch(
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).option).toBe('outputLimitBytes');
    expect((e as ConfigError).message).toMatch(/at most \d+ with encoding 'utf8'.*encoding 'buffer'/);
    /* As a Buffer it is fine. */
    const r = await run({ rootfs, argv: ['/bin/echo', 'x'], outputLimitBytes: over, encoding: 'buffer' });
    expect(r.stdout.toString()).toBe('x\n');
  });

  it('keeps output under the cap whole', async () => {
    const r = await run({ rootfs, argv: ['/bin/echo', 'hello'], outputLimitBytes: 6 });
    expect(r.verdict).toBe('OK');
    expect(r.stdout).toBe('hello\n');
    expect(r.stdoutTruncated).toBe(false);
  });

  it('streams 100 MB of stdin through while stdout is as large, without deadlock', async () => {
    const input = Buffer.alloc(100 * 1000 * 1000, 'a');
    const r = await run({ rootfs, argv: ['/probe', 'cat'], stdin: input, encoding: 'buffer' });
    expect(r.verdict).toBe('OK');
    expect(r.stdout.length).toBe(input.length);
  });

  it('reads stdin straight from a host file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'capsule-stdin-'));
    try {
      writeFileSync(join(dir, 'input'), 'from a file\n');
      const r = await run({ rootfs, argv: ['/probe', 'cat'], stdin: { file: join(dir, 'input') } });
      expect(r.stdout).toBe('from a file\n');
      await expect(run({ rootfs, argv: ['/bin/true'], stdin: { file: join(dir, 'nope') } })).rejects.toThrow(
        /stdin file .*nope does not exist/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ends a program writing a file past fileSizeLimitBytes as OUTPUT_LIMIT (SIGXFSZ)', async () => {
    const r = await run({ rootfs, argv: ['/probe', 'fsize', String(2 * MiB)], fileSizeLimitBytes: MiB });
    expect(r.signal).toBe('SIGXFSZ');
    expect(r.verdict).toBe('OUTPUT_LIMIT');
    expect(r.mechanism).toBe('rlimit_fsize');
  });
});

describe('rlimits', () => {
  it('sets open files and stack, and turns core dumps off', async () => {
    const r = await run({
      rootfs,
      argv: ['/bin/sh', '-c', 'ulimit -n; ulimit -s; ulimit -c'],
      openFilesLimit: 64,
      stackLimitBytes: 16 * MiB,
    });
    expect(r.stdout).toBe(`64\n${16 * 1024}\n0\n`);
  });

  it('refuses a limit above the hard limit instead of clamping it', async () => {
    await expect(run({ rootfs, argv: ['/bin/true'], openFilesLimit: 2 ** 40 })).rejects.toThrow(
      /openFilesLimit 1099511627776 is above the hard limit .* \(Max open files\)/,
    );
  });
});

describe('bad limits are one clear ConfigError', () => {
  it.each([
    [{ memoryLimitBytes: -1 }, /memoryLimitBytes must be an integer >= 1048576, got -1/],
    [{ cpuTimeLimitMs: 0 }, /cpuTimeLimitMs must be an integer >= 1/],
    [{ wallTimeLimitMs: 1.5 }, /wallTimeLimitMs must be an integer/],
    [{ cpus: 0 }, /cpus must be a number >= 0.01/],
    [{ pidsLimit: Number.NaN }, /pidsLimit must be an integer/],
    [{ cpusetCpus: 'all' }, /cpusetCpus must be a cpuset list/],
    [{ cgroupParent: '../escape' }, /cgroupParent must be a relative cgroup path/],
  ])('%o', async (limits, message) => {
    const e = await run({ rootfs, argv: ['/bin/true'], ...limits }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as Error).message).toMatch(message);
  });
});

describe('cgroups', () => {
  it('leave nothing behind in the parent cgroup once runs are over, beyond the pool', async () => {
    await run({ rootfs, argv: ['/bin/true'], memoryLimitBytes: 64 * MiB });
    /* The memory controller's hierarchy, v1 or v2, wherever this machine mounts it. */
    const dir = join(detectCgroups().controllers.memory!.mountPoint, 'capsule');
    const mine = readdirSync(dir).filter((n) => n.startsWith(`${process.pid}-`));
    /*
     * Pooled slots stay for reuse while this process lives, each empty of processes; where a
     * v2 memory.peak cannot be reset (5.19 to 6.11) the run's cgroup is removed instead.
     */
    if (detectV2Features(dir).peak !== 'fixed') expect(mine.length).toBeGreaterThan(0);
    for (const name of mine) expect(readFileSync(`${dir}/${name}/cgroup.procs`, 'utf8')).toBe('');
  });
});
