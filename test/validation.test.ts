/**
 * Options that cannot work are one ConfigError naming the option and what is valid,
 * before anything starts (no cgroup, no clone).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, inject, it } from 'vitest';

import { CgroupError, ConfigError, run, type RunOptions } from '../src/index.js';

const rootfs = inject('rootfs');

/** CPUs the kernel has online (/sys/devices/system/cpu/online, e.g. "0-1"). */
function onlineCpus(): number {
  let n = 0;
  for (const part of readFileSync('/sys/devices/system/cpu/online', 'utf8').trim().split(',')) {
    const [a, b] = part.split('-').map(Number);
    n += b === undefined ? 1 : b - a! + 1;
  }
  return n;
}

async function configError(options: Record<string, unknown>): Promise<ConfigError> {
  const e: unknown = await run({ rootfs, argv: ['/bin/true'], ...options } as RunOptions).then(
    () => new Error('run() resolved'),
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ConfigError);
  return e as ConfigError;
}

describe('unknown options', () => {
  it('an unknown key names the nearest known option', async () => {
    const e = await configError({ cpuTimeLimit: 100 });
    expect(e.option).toBe('cpuTimeLimit');
    expect(e.message).toMatch(/unknown option cpuTimeLimit.*did you mean cpuTimeLimitMs\?/);
  });

  it('a key far from every option says so', async () => {
    const e = await configError({ frobnicate: true });
    expect(e.message).toMatch(/unknown option frobnicate/);
    expect(e.message).not.toMatch(/did you mean/);
  });

  it('undefined values of known options are fine', async () => {
    const r = await run({ rootfs, argv: ['/bin/true'], cwd: undefined, signal: undefined });
    expect(r.exitCode).toBe(0);
  });
});

describe('values that pass a type check but cannot work', () => {
  it('pidsLimit: 2**40 is past the kernel maximum', async () => {
    const e = await configError({ pidsLimit: 2 ** 40 });
    expect(e.option).toBe('pidsLimit');
    expect(e.message).toMatch(/pidsLimit must be an integer from 2 to 4194304/);
  });

  it('pidsLimit: 1 leaves no room for the program next to capsule-init', async () => {
    const e = await configError({ pidsLimit: 1 });
    expect(e.option).toBe('pidsLimit');
    expect(e.message).toMatch(/from 2 .*capsule-init/);
  });

  it('cpusetCpus naming a CPU the machine does not have', async () => {
    const cpus = onlineCpus();
    const e = await configError({ cpusetCpus: String(cpus + 7) });
    expect(e.option).toBe('cpusetCpus');
    expect(e.message).toContain(`CPU ${cpus + 7}`);
    expect(e.message).toContain(readFileSync('/sys/devices/system/cpu/online', 'utf8').trim());
  });

  it('cpus above the CPUs the machine has', async () => {
    const cpus = onlineCpus();
    const e = await configError({ cpus: cpus + 6 });
    expect(e.option).toBe('cpus');
    expect(e.message).toContain(`from 0.01 to ${cpus}`);
  });

  it('stdin, stdout or stderr as a descriptor that is not open', async () => {
    for (const key of ['stdin', 'stdout', 'stderr']) {
      const e = await configError({ [key]: 999 });
      expect(e.option).toBe(key);
      expect(e.message).toMatch(new RegExp(`^${key}: 999 is not an open descriptor \\(fstat: EBADF\\)`));
    }
  });

  it('an argument longer than the kernel takes names it and the limit', async () => {
    const e = await configError({ argv: ['/bin/echo', 'x'.repeat(1 << 20)] });
    expect(e.option).toBe('argv[1]');
    expect(e.message).toMatch(
      /argv\[1\] \(an argument of \/bin\/echo\) is 1048576 bytes.*131071 .*MAX_ARG_STRLEN/,
    );
  });

  it('an environment entry longer than the kernel takes names it', async () => {
    const e = await configError({ env: { BIG: 'x'.repeat(1 << 17) } });
    expect(e.option).toBe('env');
    expect(e.message).toMatch(/BIG .*MAX_ARG_STRLEN/);
  });

  it('an argument just under the limit runs', async () => {
    const arg = 'y'.repeat(131071 - 1);
    const r = await run({ rootfs, argv: ['/bin/sh', '-c', 'printf %s "$1" | wc -c', 'sh', arg] });
    expect(r.stdout.trim()).toBe(String(arg.length));
  });
});

describe('error types', () => {
  it('CgroupError is exported, and its errno is positive', () => {
    const e = new CgroupError('x', { step: 'write', errno: -22, code: 'EINVAL' });
    expect(e.errno).toBe(22);
  });
});
