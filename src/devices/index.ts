/**
 * Devices and GPUs: from run()'s `devices`, `gpus`, `gpuLibraries` and `gpuDiscovery` options to
 * the nodes the addon makes (native/devices.cc), the read-only binds of the GPU driver's files,
 * and the devices cgroup's rules. docs/devices.md says what is enforced where.
 */
import type { CgroupDeviceRule, CgroupLayout, DeviceProgramSetter } from '../cgroup/index.js';
import { ConfigError } from '../errors.js';
import { native } from '../native.js';
import { rootfsBind } from './binds.js';
import { cdiEdits } from './cdi.js';
import { type GpuDiscoveryOptions, nvidiaDevices, nvidiaDriverBinds, type NvidiaGpu } from './gpu.js';
import { checkDeviceTargets, type DeviceRequest, resolveDevice, type ResolvedDevice } from './spec.js';

export {
  type GpuDiscoveryOptions,
  listNvidiaGpus,
  nvidiaDevices,
  nvidiaDriverBinds,
  nvidiaDriverFiles,
  type NvidiaGpu,
} from './gpu.js';
export { CDI_SPEC_DIRS, cdiEdits, type CdiEdits, parseCdiName } from './cdi.js';
export {
  checkDeviceTargets,
  type DeviceAccess,
  deviceMode,
  type DeviceRequest,
  parseDeviceSpec,
  resolveDevice,
  type ResolvedDevice,
} from './spec.js';

/**
 * The cgroup layer's DeviceProgramSetter over the addon (native/devices.cc): `*` is -1 there.
 * Loads the addon only when a v2 sandbox is given devices.
 */
export const setDeviceProgram: DeviceProgramSetter = (dirFd, rules) =>
  native().setDeviceProgram(
    dirFd,
    rules?.map((r) => ({
      ...r,
      major: r.major === '*' ? -1 : r.major,
      minor: r.minor === '*' ? -1 : r.minor,
    })) ?? null,
  );

/** run()'s device options (RunOptions extends this): the devices, GPUs and CDI devices a sandbox gets. */
export interface DeviceOptions {
  /**
   * Host device nodes to give the sandbox, in its /dev: `'/dev/fuse'`, `'/dev/kvm:rw'`,
   * `'/dev/sdb:/dev/disk0:r'`, or `{ path, sandboxPath?, access? }` (access `'r'`, `'w'` or
   * `'rw'`, default `'rw'`). Each becomes a node with the host node's numbers and a mode
   * that is the access asked (0444, 0222, 0666); on cgroup v1 the devices controller also
   * allows exactly these plus the default nodes. docs/devices.md says what is enforced where.
   */
  devices?: readonly (string | DeviceRequest)[];
  /**
   * NVIDIA GPUs to give the sandbox: `'all'` or their indexes (PCI bus order, as nvidia-smi
   * numbers them). Adds /dev/nvidiactl, nvidia-uvm, nvidia-uvm-tools, nvidia-modeset,
   * nvidia-caps/* where present and /dev/nvidiaN of each GPU; binds the host driver's
   * libraries and nvidia-smi read-only (see gpuLibraries); turns devShm on for more than
   * one GPU (NCCL). A ConfigError when the machine has no NVIDIA GPU. @default none
   */
  gpus?: 'all' | readonly number[];
  /**
   * With gpus: bind the host driver's user-space files (libcuda.so.*, libnvidia-ml.so.*,
   * nvidia-smi, ...) read-only over their copies in the rootfs, which must have them at
   * the same paths (`capsule rootfs build --include-gpu-libs`). @default true
   */
  gpuLibraries?: boolean;
  /** With gpus: where to look for the GPUs and driver files (tests use fake roots). */
  gpuDiscovery?: GpuDiscoveryOptions;
  /**
   * CDI devices (`'vendor.com/class=name'`), from the JSON spec files in /etc/cdi and
   * /var/run/cdi: their deviceNodes become `devices`, their bind mounts binds (over paths
   * that exist in the rootfs), their env variables. A spec with hooks, or other edits
   * capsule does not apply, is refused (docs/devices.md). @default none
   */
  cdiDevices?: readonly string[];
  /** Where CDI spec files are read, lowest priority first. @default ['/etc/cdi', '/var/run/cdi'] */
  cdiSpecDirs?: readonly string[];
}

