/**
 * An OCI bundle's config.json (runtime-spec 1.0 to 1.2, config.md and config-linux.md) read
 * into a ContainerPlan (plan.ts). Everything is checked before anything runs; an error is a
 * ConfigError whose message names the field by its path (`config.json:
 * linux.resources.memory.limit: must be an integer >= -1, got "x"`) and whose `option` is that
 * path. Nothing is silently ignored: a field of the runtime spec that capsule cannot honour is
 * an error naming it, unless the table below says why accepting it is harmless. A property the
 * spec does not define is ignored with a warning naming it (plan.warnings), as the spec requires
 * (config.md, "Extensibility": runtimes MUST NOT generate an error on an unknown property, and
 * MUST ignore it; runtime-tools' misc_props checks it); `strict` makes it an error instead.
 * No child process; one read of config.json, a realpath and a stat of the root (and a readdir
 * per tmpcopyup, a stat per joined network namespace with net.* sysctls): this runs on every
 * create. Measured: 0.26 ms p50 for podman's config with its 437-rule seccomp profile.
 *
 * What engines send (captured from real clients on this machine, test/oci/fixtures/):
 * - podman 4.3 (`podman run`): mounts /proc, /dev (tmpfs), /sys (sysfs ro), /dev/pts,
 *   /dev/mqueue, binds of its own resolv.conf, hosts, hostname, .containerenv and /dev/shm, and
 *   /sys/fs/cgroup (type cgroup, ro); 11 capabilities in bounding/effective/permitted, none
 *   inheritable or ambient; RLIMIT_NOFILE and RLIMIT_NPROC; the network namespace joined by
 *   path (/run/netns/netns-...) and sysctl net.ipv4.ping_group_range; masked and read-only
 *   paths; its seccomp profile (OCI form, x86_64 + x86 + x32); pids.limit 2048.
 * - podman --tmpfs and --read-only: tmpfs mounts with tmpcopyup; --privileged: every host device
 *   in linux.devices with its st_mode as fileMode, every capability, no masked paths.
 * - containerd 1.6 (`ctr run`): /proc, /dev, /dev/pts, /dev/shm and /run as tmpfs, /dev/mqueue,
 *   /sys; the device cgroup rules of runc's default devices; cpu.shares 1024; noNewPrivileges;
 *   no seccomp profile (ctr gives none unless --seccomp).
 * - containerd's CRI plugin (what kubelet drives): the pause container joins the network
 *   namespace CNI made (a bind mount under containerd's state dir) and sets the pod's hostname;
 *   a workload joins the pause container's pid, ipc, uts and network namespaces by
 *   /proc/PID/ns/* and has a mount namespace of its own; binds of the pod's hosts, hostname,
 *   resolv.conf and /dev/shm; /sys/fs/cgroup as a cgroup mount.
 * - `runc spec` and `crun spec`: their defaults (root "rootfs" read-only, terminal, ambient
 *   capabilities not in the inheritable set, see below).
 * The mounts are exactly the config's: capsule adds none in the OCI mode.
 *
 * Accepted although capsule does nothing with them (harmless to accept):
 * | field                                | why                                                          |
 * |--------------------------------------|--------------------------------------------------------------|
 * | annotations                          | informational by the spec; kept in the plan                  |
 * | ociVersion                           | checked to be 1.x; the fields are what is read               |
 * | linux.mountLabel, process.apparmorProfile, process.selinuxLabel | only when empty: no label asked for |
 * | linux.seccomp.flags TSYNC            | the filter is loaded while capsule-init has one thread       |
 * | linux.seccomp syscalls[].comment     | documentation                                                |
 * | linux.resources.memory.useHierarchy  | only true: memory.use_hierarchy is always 1 since Linux 5.11 |
 * | linux.resources.memory.checkBeforeUpdate | only false (the default): it concerns `update`           |
 * | linux.personality                    | only {domain: LINUX, flags: []}: what every process has      |
 * | linux.resources blockIO, network, rdma | only when empty ({} or nulls, as Go writes them)           |
 * | process.user.uid/gid absent          | 0, as runc reads a missing number                            |
 * | process.capabilities absent          | no capabilities at all (runc leaves the caller's, all of them: capsule takes the safe reading) |
 * | mount options defaults, async, nomand, nolazytime, loud, noiversion, notmpcopyup | the kernel's defaults |
 * | mount option tmpcopyup               | only where the directory is absent or empty in the rootfs: nothing to copy (podman's --tmpfs and --read-only send it) |
 * | filesystem options on a bind mount    | left out with a warning: mount(2) ignores data with MS_BIND (runtime-tools' mounts test sends them) |
 * | linux.devices[].fileMode file type bits | only the device's own type (podman --privileged sends st_mode); mknod is given the type anyway |
 * | process.apparmorProfile "unconfined" | what `--security-opt apparmor=unconfined` sends: no confinement, which is what capsule gives |
 * | capabilities above cap_last_cap      | dropped with a warning: this kernel has no such capability to grant (runc does the same) |
 * | ambient capabilities not both permitted and inheritable | dropped with a warning: the kernel refuses to raise them (PR_CAP_AMBIENT_RAISE, EPERM); runc warns and goes on, and `runc spec` writes such a set |
 * Warnings are in plan.warnings, for the command line's log.
 *
 * Refused, each an error naming the field: solaris, windows, vm, zos;
 * process.commandLine, user.username, scheduler, ioPriority, execCPUAffinity; a non-empty
 * apparmorProfile or selinuxLabel (capsule has no LSM support), linux.mountLabel;
 * linux.intelRdt, memoryPolicy, netDevices, timeOffsets, the `time` namespace (the addon has
 * none), personality other than plain LINUX; seccomp agents (listenerPath, SCMP_ACT_NOTIFY),
 * seccomp flags other than TSYNC; resources memory.kernelTCP, cpu.burst, cpu.idle, non-empty
 * blockIO/network/rdma; idmapped mounts; mount types other than proc, tmpfs, devpts, mqueue,
 * sysfs, cgroup, cgroup2 and binds; the mount options mounts.ts lists; mounts onto / or
 * inside /proc (but for lxcfs's files, as runc); unknown rlimits and
 * capability names; sysctls that are not namespaced (runc's list); a hostname or domainname
 * without a UTS namespace; a user namespace without mappings, mappings without one; a
 * systemd-style cgroupsPath (slice:prefix:name); linux.rootfsPropagation without a mount namespace.
 *
 * No mount namespace at all is accepted, with a warning, as runc and crun accept it: the
 * container's mounts are made in the host's mount namespace under a private bind of the rootfs,
 * which `delete` detaches, and its root is a chroot (native/oci.cc, host_mounts).
 */
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { ConfigError } from '../errors.js';
import type { NativeOci, NativeOciMount, NativeOptions } from '../native.js';
import { normalizeProfile } from '../seccomp/profile.js';
import { CAPABILITIES, capabilityNumber, capLastCap } from './caps.js';
import { absent, emptyValue, Fields, type Json, show } from './fields.js';
import { readMount, rootPropagation } from './mounts.js';
import { RLIMITS } from './process.js';
import type { ContainerPlan, OciHook, OciHooks, OciResources } from './plan.js';

