/** Shared by the OCI tests: a state.json for a process the test made (no addon container needed). */
import { readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';

import { type ContainerState, procStat } from '../../src/oci/state.js';

/** The state of container `id` whose PID 1 is `pid` (any live process: the test's own child). */
export function fakeState(id: string, pid: number, over: Partial<ContainerState> = {}): ContainerState {
  return {
    ociVersion: '1.2.0',
    id,
    status: 'created',
    pid,
    bundle: '/nonexistent/bundle',
    annotations: { a: 'b' },
    pidStartTime: procStat(pid)?.startTime ?? '0',
    cgroupPaths: [],
    cgroupsPath: `capsule-test/${id}`,
    freezerPath: '',
    freezerVersion: 0,
    created: new Date().toISOString(),
    owner: 0,
    terminal: false,
    hooks: { poststart: [], poststop: [] },
    exec: {
      process: {
        args: ['sh'],
        env: [],
        cwd: '/',
        uid: 0,
        gid: 0,
        additionalGids: [],
        umask: -1,
        terminal: false,
        capabilities: { bounding: [], effective: [], permitted: [], inheritable: [], ambient: [] },
        noNewPrivileges: true,
        rlimits: [],
      },
      rootfs: '/nonexistent/rootfs',
      userns: false,
      seccomp: null,
    },
    ...over,
  };
}

/**
 * The /capsule-test parent every hierarchy got from the containers' cgroupsPath: create makes
 * parents and delete leaves them, as runc does, so the suite removes them once empty (another
 * file still using one keeps it: rmdir(2) refuses a cgroup with children).
 */
export function removeTestCgroupParents(): void {
  for (const h of readdirSync('/sys/fs/cgroup', { withFileTypes: true })) {
    if (!h.isDirectory()) continue;
    try {
      rmdirSync(join('/sys/fs/cgroup', h.name, 'capsule-test'));
    } catch {
      /* absent, or still in use */
    }
  }
}