export interface ResolvedDevices {
  devices: ResolvedDevice[];
  /** The GPUs given, in index order; [] without `gpus`. */
  gpus: NvidiaGpu[];
  /** Binds the devices bring: the GPU driver's files (read-only), CDI mounts. */
  binds: { source: string; target: string; readOnly: boolean }[];
  /** `KEY=VALUE` from CDI specs, for the program's environment. */
  env: string[];
}

/** @throws ConfigError naming `devices[i]`, `gpus`, `gpuDiscovery` or `cdiDevices` */
export function resolveDevices(o: DeviceOptions, rootfs: string, rootfsArg: string): ResolvedDevices {
  if (o.devices !== undefined && !Array.isArray(o.devices))
    throw new ConfigError(
      'devices must be an array of device paths or { path, sandboxPath?, access? }',
      'devices',
    );
  const devices = (o.devices ?? []).map((d, i) => resolveDevice(d, `devices[${i}]`));
  let gpus: NvidiaGpu[] = [];
  let binds: ResolvedDevices['binds'] = [];
  if (o.gpus !== undefined) {
    if (o.gpus !== 'all' && !Array.isArray(o.gpus))
      throw new ConfigError(`gpus must be 'all' or an array of GPU indexes, got ${String(o.gpus)}`, 'gpus');
    checkDiscovery(o.gpuDiscovery);
    const found = nvidiaDevices(o.gpus, o.gpuDiscovery);
    gpus = found.gpus;
    for (const req of found.devices) {
      /* A node the caller also gave with --device is theirs (its access wins). */
      if (devices.some((d) => d.target === req.sandboxPath)) continue;
      devices.push(resolveDevice(req, 'gpus'));
    }
    if (o.gpuLibraries !== false) binds = nvidiaDriverBinds(rootfs, rootfsArg, o.gpuDiscovery);
  } else if (o.gpuLibraries !== undefined || o.gpuDiscovery !== undefined) {
    throw new ConfigError(
      'gpuLibraries and gpuDiscovery need gpus',
      o.gpuLibraries !== undefined ? 'gpuLibraries' : 'gpuDiscovery',
    );
  }
  let env: string[] = [];
  if (o.cdiDevices !== undefined) {
    if (!Array.isArray(o.cdiDevices) || o.cdiDevices.some((n) => typeof n !== 'string'))
      throw new ConfigError('cdiDevices must be an array of names like vendor.com/class=name', 'cdiDevices');
    if (
      o.cdiSpecDirs !== undefined &&
      (!Array.isArray(o.cdiSpecDirs) || o.cdiSpecDirs.some((d) => typeof d !== 'string'))
    )
      throw new ConfigError('cdiSpecDirs must be an array of directories', 'cdiSpecDirs');
    const edits = cdiEdits(o.cdiDevices, o.cdiSpecDirs);
    for (const { expect, ...req } of edits.devices) {
      const d = resolveDevice(req, 'cdiDevices');
      /* CDI can name the numbers; capsule makes the host node's, so they must agree. */
      if (
        (expect.type !== undefined && expect.type !== d.type) ||
        (expect.major !== undefined && expect.major !== d.major) ||
        (expect.minor !== undefined && expect.minor !== d.minor)
      ) {
        throw new ConfigError(
          `cdiDevices: the spec gives ${req.sandboxPath} as ${JSON.stringify(expect)}, but ${req.path} on the host is ${d.type} ${d.major}:${d.minor}`,
          'cdiDevices',
        );
      }
      /* The same node from two devices of one vendor (a shared control node) is made once. */
      if (
        devices.some(
          (e) => e.target === d.target && e.major === d.major && e.minor === d.minor && e.access === d.access,
        )
      )
        continue;
      devices.push(d);
    }
    for (const m of edits.mounts) {
      const b = rootfsBind(
        rootfs,
        rootfsArg,
        m.hostPath,
        m.containerPath,
        m.readOnly,
        'cdiDevices',
        'the rootfs must have the mount point the CDI spec names',
      );
      const same = binds.find((e) => e.target === b.target);
      if (same && same.source === b.source && same.readOnly === b.readOnly) continue;
      if (same) {
        throw new ConfigError(
          `cdiDevices: ${b.target} is asked for twice, from ${same.source} and from ${b.source}`,
          'cdiDevices',
        );
      }
      binds.push(b);
    }
    env = edits.env;
  } else if (o.cdiSpecDirs !== undefined) {
    throw new ConfigError('cdiSpecDirs needs cdiDevices', 'cdiSpecDirs');
  }
  checkDeviceTargets(devices, 'devices');
  return { devices, gpus, binds, env };
}