const TOP_KEYS = [
  'ociVersion',
  'process',
  'root',
  'hostname',
  'domainname',
  'mounts',
  'hooks',
  'annotations',
  'linux',
  'solaris',
  'windows',
  'vm',
  'zos',
];
const PROCESS_KEYS = [
  'terminal',
  'consoleSize',
  'user',
  'args',
  'commandLine',
  'env',
  'cwd',
  'capabilities',
  'rlimits',
  'noNewPrivileges',
  'apparmorProfile',
  'oomScoreAdj',
  'selinuxLabel',
  'scheduler',
  'ioPriority',
  'execCPUAffinity',
];
const LINUX_KEYS = [
  'namespaces',
  'uidMappings',
  'gidMappings',
  'timeOffsets',
  'devices',
  'cgroupsPath',
  'rootfsPropagation',
  'maskedPaths',
  'readonlyPaths',
  'mountLabel',
  'resources',
  'sysctl',
  'seccomp',
  'intelRdt',
  'personality',
  'memoryPolicy',
  'netDevices',
];
const HOOK_KINDS = [
  'prestart',
  'createRuntime',
  'createContainer',
  'startContainer',
  'poststart',
  'poststop',
] as const;

type NsType = NativeOci['namespaces'][number]['type'];
const NS_TYPES: readonly NsType[] = ['pid', 'network', 'mount', 'ipc', 'uts', 'cgroup', 'user'];

const U32_MAX = 2 ** 32 - 1;
const I64_MIN = Number.MIN_SAFE_INTEGER;

export interface ReadOptions {
  /**
   * A property the runtime spec does not define is an error, not a warning. The spec requires
   * runtimes to ignore them (config.md, "Extensibility"; runtime-tools' misc_props checks it),
   * so this is for people checking a config of their own, where a misspelt field
   * (`noNewPrivilges`) would otherwise only be logged. @default false
   */
  strict?: boolean;
}

/** Read BUNDLE/config.json into a plan. Throws ConfigError. */
export function readBundle(bundleDir: string, id: string, opts: ReadOptions = {}): ContainerPlan {
  const bundle = resolve(bundleDir);
  const file = join(bundle, 'config.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ConfigError(
      `config.json: cannot read ${file}: ${err.code ?? err.message}: the bundle directory must hold the container's config.json`,
      'bundle',
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`config.json: ${file} is not valid JSON: ${(e as Error).message}`, 'bundle');
  }
  return readConfig(json, bundle, id, opts);
}

