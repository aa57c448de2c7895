/**
 * `features`: the runtime-spec features document (features.md) for capsule: what a
 * config.json may ask of it. Derived from the tables the code uses (capabilities, seccomp
 * actions, operators and architectures), not typed twice.
 */
import { native } from '../native.js';
import { ACTIONS, KNOWN_ARCHES, OPS } from '../seccomp/profile.js';
import { CAPABILITIES } from './caps.js';
import { OCI_VERSION } from './state.js';

/** Mount options config.json's mounts may carry: what src/oci/mounts.ts accepts (its REFUSED ones left out). */
export const MOUNT_OPTIONS = [
  'async',
  'atime',
  'bind',
  'defaults',
  'dev',
  'diratime',
  'exec',
  'loud',
  'noatime',
  'nodev',
  'nodiratime',
  'noexec',
  'noiversion',
  'nolazytime',
  'nomand',
  'norelatime',
  'nostrictatime',
  'nosuid',
  'nosymfollow',
  'notmpcopyup',
  'private',
  'rbind',
  'relatime',
  'rprivate',
  'ro',
  'rshared',
  'rslave',
  'runbindable',
  'rw',
  'shared',
  'slave',
  'strictatime',
  'suid',
  'symfollow',
  'tmpcopyup',
  'unbindable',
];

export function features(version: string): object {
  let libseccomp = '';
  try {
    libseccomp = native().libseccompVersion;
  } catch {
    /* the addon is not built: the version is left out */
  }
  return {
    ociVersionMin: '1.0.0',
    ociVersionMax: OCI_VERSION,
    hooks: ['prestart', 'createRuntime', 'poststart', 'poststop'],
    mountOptions: MOUNT_OPTIONS,
    linux: {
      namespaces: ['cgroup', 'ipc', 'mount', 'network', 'pid', 'user', 'uts'],
      capabilities: [...CAPABILITIES],
      cgroup: { v1: true, v2: true, systemd: false, systemdUser: false },
      seccomp: {
        enabled: true,
        actions: Object.keys(ACTIONS).sort(),
        operators: Object.keys(OPS).sort(),
        archs: [...KNOWN_ARCHES].sort(),
      },
      apparmor: { enabled: false },
      selinux: { enabled: false },
    },
    annotations: {
      ...(libseccomp ? { 'io.github.seccomp.libseccomp.version': libseccomp } : {}),
      'dev.capsule.version': version,
    },
  };
}
