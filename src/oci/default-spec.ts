/**
 * `spec`: a starting config.json, the shape of `runc spec` (runc 1.1's, read on this machine)
 * with capsule's hardened defaults where they differ:
 *
 * - a cgroup namespace too, so /sys/fs/cgroup shows the container's own cgroup only;
 * - linux.resources.pids.limit 1024: a fork bomb stops at the container's cgroup;
 * - /proc mounted nosuid, noexec, nodev (runc mounts it with no options);
 * - no ambient capabilities: runc's three (AUDIT_WRITE, KILL, NET_BIND_SERVICE) stay in the
 *   bounding, effective and permitted sets, but a program exec'd inside does not inherit them.
 *
 * `--rootless` is runc's rootless spec: a user namespace mapping root to the caller, no
 * network namespace, /sys bound from the host read-only, no cgroup mount, no resources.
 */
const CAPS = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];

export function defaultSpec(o: { rootless: boolean; uid: number; gid: number }): object {
  const mounts: object[] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    {
      destination: '/dev',
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
    },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: [
        'nosuid',
        'noexec',
        'newinstance',
        'ptmxmode=0666',
        'mode=0620',
        ...(o.rootless ? [] : ['gid=5']),
      ],
    },
    {
      destination: '/dev/shm',
      type: 'tmpfs',
      source: 'shm',
      options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
    },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    o.rootless
      ? {
          destination: '/sys',
          type: 'none',
          source: '/sys',
          options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'],
        }
      : { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
  ];
  if (!o.rootless) {
    mounts.push({
      destination: '/sys/fs/cgroup',
      type: 'cgroup',
      source: 'cgroup',
      options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'],
    });
  }
  const namespaces = o.rootless
    ? ['pid', 'ipc', 'uts', 'mount', 'cgroup', 'user']
    : ['pid', 'network', 'ipc', 'uts', 'mount', 'cgroup'];
  return {
    ociVersion: '1.0.2-dev',
    process: {
      terminal: true,
      user: { uid: 0, gid: 0 },
      args: ['sh'],
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=xterm'],
      cwd: '/',
      capabilities: { bounding: CAPS, effective: CAPS, permitted: CAPS },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: true },
    hostname: 'capsule',
    mounts,
    linux: {
      ...(o.rootless
        ? {
            uidMappings: [{ containerID: 0, hostID: o.uid, size: 1 }],
            gidMappings: [{ containerID: 0, hostID: o.gid, size: 1 }],
          }
        : { resources: { devices: [{ allow: false, access: 'rwm' }], pids: { limit: 1024 } } }),
      namespaces: namespaces.map((type) => ({ type })),
      maskedPaths: [
        '/proc/acpi',
        '/proc/asound',
        '/proc/kcore',
        '/proc/keys',
        '/proc/latency_stats',
        '/proc/timer_list',
        '/proc/timer_stats',
        '/proc/sched_debug',
        '/sys/firmware',
        '/proc/scsi',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}