/** A parsed config.json into a plan; `bundleDir` resolves root.path and relative bind sources. */
export function readConfig(
  json: unknown,
  bundleDir: string,
  id: string,
  { strict = false }: ReadOptions = {},
): ContainerPlan {
  const f = new Fields('config.json', strict);
  if (typeof id !== 'string' || !/^[A-Za-z0-9_+.-]+$/.test(id) || id === '.' || id === '..') {
    throw new ConfigError(
      `container id ${show(id)}: must be letters, digits and _ + - . (as runc requires)`,
      'id',
    );
  }
  const bundle = resolve(bundleDir);
  const warnings = f.warnings;
  const c = f.object('', json, TOP_KEYS);

  const ociVersion = f.string('ociVersion', c.ociVersion);
  if (!/^1\.\d+\.\d+/.test(ociVersion))
    f.fail('ociVersion', `must be a 1.x version of the OCI runtime spec, got ${show(ociVersion)}`);
  for (const k of ['solaris', 'windows', 'vm', 'zos'])
    f.unsupported(k, c[k], `is for another platform: capsule runs Linux containers only; remove it`);
  if (absent(c.linux)) f.fail('linux', 'is required: capsule runs Linux containers');
  const linux = f.object('linux', c.linux, LINUX_KEYS);
  refuseUnsupportedLinux(f, linux);

  const rootfs = readRoot(f, c.root, bundle);
  const rootReadonly = f.bool('root.readonly', (c.root as Json).readonly);

  const { namespaces, joinNamespaces, has } = readNamespaces(f, linux.namespaces);
  /*
   * No mount namespace: config-linux.md says the container then inherits the runtime's, as
   * runc and crun do. Its mounts are made there, under a private bind of the rootfs that
   * `delete` detaches (native/oci.cc host_mounts), and its root is a chroot: pivot_root would
   * move the root of every process on the host. A chroot is no confinement for a process with
   * CAP_SYS_CHROOT or CAP_SYS_ADMIN, which the warning says.
   */
  const hostMounts = !has('mount');
  if (hostMounts) {
    if (!absent(linux.rootfsPropagation) && linux.rootfsPropagation !== '')
      f.fail(
        'linux.rootfsPropagation',
        'needs a mount namespace of the container\'s own ({"type": "mount"} in linux.namespaces): without one the propagation would be the host\'s',
      );
    warnings.push(
      'linux.namespaces has no mount namespace: the container shares the host\'s; its mounts are made there, under a private bind of root.path that delete removes, and its root is a chroot(2), which a process holding CAP_SYS_CHROOT or CAP_SYS_ADMIN can leave: add {"type": "mount"} to isolate it',
    );
  }
  const uidMappings = readMappings(f, 'linux.uidMappings', linux.uidMappings);
  const gidMappings = readMappings(f, 'linux.gidMappings', linux.gidMappings);
  const newUserns = has('user') && !joinNamespaces.some((j) => j.type === 'user');
  if (newUserns && (uidMappings.length === 0 || gidMappings.length === 0))
    f.fail(
      uidMappings.length === 0 ? 'linux.uidMappings' : 'linux.gidMappings',
      'a new user namespace needs uidMappings and gidMappings',
    );
  if (!newUserns && (uidMappings.length > 0 || gidMappings.length > 0))
    f.fail(
      uidMappings.length > 0 ? 'linux.uidMappings' : 'linux.gidMappings',
      'mappings are only for a new user namespace: add {"type": "user"} to linux.namespaces or remove them',
    );

  const hostname = f.optString('hostname', c.hostname, '');
  if (hostname !== '' && !has('uts'))
    f.fail('hostname', 'needs a UTS namespace of its own: add {"type": "uts"} to linux.namespaces');
  const domainname = f.optString('domainname', c.domainname, '');
  if (domainname !== '' && !has('uts'))
    f.fail('domainname', 'needs a UTS namespace of its own: add {"type": "uts"} to linux.namespaces');

  const proc = readProcess(f, c.process, warnings);
  const mounts: NativeOciMount[] = f
    .optArray('mounts', c.mounts)
    .map((m, i) => readMount(f, `mounts[${i}]`, m, bundle, rootfs));

  const sysctl = readSysctl(f, linux.sysctl, has, joinNamespaces);
  /* domainname is set as the kernel.domainname sysctl of the new UTS namespace (setdomainname(2)). */
  if (domainname !== '') sysctl.push({ key: 'kernel.domainname', value: domainname });

  const cgroupsPath = f.optString('linux.cgroupsPath', linux.cgroupsPath, '');
  if (/^[^/]*:[^/]*:/.test(cgroupsPath))
    f.fail(
      'linux.cgroupsPath',
      `${show(cgroupsPath)} is a systemd unit (slice:prefix:name); capsule manages cgroupfs paths only: give a path such as /machine/ID`,
    );
  if (cgroupsPath.split('/').includes('..')) f.fail('linux.cgroupsPath', "must not contain '..'");

  const seccomp = absent(linux.seccomp)
    ? null
    : normalizeProfile(linux.seccomp, 'config.json', {
        oci: true,
        unknownField: (field) => f.unknown(`linux.seccomp.${field}`, 'not a field of linux.seccomp'),
      });

  const oci: NativeOci = {
    waitForStart: true,
    namespaces,
    uidMappings,
    gidMappings,
    rootReadonly,
    rootPropagation: rootPropagation(f, linux.rootfsPropagation),
    mounts,
    maskedPaths: f
      .strings('linux.maskedPaths', linux.maskedPaths)
      .map((p, i) => f.absolute(`linux.maskedPaths[${i}]`, p)),
    readonlyPaths: f
      .strings('linux.readonlyPaths', linux.readonlyPaths)
      .map((p, i) => f.absolute(`linux.readonlyPaths[${i}]`, p)),
    sysctl,
    devices: readDevices(f, linux.devices),
    additionalGids: proc.additionalGids,
    umask: proc.umask,
    capabilities: proc.capabilities,
    noNewPrivileges: proc.noNewPrivileges,
    hostname,
    ...(hostMounts ? { hostMounts: true } : {}),
  };

  return {
    ociVersion,
    bundle,
    native: {
      rootfs,
      argv: ['capsule-oci', ...proc.args],
      env: proc.env,
      cwd: proc.cwd,
      hostname,
      uid: proc.uid,
      gid: proc.gid,
      /* capsule's own mount layout is not used with `oci` (native.ts): these are its neutral values. */
      writableRoot: !rootReadonly,
      tmpSizeBytes: 0,
      devPts: false,
      devShm: false,
      tmpNoexec: false,
      sys: false,
      devShmSizeBytes: 0,
      devNodes: [],
      devices: [],
      binds: [],
      rlimits: proc.rlimits,
      trace: false,
      oci,
    },
    joinNamespaces,
    cgroupsPath,
    resources: readResources(f, linux.resources),
    seccomp,
    hasProcess: proc.args.length > 0,
    terminal: proc.terminal,
    ...(proc.consoleSize ? { consoleSize: proc.consoleSize } : {}),
    ...(proc.oomScoreAdj !== undefined ? { oomScoreAdj: proc.oomScoreAdj } : {}),
    hooks: readHooks(f, c.hooks),
    annotations: readAnnotations(f, c.annotations),
    warnings,
  };
}

