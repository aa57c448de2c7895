/**
 * What a program finds in a sandbox it asked nothing special of (issue 10): a
 * loopback it can talk to itself over, nothing routed out, and a bounded
 * open-files limit.
 */
import { describe, expect, inject, it } from 'vitest';

import { ConfigError, run } from '../src/index.js';

const rootfs = inject('rootfs');

describe('network', () => {
  it('lo is up: a server and a client on 127.0.0.1 talk; nothing routes out (ENETUNREACH)', async () => {
    const r = await run({ rootfs, argv: ['/probe', 'loopback'] });
    expect(r.stdout).toBe('loopback: ok\noutside: ENETUNREACH\n');
  });

  it('with a pooled namespace too (back-to-back runs take namespaces made ahead of time)', async () => {
    for (let i = 0; i < 6; i++) {
      const r = await run({ rootfs, argv: ['/probe', 'loopback'] });
      expect(r.stdout).toBe('loopback: ok\noutside: ENETUNREACH\n');
    }
  });

  it('each sandbox has its own loopback: nothing listens on 127.0.0.1 in a new one', async () => {
    const r = await run({ rootfs, argv: ['/bin/sh', '-c', 'cat /proc/net/tcp | wc -l'] });
    expect(r.stdout.trim()).toBe('1'); /* the header line only */
  });
});

describe('open files', () => {
  const limits = (extra = {}) =>
    run({ rootfs, argv: ['/bin/sh', '-c', 'grep "Max open files" /proc/self/limits'], ...extra });

  it('defaults to 1024 (soft and hard), as runc does', async () => {
    expect((await limits()).stdout).toMatch(/^Max open files\s+1024\s+1024\s+files/);
  });

  it('openFilesLimit sets it', async () => {
    expect((await limits({ openFilesLimit: 64 })).stdout).toMatch(/^Max open files\s+64\s+64\s+files/);
  });

  it('is still checked against the hard limit capsule runs under', async () => {
    await expect(run({ rootfs, argv: ['/bin/true'], openFilesLimit: 2 ** 40 })).rejects.toThrow(ConfigError);
  });
});
