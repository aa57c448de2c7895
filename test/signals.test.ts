/**
 * The signal that ended a program, by the name `kill -l` gives its number (6 is SIGABRT,
 * not its alias SIGIOT; 29 is SIGIO, not SIGPOLL).
 */
import { constants as osConstants } from 'node:os';

import { describe, expect, inject, it } from 'vitest';

import { errnoName } from '../src/diagnose.js';
import { run } from '../src/index.js';

const rootfs = inject('rootfs');

describe('signal names', () => {
  it.each([
    [6, 'SIGABRT'],
    [29, 'SIGIO'],
    [11, 'SIGSEGV'],
    [31, 'SIGSYS'],
  ])('a program killed by signal %i reports %s', async (n, name) => {
    const r = await run({ rootfs, argv: ['/bin/sh', '-c', `kill -${n} $$`] });
    expect(r.signal).toBe(name);
    expect(r.exitCode).toBeNull();
    expect(r.verdict).toBe('SIGNALED');
  });
});

describe('errno names', () => {
  it('are the names the kernel headers and strerror users give first, never an alias', () => {
    /* os.constants.errno lists aliases too: EWOULDBLOCK = EAGAIN, ENOTSUP = EOPNOTSUPP. */
    expect(errnoName(osConstants.errno.EAGAIN)).toBe('EAGAIN');
    expect(errnoName(osConstants.errno.EOPNOTSUPP)).toBe('EOPNOTSUPP');
    expect(errnoName(osConstants.errno.EDEADLK)).toBe('EDEADLK');
    expect(errnoName(osConstants.errno.ENOENT)).toBe('ENOENT');
    expect(errnoName(4095)).toBe('E4095');
  });
});