function refuseUnsupportedLinux(f: Fields, linux: Json) {
  f.unsupported(
    'linux.intelRdt',
    linux.intelRdt,
    'Intel RDT (resctrl) is not supported by capsule: remove it',
  );
  f.unsupported(
    'linux.timeOffsets',
    linux.timeOffsets,
    'time namespaces are not supported by capsule: remove timeOffsets',
    emptyValue,
  );
  f.unsupported(
    'linux.memoryPolicy',
    linux.memoryPolicy,
    'NUMA memory policies (set_mempolicy) are not supported by capsule: remove it',
  );
  f.unsupported(
    'linux.netDevices',
    linux.netDevices,
    'moving network devices into the container is not supported by capsule: remove netDevices',
    (v) => absent(v) || (typeof v === 'object' && Object.keys(v).length === 0),
  );
  f.unsupported(
    'linux.mountLabel',
    linux.mountLabel,
    'SELinux labels are not supported by capsule (no LSM support): remove mountLabel or leave it empty',
    emptyValue,
  );
  if (!absent(linux.personality)) {
    const p = f.object('linux.personality', linux.personality, ['domain', 'flags']);
    const domain = f.string('linux.personality.domain', p.domain);
    if (domain !== 'LINUX')
      f.fail(
        'linux.personality.domain',
        `${show(domain)} is not supported: capsule runs programs with the LINUX personality only (personality(2)); remove linux.personality`,
      );
    if (f.strings('linux.personality.flags', p.flags).length > 0)
      f.fail('linux.personality.flags', 'personality flags are not supported by capsule: remove them');
  }
}

function readRoot(f: Fields, v: unknown, bundle: string): string {
  const root = f.object('root', v, ['path', 'readonly']);
  const path = f.string('root.path', root.path);
  if (path === '') f.fail('root.path', "is empty: give the container's root directory");
  /* Relative to the bundle (config.md, "Root"); symlinks resolved once, here. */
  const full = resolve(bundle, path);
  let real: string;
  try {
    real = realpathSync(full);
  } catch (e) {
    f.fail(
      'root.path',
      `${full}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}: the root filesystem must exist`,
    );
  }
  if (!statSync(real).isDirectory()) f.fail('root.path', `${real} is not a directory`);
  return real;
}

function readNamespaces(f: Fields, v: unknown) {
  const namespaces: NativeOci['namespaces'] = [];
  const joinNamespaces: ContainerPlan['joinNamespaces'] = [];
  f.optArray('linux.namespaces', v).forEach((raw, i) => {
    const field = `linux.namespaces[${i}]`;
    const ns = f.object(field, raw, ['type', 'path']);
    const type = f.string(`${field}.type`, ns.type);
    if (type === 'time')
      f.fail(`${field}.type`, 'time namespaces are not supported by capsule: remove this entry');
    if (!(NS_TYPES as readonly string[]).includes(type))
      f.fail(`${field}.type`, `must be one of ${NS_TYPES.join(', ')}, got ${show(type)}`);
    if (namespaces.some((n) => n.type === type))
      f.fail(`${field}.type`, `${show(type)} is given twice: keep one entry per namespace type`);
    const path = f.optString(`${field}.path`, ns.path, '');
    if (path !== '') {
      f.absolute(`${field}.path`, path);
      joinNamespaces.push({ index: namespaces.length, type: type as NsType, path });
    }
    namespaces.push({ type: type as NsType, fd: -1 });
  });
  return { namespaces, joinNamespaces, has: (t: NsType) => namespaces.some((n) => n.type === t) };
}

function readMappings(f: Fields, field: string, v: unknown) {
  return f.optArray(field, v).map((raw, i) => {
    const m = f.object(`${field}[${i}]`, raw, ['containerID', 'hostID', 'size']);
    return {
      containerID: f.int(`${field}[${i}].containerID`, m.containerID, 0, U32_MAX),
      hostID: f.int(`${field}[${i}].hostID`, m.hostID, 0, U32_MAX),
      size: f.int(`${field}[${i}].size`, m.size, 1, U32_MAX),
    };
  });
}

/** process, read: what the plan takes from it. */
interface OciProcessFields {
  args: string[];
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  umask: number;
  additionalGids: number[];
  rlimits: NativeOptions['rlimits'];
  capabilities: NativeOci['capabilities'];
  noNewPrivileges: boolean;
  oomScoreAdj: number | undefined;
  terminal: boolean;
  consoleSize: { height: number; width: number } | undefined;
}

