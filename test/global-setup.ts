/**
 * Once per test run: check the machine, build the probe, and make the small
 * rootfs most tests run in (a static busybox plus the probe). Removed at the
 * end; the teardown also fails the run if a mount or capsule cgroup is left.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

import { makeBusyboxRootfs } from './helpers/rootfs.js';

declare module 'vitest' {
  export interface ProvidedContext {
    rootfs: string;
    probe: string;
  }
}

let dir: string | undefined;
let mountsBefore = 0;

export function setup(project: TestProject) {
  if (process.getuid?.() !== 0) throw new Error('capsule tests run the real sandbox and need root');
  const root = join(import.meta.dirname, '..');
  if (!existsSync(join(root, 'build/Release/capsule.node'))) {
    throw new Error('the native addon is not built: run `npm run build` first');
  }
  mountsBefore = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').length;
  dir = mkdtempSync(join(tmpdir(), 'capsule-test-'));
  const probe = join(dir, 'probe');
  const rootfs = join(dir, 'rootfs');
  try {
    execFileSync(
      'cc',
      ['-static', '-O2', '-Wall', '-Werror', '-pthread', '-o', probe, join(root, 'test/probe/probe.c')],
      {
        stdio: ['ignore', 'inherit', 'inherit'],
      },
    );
    mkdirSync(rootfs);
    makeBusyboxRootfs(rootfs, probe);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  project.provide('rootfs', rootfs);
  project.provide('probe', probe);
}

export async function teardown() {
  if (dir) rmSync(dir, { recursive: true, force: true });
  /*
   * A test process killed outright (SIGKILL) cannot remove its pooled cgroups: that is
   * what `capsule gc` is for. Run it, and name what it removed in the log, so that a test
   * that leaks shows; live processes' cgroups are never touched.
   */
  const { detectCgroups, gcCgroups } = await import('../src/cgroup/index.js');
  const { removed } = gcCgroups(detectCgroups());
  if (removed.length > 0)
    console.warn(`capsule tests: removed cgroups of dead test processes: ${removed.join(', ')}`);
  const mountsAfter = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').length;
  if (mountsAfter !== mountsBefore) {
    throw new Error(
      `the tests left mounts behind: ${mountsBefore} lines in mountinfo before, ${mountsAfter} after`,
    );
  }
}
