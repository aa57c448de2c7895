/**
 * The addon's own checks on what it is handed (issue 9, section 6): whatever the
 * TypeScript layer checked, a value the kernel would read differently from what was
 * meant is refused, never converted.
 */
import { describe, expect, inject, it } from 'vitest';

import { ConfigError, run } from '../../src/index.js';
import { setupError } from '../../src/diagnose.js';
import { native, type NativeOptions } from '../../src/native.js';
import { resolveOptions } from '../../src/options.js';
import { nativeOptions } from '../../src/run.js';
import { rlimitPlan } from '../../src/limits.js';

const rootfs = inject('rootfs');

function options(change: (o: NativeOptions) => void): NativeOptions {
  const opts = resolveOptions({ rootfs, argv: ['/bin/true'], seccomp: 'none' });
  const n = nativeOptions(opts, [0, 1, 2], [], rlimitPlan(opts.limits));
  change(n);
  return n;
}

describe('numbers out of range are refused by the addon', () => {
  const cases: [string, (o: NativeOptions) => void, RegExp][] = [
    ['uid -1 ("leave unchanged" to setresuid)', (o) => (o.uid = -1), /option uid must be an integer/],
    ['uid 2^32 - 1 (the same -1)', (o) => (o.uid = 2 ** 32 - 1), /option uid/],
    ['gid 2^32', (o) => (o.gid = 2 ** 32), /option gid/],
    ['tmpSizeBytes 2^64 (was 0)', (o) => (o.tmpSizeBytes = 2 ** 64), /option tmpSizeBytes/],
    ['tmpSizeBytes -1 (was UINT64_MAX)', (o) => (o.tmpSizeBytes = -1), /option tmpSizeBytes/],
    ['tmpSizeBytes 1.5', (o) => (o.tmpSizeBytes = 1.5), /option tmpSizeBytes/],
    ['an rlimit of -1', (o) => o.rlimits.push({ resource: 7, soft: -1, hard: 64 }), /option soft/],
    ['a stdio descriptor of 2^31', (o) => (o.stdio[1] = 2 ** 31), /option stdio/],
  ];
  for (const [name, change, message] of cases) {
    it(name, () => {
      expect(() => native().plan(options(change))).toThrow(message);
    });
  }

  it('RLIM_INFINITY (2^64, as src/limits.ts sends it) is still accepted for an rlimit', () => {
    expect(() =>
      native().plan(options((o) => o.rlimits.push({ resource: 3, soft: 2 ** 64, hard: 2 ** 64 }))),
    ).not.toThrow();
  });
});

describe('strings with a NUL byte', () => {
  for (const key of ['cwd', 'hostname', 'rootfs'] as const) {
    it(`the addon refuses ${key}`, () => {
      expect(() => native().plan(options((o) => (o[key] = `/tmp\0x`)))).toThrow(
        `option ${key} must not contain a NUL byte`,
      );
    });
  }

  it('the addon refuses argv and env entries', () => {
    expect(() => native().plan(options((o) => o.argv.push('a\0b')))).toThrow(/option argv/);
    expect(() => native().plan(options((o) => o.env.push('A=b\0c')))).toThrow(/option env/);
  });

  it('run() refuses a cwd with a NUL byte as a ConfigError naming cwd (it ran in /tmp before)', async () => {
    const e = await run({ rootfs, argv: ['/bin/true'], cwd: '/tmp\0x' }).catch((e: unknown) => e);
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).option).toBe('cwd');
  });
});

describe('hints', () => {
  it('EBUSY from load_seccomp names the outer seccomp notifier', async () => {
    const e = await setupError(
      { step: 'load_seccomp', syscall: 'seccomp', errno: 16, detail: 'seccomp(SECCOMP_SET_MODE_FILTER)' },
      { rootfs, rootfsArg: rootfs, program: '/bin/true' },
    );
    expect(e.hint).toMatch(/already installed above capsule/);
    expect(e.message).toContain("seccomp: 'none'");
  });
});