function readProcess(f: Fields, v: unknown, warnings: string[]): OciProcessFields {
  /*
   * config.md: process is OPTIONAL, and REQUIRED when start is called. Without it the container
   * is created and waits; `start` refuses it (ContainerPlan.hasProcess).
   */
  if (absent(v)) return noProcess();
  const p = f.object('process', v, PROCESS_KEYS);
  for (const k of ['commandLine'])
    f.unsupported(`process.${k}`, p[k], 'is for Windows containers: give process.args');
  for (const [k, what] of [
    ['scheduler', 'scheduling policies (sched_setattr)'],
    ['ioPriority', 'I/O priorities (ioprio_set)'],
    ['execCPUAffinity', 'CPU affinity at exec'],
  ] as const)
    f.unsupported(`process.${k}`, p[k], `${what} are not supported by capsule: remove process.${k}`);
  for (const k of ['apparmorProfile', 'selinuxLabel'])
    f.unsupported(
      `process.${k}`,
      p[k],
      `capsule has no AppArmor or SELinux support: remove process.${k} or leave it empty` +
        (k === 'apparmorProfile' ? ' (or "unconfined": podman --security-opt apparmor=unconfined)' : ''),
      (x) => emptyValue(x) || (k === 'apparmorProfile' && x === 'unconfined'),
    );

  const args = f.strings('process.args', p.args);
  if (args.length === 0 || args[0] === '')
    f.fail('process.args', 'must name the program to run (a non-empty array whose first item is not empty)');
  const env = f.strings('process.env', p.env);
  env.forEach((e, i) => {
    if (e.indexOf('=') <= 0) f.fail(`process.env[${i}]`, `must be KEY=VALUE, got ${show(e)}`);
    if (e.includes('\0')) f.fail(`process.env[${i}]`, 'must not contain a NUL byte');
  });
  const cwd = f.absolute('process.cwd', p.cwd);

  const user =
    f.optObject('process.user', p.user, ['uid', 'gid', 'umask', 'additionalGids', 'username']) ?? {};
  f.unsupported(
    'process.user.username',
    user.username,
    'is for Windows containers: give uid and gid',
    emptyValue,
  );
  const uid = absent(user.uid) ? 0 : f.int('process.user.uid', user.uid, 0, U32_MAX);
  const gid = absent(user.gid) ? 0 : f.int('process.user.gid', user.gid, 0, U32_MAX);
  const umask = absent(user.umask) ? -1 : f.int('process.user.umask', user.umask, 0, 0o777);
  const additionalGids = f
    .optArray('process.user.additionalGids', user.additionalGids)
    .map((g, i) => f.int(`process.user.additionalGids[${i}]`, g, 0, U32_MAX));

  const rlimits: { resource: number; soft: number; hard: number }[] = [];
  f.optArray('process.rlimits', p.rlimits).forEach((raw, i) => {
    const field = `process.rlimits[${i}]`;
    const r = f.object(field, raw, ['type', 'soft', 'hard']);
    const type = f.string(`${field}.type`, r.type);
    const resource = RLIMITS[type];
    if (resource === undefined)
      f.fail(
        `${field}.type`,
        `unknown limit ${show(type)}: expected one of ${Object.keys(RLIMITS).join(', ')}`,
      );
    if (rlimits.some((o) => o.resource === resource))
      f.fail(`${field}.type`, `${type} is given twice: keep one entry per limit`);
    const soft = f.u64(`${field}.soft`, r.soft);
    const hard = f.u64(`${field}.hard`, r.hard);
    if (soft > hard)
      f.fail(
        `${field}.soft`,
        `${soft} is above hard ${hard}: setrlimit(2) refuses a soft limit above the hard one`,
      );
    rlimits.push({ resource, soft, hard });
  });

  let consoleSize: { height: number; width: number } | undefined;
  const cs = f.optObject('process.consoleSize', p.consoleSize, ['height', 'width']);
  if (cs)
    consoleSize = {
      height: f.int('process.consoleSize.height', cs.height, 0, 65535),
      width: f.int('process.consoleSize.width', cs.width, 0, 65535),
    };

  return {
    args,
    env,
    cwd,
    uid,
    gid,
    umask,
    additionalGids,
    rlimits,
    capabilities: readCapabilities(f, p.capabilities, warnings),
    noNewPrivileges: f.bool('process.noNewPrivileges', p.noNewPrivileges),
    oomScoreAdj: f.optInt('process.oomScoreAdj', p.oomScoreAdj, -1000, 1000),
    terminal: f.bool('process.terminal', p.terminal),
    consoleSize,
  };
}

/** A container without `process`: created, never started; nothing to run, no privilege. */
function noProcess(): OciProcessFields {
  return {
    args: [],
    env: [],
    cwd: '/',
    uid: 0,
    gid: 0,
    umask: -1,
    additionalGids: [],
    rlimits: [],
    capabilities: { bounding: [], effective: [], permitted: [], inheritable: [], ambient: [] },
    noNewPrivileges: true,
    oomScoreAdj: undefined,
    terminal: false,
    consoleSize: undefined,
  };
}

