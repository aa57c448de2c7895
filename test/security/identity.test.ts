/**
 * The sandbox's identity seen from inside: the securebits capsule locks
 * before it drops to the sandbox's user (capabilities(7)).
 */
import { describe, expect, inject, it } from 'vitest';

import { run } from '../../src/index.js';

describe('securebits', () => {
  it('NOROOT, NO_SETUID_FIXUP, KEEP_CAPS and NO_CAP_AMBIENT_RAISE are locked (capabilities(7))', async () => {
    const r = await run({ rootfs: inject('rootfs'), argv: ['/probe', 'securebits'] });
    expect(r.exitCode).toBe(0);
    const bits = Number(r.stdout.trim());
    const NOROOT = 1 << 0,
      NOROOT_LOCKED = 1 << 1,
      NO_SETUID_FIXUP_LOCKED = 1 << 3,
      KEEP_CAPS_LOCKED = 1 << 5,
      NO_CAP_AMBIENT_RAISE = 1 << 6,
      NO_CAP_AMBIENT_RAISE_LOCKED = 1 << 7;
    expect(bits).toBe(
      NOROOT |
        NOROOT_LOCKED |
        NO_SETUID_FIXUP_LOCKED |
        KEEP_CAPS_LOCKED |
        NO_CAP_AMBIENT_RAISE |
        NO_CAP_AMBIENT_RAISE_LOCKED,
    );
  });
});
