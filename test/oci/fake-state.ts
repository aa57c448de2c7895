/** Shared by the OCI tests: a state.json for a process the test made (no addon container needed). */
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