function readCapabilities(f: Fields, v: unknown, warnings: string[]): NativeOci['capabilities'] {
  const sets = ['bounding', 'effective', 'permitted', 'inheritable', 'ambient'] as const;
  const c = f.optObject('process.capabilities', v, sets) ?? {};
  const last = capLastCap();
  const out = {} as NativeOci['capabilities'];
  for (const set of sets) {
    const numbers: number[] = [];
    f.strings(`process.capabilities.${set}`, c[set]).forEach((name, i) => {
      const n = capabilityNumber(name);
      if (n === undefined)
        f.fail(
          `process.capabilities.${set}[${i}]`,
          `unknown capability ${show(name)}: names are upper case with the CAP_ prefix, as capabilities(7) lists them (CAP_NET_BIND_SERVICE)`,
        );
      if (n > last) {
        warnings.push(
          `process.capabilities.${set}: ${name} is left out: this kernel's capabilities end at ${last} (/proc/sys/kernel/cap_last_cap)`,
        );
        return;
      }
      if (!numbers.includes(n)) numbers.push(n);
    });
    out[set] = numbers;
  }
  /* capset(2): "the new effective set must be a subset of the new permitted set", else EPERM. */
  const notPermitted = out.effective.find((n) => !out.permitted.includes(n));
  if (notPermitted !== undefined)
    f.fail(
      'process.capabilities.effective',
      `${CAPABILITIES[notPermitted]} is not in process.capabilities.permitted: the kernel refuses an effective capability that is not permitted (capset(2)); add it to permitted or remove it`,
    );
  /* PR_CAP_AMBIENT_RAISE needs the capability in both permitted and inheritable (prctl(2)). */
  const dropped = out.ambient.filter((n) => !out.permitted.includes(n) || !out.inheritable.includes(n));
  if (dropped.length > 0) {
    out.ambient = out.ambient.filter((n) => !dropped.includes(n));
    const names = (c.ambient as string[]).filter((name) => dropped.includes(capabilityNumber(name)!));
    warnings.push(
      `process.capabilities.ambient: ${names.join(', ')} left out: an ambient capability must also be permitted and inheritable (prctl(2) PR_CAP_AMBIENT_RAISE)`,
    );
  }
  return out;
}

/**
 * linux.sysctl: only the namespaced ones, as runc's validator allows (libcontainer/configs/
 * validate): IPC ones with an IPC namespace, net.* with a network namespace that is not the
 * host's, kernel.hostname/domainname with a UTS namespace. Others would change the host.
 */
const IPC_SYSCTLS = new Set([
  'kernel.msgmax',
  'kernel.msgmnb',
  'kernel.msgmni',
  'kernel.sem',
  'kernel.shmall',
  'kernel.shmmax',
  'kernel.shmmni',
  'kernel.shm_rmid_forced',
]);

function readSysctl(
  f: Fields,
  v: unknown,
  has: (t: NsType) => boolean,
  joined: ContainerPlan['joinNamespaces'],
): NativeOci['sysctl'] {
  if (absent(v)) return [];
  if (typeof v !== 'object' || Array.isArray(v)) f.fail('linux.sysctl', `must be an object, got ${show(v)}`);
  return Object.entries(v as Json).map(([rawKey, value]) => {
    const field = `linux.sysctl.${rawKey}`;
    const val = f.string(field, value);
    /* runc takes net/ipv4/ip_forward as well as net.ipv4.ip_forward. */
    const key = rawKey.replaceAll('/', '.');
    if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$/.test(key))
      f.fail(field, 'is not a sysctl name (dotted words, as sysctl(8) writes them)');
    const need = (ns: NsType, what: string) => {
      if (!has(ns))
        f.fail(
          field,
          `is ${what} and can only be set in a namespace of the container's own: add {"type": "${ns}"} to linux.namespaces`,
        );
    };
    if (IPC_SYSCTLS.has(key) || key.startsWith('fs.mqueue.')) need('ipc', 'an IPC namespace setting');
    else if (key === 'kernel.hostname' || key === 'kernel.domainname') need('uts', 'a UTS namespace setting');
    else if (key.startsWith('net.')) {
      need('network', 'a network namespace setting');
      const j = joined.find((n) => n.type === 'network');
      if (j && sameAsHost(j.path, '/proc/self/ns/net'))
        f.fail(
          field,
          `the network namespace to join (${j.path}) is the host's: a net.* sysctl there would change the host`,
        );
    } else
      f.fail(
        field,
        'is not namespaced: setting it in a container would change the host; capsule allows kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, net.*, kernel.hostname and kernel.domainname',
      );
    return { key: rawKey, value: val };
  });
}

/** Is the namespace at `path` this process's own (`self`)? A stat of each: same device and inode. */
function sameAsHost(path: string, self: string): boolean {
  try {
    const a = statSync(path);
    const b = statSync(self);
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    return false; /* create opens it and reports what is wrong */
  }
}

/** S_IFCHR, S_IFBLK, S_IFIFO (inode(7)) per linux.devices type. */
const S_IFMT_OF: Record<string, number> = { c: 0o020000, u: 0o020000, b: 0o060000, p: 0o010000 };

