/** Hints of setup failures: those a missing kernel feature causes send the reader to `capsule doctor`. */
import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';

import { DOCTOR_HINT, hintFor, setupError } from '../src/diagnose.js';

describe('hintFor', () => {
  it.each([
    ['clone', 'EINVAL', 'CONFIG_PID_NS'],
    ['clone', 'EPERM', 'unprivileged user namespaces'],
    ['map_user_ids', 'EPERM', 'kernel.apparmor_restrict_unprivileged_userns'],
    ['clone', 'ENOSPC', 'max_*_namespaces'],
    ['make_userns', 'ENOSPC', 'user.max_user_namespaces'],
    ['remount_ro', 'ENOSYS', 'mount_setattr(2) needs Linux 5.12'],
    ['bind_rootfs', 'ENOSYS', 'openat2(2), open_tree(2)'],
    ['load_seccomp', 'EINVAL', 'CONFIG_SECCOMP_FILTER'],
    ['mount_proc', 'ENOSYS', 'the kernel lacks this system call'],
  ])('%s %s (a missing kernel feature) says what and points at capsule doctor', (step, code, what) => {
    const hint = hintFor(step, code);
    expect(hint).toContain(what);
    expect(hint!.endsWith(DOCTOR_HINT)).toBe(true);
  });

  it.each([
    ['exec', 'EACCES'],
    ['open_mount_target', 'ELOOP'],
    ['load_seccomp', 'EBUSY'],
    ['pivot_root', 'EINVAL'],
  ])('%s %s (not the kernel lacking something) does not', (step, code) => {
    expect(hintFor(step, code)).toBeDefined();
    expect(hintFor(step, code)).not.toContain('capsule doctor');
  });

  it('the SetupError of a clone that fails with EINVAL says run `capsule doctor`', async () => {
    const e = await setupError(
      { step: 'clone', syscall: 'clone3', errno: constants.errno.EINVAL, detail: 'CLONE_NEWPID' },
      { rootfs: '/nonexistent', rootfsArg: 'box', program: '/bin/true' },
    );
    expect(e.message).toMatch(
      /^clone failed: clone3\(CLONE_NEWPID\): Invalid argument \(.*run `capsule doctor`/,
    );
    expect(e.hint).toContain('capsule doctor');
  });
});