function checkDiscovery(d: GpuDiscoveryOptions | undefined): void {
  if (d === undefined) return;
  const path = (v: unknown) => v === undefined || (typeof v === 'string' && v.startsWith('/'));
  const ok =
    typeof d === 'object' &&
    d !== null &&
    path(d.devRoot) &&
    path(d.procRoot) &&
    path(d.ldCachePath) &&
    (d.libraryRoots === undefined || (Array.isArray(d.libraryRoots) && d.libraryRoots.every((r) => path(r))));
  if (!ok) {
    throw new ConfigError(
      'gpuDiscovery must be { devRoot?, procRoot?, ldCachePath?, libraryRoots? } with absolute paths',
      'gpuDiscovery',
    );
  }
}

/**
 * The devices cgroup's allow list for a sandbox: its default nodes and the devices it was
 * given, each with the access asked, plus /dev/pts's nodes (ptmx 5:2, pts 136:*) with a
 * private devpts. Every rule carries `m`: capsule's child makes these nodes with mknod(2)
 * after it joined the cgroup (the kernel checks mknod against the list too), and once it
 * has dropped CAP_MKNOD no process of the sandbox can use `m` (crun allows `c *:* m` and
 * `b *:* m` for the same reason).
 */
export function deviceCgroupRules(
  defaults: readonly { major: number; minor: number }[],
  devices: readonly ResolvedDevice[],
  devPts: boolean,
): CgroupDeviceRule[] {
  const rules: CgroupDeviceRule[] = defaults.map((n) => ({
    type: 'c',
    major: n.major,
    minor: n.minor,
    access: 'rwm',
  }));
  if (devPts) {
    rules.push(
      { type: 'c', major: 5, minor: 2, access: 'rwm' },
      { type: 'c', major: 136, minor: '*', access: 'rwm' },
    );
  }
  for (const d of devices)
    rules.push({ type: d.type, major: d.major, minor: d.minor, access: `${d.access}m` });
  return rules;
}

/**
 * The `devices` cgroup limit for a sandbox given devices, where cgroups are mounted (the v1
 * devices controller, or a BPF device program on v2); {} otherwise, where the nodes' modes,
 * the mount namespace and the missing CAP_MKNOD do the gating alone (docs/devices.md).
 * Without devices the sandbox has only its default nodes and nothing else it could open, so
 * the extra hierarchy (v1) or program (v2) is not worth its cost per run.
 */
export function deviceCgroupLimits(
  o: {
    devNodes: readonly { major: number; minor: number }[];
    devices: readonly ResolvedDevice[];
    devPts: boolean;
  },
  layout: CgroupLayout,
): { devices?: CgroupDeviceRule[] } {
  if (o.devices.length === 0 || !layout.controllers.devices) return {};
  return { devices: deviceCgroupRules(o.devNodes, o.devices, o.devPts) };
}