function readDevices(f: Fields, v: unknown): NativeOci['devices'] {
  const seen = new Set<string>();
  return f.optArray('linux.devices', v).map((raw, i) => {
    const field = `linux.devices[${i}]`;
    const d = f.object(field, raw, ['path', 'type', 'major', 'minor', 'fileMode', 'uid', 'gid']);
    const path = f.absolute(`${field}.path`, d.path);
    if (seen.has(path)) f.fail(`${field}.path`, `${path} is given twice`);
    seen.add(path);
    const type = f.string(`${field}.type`, d.type);
    if (type !== 'c' && type !== 'b' && type !== 'u' && type !== 'p')
      f.fail(`${field}.type`, `must be c, b, u or p, got ${show(type)}`);
    /* A FIFO has no device number; the others need both (config-linux.md, "Devices"). */
    const major = type === 'p' && absent(d.major) ? 0 : f.int(`${field}.major`, d.major, 0, 4095);
    const minor = type === 'p' && absent(d.minor) ? 0 : f.int(`${field}.minor`, d.minor, 0, 2 ** 20 - 1);
    /*
     * Permission bits; the file type bits may come too (podman --privileged sends the host
     * device's st_mode, 0o20644), and must then be the device's type, which mknod(2) is given anyway.
     */
    let fileMode = 0o666;
    if (!absent(d.fileMode)) {
      fileMode = f.int(`${field}.fileMode`, d.fileMode, 0, 0o177777);
      const fmt = fileMode & 0o170000;
      if (fmt !== 0 && fmt !== S_IFMT_OF[type])
        f.fail(
          `${field}.fileMode`,
          `0o${fileMode.toString(8)} has the file type bits of another kind of file than type ${show(type)}: give the permission bits only`,
        );
      fileMode &= 0o7777;
    }
    return {
      path,
      type,
      major,
      minor,
      fileMode,
      uid: absent(d.uid) ? 0 : f.int(`${field}.uid`, d.uid, 0, U32_MAX),
      gid: absent(d.gid) ? 0 : f.int(`${field}.gid`, d.gid, 0, U32_MAX),
    };
  });
}

/** cpuset's list format (cgroup-v2.rst, "cpuset.cpus"): "0-3,5,7-8". */
function cpuList(f: Fields, field: string, v: unknown): string | undefined {
  if (absent(v) || v === '') return undefined;
  const s = f.string(field, v);
  for (const part of s.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m || (m[2] !== undefined && Number(m[2]) < Number(m[1])))
      f.fail(field, `must be a list such as "0-3,5" (ranges low-high, separated by commas), got ${show(s)}`);
  }
  return s;
}

