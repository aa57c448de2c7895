/**
 * cgroup v2: the child is born in its cgroup with clone3(CLONE_INTO_CGROUP) instead of
 * moving there (a migration waits for an RCU grace period). Tested for real on this
 * machine's cgroup2 mount, which needs no controller for cgroup.procs and clone3.
 */
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmdirSync,
  rmSync,
  constants,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';

import { native, type NativeExit } from '../../src/native.js';
import { resolveOptions } from '../../src/options.js';
import { nativeOptions } from '../../src/run.js';
import { rlimitPlan } from '../../src/limits.js';

const rootfs = inject('rootfs');

/** The cgroup2 mount point, from mountinfo; null when the kernel has none mounted. */
function cgroup2Mount(): string | null {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (post?.startsWith('cgroup2 ')) return pre!.split(' ')[4]!;
  }
  return null;
}

const mount = cgroup2Mount();

describe.skipIf(mount === null)('clone3 into a cgroup v2 directory (skipped: no cgroup2 mounted)', () => {
  it('starts the sandbox inside the cgroup, with nothing written to cgroup.procs', async () => {
    const cgroup = join(mount!, `capsule-test-clone3-${process.pid}`);
    const dir = mkdtempSync(join(tmpdir(), 'capsule-clone3-'));
    mkdirSync(cgroup);
    const dirFd = openSync(cgroup, constants.O_RDONLY | constants.O_DIRECTORY);
    const out = openSync(join(dir, 'out'), 'w');
    try {
      /* Read from the host: inside, the sandbox's cgroup namespace shows its cgroup as "/". */
      const opts = resolveOptions({
        rootfs,
        argv: ['/bin/sh', '-c', 'cat /proc/self/cgroup; read x || true'],
      });
      const n = nativeOptions(opts, [-1, out, out], [], rlimitPlan(opts.limits));
      n.cgroupDirFd = dirFd;
      let seen = '';
      const exit = await new Promise<NativeExit>((resolve, reject) => {
        native()
          .spawn(n, resolve)
          .then(({ pid, stdio }) => {
            seen = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
            if (stdio[0] >= 0) closeSync(stdio[0]);
          }, reject);
      });
      expect(exit.report?.waitStatus).toBe(0);
      expect(seen).toContain(`0::/capsule-test-clone3-${process.pid}\n`);
      expect(readFileSync(join(dir, 'out'), 'utf8')).toContain('0::/\n');
    } finally {
      closeSync(out);
      closeSync(dirFd);
      rmSync(dir, { recursive: true, force: true });
      rmdirSync(cgroup);
    }
  });
});