function readResources(f: Fields, v: unknown): OciResources {
  const r =
    f.optObject('linux.resources', v, [
      'memory',
      'cpu',
      'pids',
      'devices',
      'blockIO',
      'hugepageLimits',
      'network',
      'rdma',
      'unified',
    ]) ?? {};
  const out: OciResources = { devices: [] };
  const m = f.optObject('linux.resources.memory', r.memory, [
    'limit',
    'reservation',
    'swap',
    'kernel',
    'kernelTCP',
    'swappiness',
    'disableOOMKiller',
    'useHierarchy',
    'checkBeforeUpdate',
  ]);
  if (m) {
    const mem: NonNullable<OciResources['memory']> = {};
    for (const k of ['limit', 'reservation', 'swap', 'kernel'] as const) {
      const n = f.optInt(`linux.resources.memory.${k}`, m[k], -1, Number.MAX_SAFE_INTEGER);
      if (n !== undefined) mem[k] = n;
    }
    f.unsupported(
      'linux.resources.memory.kernelTCP',
      m.kernelTCP,
      'kernel TCP memory limits (v1 memory.kmem.tcp) are not supported by capsule: remove kernelTCP',
    );
    const swappiness = f.optInt('linux.resources.memory.swappiness', m.swappiness, 0, 100);
    if (swappiness !== undefined) mem.swappiness = swappiness;
    if (!absent(m.disableOOMKiller))
      mem.disableOOMKiller = f.bool('linux.resources.memory.disableOOMKiller', m.disableOOMKiller);
    if (!f.bool('linux.resources.memory.useHierarchy', m.useHierarchy, true))
      f.fail(
        'linux.resources.memory.useHierarchy',
        'false is not possible: the kernel always uses the hierarchy (memory.use_hierarchy is 1 since Linux 5.11)',
      );
    if (f.bool('linux.resources.memory.checkBeforeUpdate', m.checkBeforeUpdate))
      f.fail('linux.resources.memory.checkBeforeUpdate', 'is not supported by capsule: remove it');
    out.memory = mem;
  }
  const c = f.optObject('linux.resources.cpu', r.cpu, [
    'shares',
    'quota',
    'burst',
    'period',
    'realtimeRuntime',
    'realtimePeriod',
    'cpus',
    'mems',
    'idle',
  ]);
  if (c) {
    const cpu: NonNullable<OciResources['cpu']> = {};
    const shares = f.optInt('linux.resources.cpu.shares', c.shares, 0, 262144);
    if (shares !== undefined) cpu.shares = shares;
    const quota = f.optInt('linux.resources.cpu.quota', c.quota, I64_MIN, Number.MAX_SAFE_INTEGER);
    if (quota !== undefined) cpu.quota = quota;
    const period = f.optInt('linux.resources.cpu.period', c.period, 0, Number.MAX_SAFE_INTEGER);
    if (period !== undefined) cpu.period = period;
    const rtRuntime = f.optInt(
      'linux.resources.cpu.realtimeRuntime',
      c.realtimeRuntime,
      I64_MIN,
      Number.MAX_SAFE_INTEGER,
    );
    if (rtRuntime !== undefined) cpu.realtimeRuntime = rtRuntime;
    const rtPeriod = f.optInt(
      'linux.resources.cpu.realtimePeriod',
      c.realtimePeriod,
      0,
      Number.MAX_SAFE_INTEGER,
    );
    if (rtPeriod !== undefined) cpu.realtimePeriod = rtPeriod;
    const cpus = cpuList(f, 'linux.resources.cpu.cpus', c.cpus);
    if (cpus !== undefined) cpu.cpus = cpus;
    const mems = cpuList(f, 'linux.resources.cpu.mems', c.mems);
    if (mems !== undefined) cpu.mems = mems;
    f.unsupported(
      'linux.resources.cpu.burst',
      c.burst,
      'CPU burst (cpu.max.burst) is not supported by capsule: remove it',
    );
    f.unsupported(
      'linux.resources.cpu.idle',
      c.idle,
      'SCHED_IDLE cgroups (cpu.idle) are not supported by capsule: remove it',
      (x) => absent(x) || x === 0,
    );
    out.cpu = cpu;
  }
  const pids = f.optObject('linux.resources.pids', r.pids, ['limit']);
  if (pids)
    out.pids = { limit: f.int('linux.resources.pids.limit', pids.limit, I64_MIN, Number.MAX_SAFE_INTEGER) };

  f.optArray('linux.resources.devices', r.devices).forEach((raw, i) => {
    const field = `linux.resources.devices[${i}]`;
    const d = f.object(field, raw, ['allow', 'type', 'major', 'minor', 'access']);
    if (typeof d.allow !== 'boolean')
      f.fail(`${field}.allow`, `is required: true or false, got ${show(d.allow)}`);
    const type = f.optString(`${field}.type`, d.type, 'a');
    if (type !== 'a' && type !== 'c' && type !== 'b')
      f.fail(`${field}.type`, `must be a, c or b, got ${show(type)}`);
    /* Absent, null or -1: any number (runc writes a wildcard as -1). */
    const num = (k: 'major' | 'minor') =>
      absent(d[k]) || d[k] === -1 ? null : f.int(`${field}.${k}`, d[k], 0, U32_MAX);
    const access = f.optString(`${field}.access`, d.access, 'rwm');
    if (!/^[rwm]{0,3}$/.test(access) || new Set(access).size !== access.length)
      f.fail(`${field}.access`, `must be letters of "rwm" (read, write, mknod), got ${show(access)}`);
    out.devices.push({
      allow: d.allow,
      type,
      major: num('major'),
      minor: num('minor'),
      access: access || 'rwm',
    });
  });

  for (const k of ['blockIO', 'network', 'rdma'] as const)
    f.unsupported(
      `linux.resources.${k}`,
      r[k],
      `${k === 'blockIO' ? 'block I/O' : k === 'network' ? 'network class and priority' : 'RDMA'} limits are not supported by capsule: remove linux.resources.${k}`,
      emptyValue,
    );

  const huge = f.optArray('linux.resources.hugepageLimits', r.hugepageLimits);
  if (huge.length > 0)
    out.hugepageLimits = huge.map((raw, i) => {
      const field = `linux.resources.hugepageLimits[${i}]`;
      const h = f.object(field, raw, ['pageSize', 'limit']);
      const pageSize = f.string(`${field}.pageSize`, h.pageSize);
      if (!/^\d+[KMG]B$/.test(pageSize))
        f.fail(`${field}.pageSize`, `must be a size such as "2MB" or "1GB", got ${show(pageSize)}`);
      return { pageSize, limit: f.u64(`${field}.limit`, h.limit) };
    });

  if (!absent(r.unified)) {
    if (typeof r.unified !== 'object' || Array.isArray(r.unified))
      f.fail(
        'linux.resources.unified',
        `must be an object of cgroup v2 file names to values, got ${show(r.unified)}`,
      );
    const unified: Record<string, string> = {};
    for (const [k, val] of Object.entries(r.unified as Json)) {
      if (!/^[a-z0-9_]+\.[a-z0-9_.]+$/.test(k))
        f.fail(
          `linux.resources.unified.${k}`,
          'is not a cgroup v2 interface file name (controller.file, no "/")',
        );
      unified[k] = f.string(`linux.resources.unified.${k}`, val);
    }
    out.unified = unified;
  }
  return out;
}

function readHooks(f: Fields, v: unknown): OciHooks {
  const h = f.optObject('hooks', v, HOOK_KINDS) ?? {};
  const out = {} as OciHooks;
  for (const kind of HOOK_KINDS) {
    out[kind] = f.optArray(`hooks.${kind}`, h[kind]).map((raw, i): OciHook => {
      const field = `hooks.${kind}[${i}]`;
      const hook = f.object(field, raw, ['path', 'args', 'env', 'timeout']);
      const env = f.strings(`${field}.env`, hook.env);
      env.forEach((e, j) => {
        if (e.indexOf('=') <= 0) f.fail(`${field}.env[${j}]`, `must be KEY=VALUE, got ${show(e)}`);
      });
      const timeout = f.optInt(`${field}.timeout`, hook.timeout, 1, Number.MAX_SAFE_INTEGER);
      return {
        path: f.absolute(`${field}.path`, hook.path),
        args: f.strings(`${field}.args`, hook.args),
        env,
        ...(timeout !== undefined ? { timeout } : {}),
      };
    });
  }
  return out;
}

function readAnnotations(f: Fields, v: unknown): Record<string, string> {
  if (absent(v)) return {};
  if (typeof v !== 'object' || Array.isArray(v)) f.fail('annotations', `must be an object, got ${show(v)}`);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v as Json)) {
    if (k === '') f.fail('annotations', 'a key is empty');
    out[k] = f.string(`annotations.${k}`, val);
  }
  return out;
}
