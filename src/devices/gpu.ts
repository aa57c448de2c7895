/**
 * NVIDIA GPUs in a sandbox (`gpus`, `--gpu all|0,1`): which device nodes and driver files a
 * CUDA program needs, found the way libnvidia-container finds them (src/nvc_info.c,
 * src/nvc_mount.c), without NVML, so that it runs without a GPU against a fake root.
 *
 *  - The GPUs: /proc/driver/nvidia/gpus/<PCI bus id>/information, one directory per GPU the
 *    driver drives, each with a `Device Minor:` line, the N of /dev/nvidiaN. Indexes are
 *    given in PCI bus id order, the order nvidia-smi and CUDA_DEVICE_ORDER=PCI_BUS_ID use.
 *    Without that directory, the /dev/nvidiaN nodes, by minor number.
 *  - Nodes every GPU job needs: /dev/nvidiactl (no GPU without it), /dev/nvidia-uvm (CUDA's
 *    unified memory: cudaMalloc fails without it), /dev/nvidia-uvm-tools (driver 570 and
 *    later fail to initialize CUDA without it), /dev/nvidia-modeset, each when present;
 *    /dev/nvidia-caps/* (MIG capabilities) when present.
 *  - The driver's user-space libraries (libcuda.so.1, libnvidia-ml.so.1, ...) and nvidia-smi
 *    must match the loaded kernel module exactly, so the host's are bound read-only over the
 *    copies `capsule rootfs build --include-gpu-libs` put in the rootfs (rootfs-tools/gpu.ts).
 *
 * A CUDA program asks the driver (through /dev/nvidiactl) for every GPU of the machine and
 * opens /dev/nvidiaN for each; those it cannot open it does not use. That is how Docker's GPU
 * selection works too: only the chosen nodes exist in the container.
 */
import { lstatSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';

import { isNvidiaLibraryName, NVIDIA_BINARIES } from '../../rootfs-tools/gpu.js';
import { cacheFlagsFor, parseLdCache } from '../../rootfs-tools/ldcache.js';
import { ConfigError } from '../errors.js';
import { rootfsBind } from './binds.js';
import type { DeviceRequest } from './spec.js';

/** Where discovery looks; tests point these at a temp dir with nodes made by mknod. */
export interface GpuDiscoveryOptions {
  /** The host's /dev. @default '/dev' */
  devRoot?: string;
  /** The host's /proc (for /proc/driver/nvidia/gpus). @default '/proc' */
  procRoot?: string;
  /**
   * Directories to find the driver libraries and utilities in (4 levels deep) instead of the
   * ld.so cache and /usr/bin, /bin, /usr/local/bin. @default the ld.so cache
   */
  libraryRoots?: string[];
  /** The ld.so cache to read. @default '/etc/ld.so.cache' */
  ldCachePath?: string;
}

/** One GPU the driver drives. */
export interface NvidiaGpu {
  /** Position in PCI bus id order, what `--gpu 0,1` selects. */
  index: number;
  /** PCI bus id (`0000:3b:00.0`), '' when found from /dev alone. */
  busId: string;
  /** The N of /dev/nvidiaN. */
  minor: number;
  /** The `Model:` line, '' when unknown. */
  model: string;
}

function fail(message: string): never {
  throw new ConfigError(message, 'gpus');
}

function isCharDevice(path: string): boolean {
  try {
    return statSync(path).isCharacterDevice();
  } catch {
    return false;
  }
}

function label(select: 'all' | readonly number[]): string {
  return `--gpu ${select === 'all' ? 'all' : select.join(',')}`;
}

/** Every GPU of the machine, in index order. */
export function listNvidiaGpus(opts: GpuDiscoveryOptions = {}): NvidiaGpu[] {
  const devRoot = opts.devRoot ?? '/dev';
  const gpusDir = join(opts.procRoot ?? '/proc', 'driver/nvidia/gpus');
  let busIds: string[] = [];
  try {
    busIds = readdirSync(gpusDir).sort();
  } catch {
    // No /proc/driver/nvidia/gpus: fall back to the nodes.
  }
  const gpus: NvidiaGpu[] = [];
  for (const busId of busIds) {
    let info: string;
    try {
      info = readFileSync(join(gpusDir, busId, 'information'), 'utf8');
    } catch {
      continue;
    }
    const minor = /^Device Minor:\s*(\d+)/m.exec(info)?.[1];
    if (minor === undefined) continue;
    const model = /^Model:\s*(.*)$/m.exec(info)?.[1]?.trim() ?? '';
    gpus.push({ index: gpus.length, busId, minor: Number(minor), model });
  }
  if (gpus.length > 0) return gpus;
  let names: string[] = [];
  try {
    names = readdirSync(devRoot);
  } catch {
    return [];
  }
  return names
    .map((n) => /^nvidia(\d+)$/.exec(n)?.[1])
    .filter((m): m is string => m !== undefined && isCharDevice(join(devRoot, `nvidia${m}`)))
    .map(Number)
    .sort((a, b) => a - b)
    .map((minor, index) => ({ index, busId: '', minor, model: '' }));
}

/**
 * The device nodes for the chosen GPUs, as device requests (read-write, at the same path under
 * the sandbox's /dev). @throws ConfigError (option `gpus`) when there is no GPU, an index
 * does not exist, or a chosen GPU has no node.
 */
export function nvidiaDevices(
  select: 'all' | readonly number[],
  opts: GpuDiscoveryOptions = {},
): { gpus: NvidiaGpu[]; devices: DeviceRequest[] } {
  const devRoot = opts.devRoot ?? '/dev';
  const node = (name: string): DeviceRequest => ({
    path: join(devRoot, name),
    sandboxPath: posix.join('/dev', name),
    access: 'rw',
  });
  if (!isCharDevice(join(devRoot, 'nvidiactl'))) {
    fail(
      `${label(select)}: no NVIDIA GPU found (no ${join(devRoot, 'nvidiactl')}): the NVIDIA kernel driver is not loaded ` +
        '(lsmod | grep nvidia; `nvidia-smi` loads it and makes the nodes), or this machine has no NVIDIA GPU',
    );
  }
  const all = listNvidiaGpus(opts);
  if (all.length === 0) {
    fail(
      `${label(select)}: no NVIDIA GPU found: ${join(devRoot, 'nvidiactl')} exists but neither ` +
        `${join(opts.procRoot ?? '/proc', 'driver/nvidia/gpus')} nor ${devRoot}/nvidia0... lists a GPU (run nvidia-smi to see what the driver sees)`,
    );
  }
  let chosen: NvidiaGpu[];
  if (select === 'all') {
    chosen = all;
  } else {
    if (!Array.isArray(select) || select.length === 0)
      fail(`gpus must be 'all' or a non-empty array of GPU indexes`);
    const seen = new Set<number>();
    chosen = select.map((i) => {
      const gpu = all[i];
      if (!Number.isSafeInteger(i) || gpu === undefined) {
        fail(`${label(select)}: no GPU ${String(i)}: this machine has GPUs 0 to ${all.length - 1}`);
      }
      if (seen.has(i)) fail(`${label(select)}: GPU ${i} is asked twice`);
      seen.add(i);
      return gpu;
    });
  }
  const devices = [node('nvidiactl')];
  for (const name of ['nvidia-uvm', 'nvidia-uvm-tools', 'nvidia-modeset']) {
    if (isCharDevice(join(devRoot, name))) devices.push(node(name));
  }
  for (const gpu of chosen) {
    const name = `nvidia${gpu.minor}`;
    if (!isCharDevice(join(devRoot, name))) {
      fail(
        `${label(select)}: GPU ${gpu.index}${gpu.busId ? ` (${gpu.busId})` : ''} has no ${join(devRoot, name)}: ` +
          `make it with \`nvidia-modprobe -c ${gpu.minor}\` (or run nvidia-smi once)`,
      );
    }
    devices.push(node(name));
  }
  let caps: string[] = [];
  try {
    caps = readdirSync(join(devRoot, 'nvidia-caps')).sort();
  } catch {
    // No MIG capabilities on this machine.
  }
  for (const cap of caps) {
    if (isCharDevice(join(devRoot, 'nvidia-caps', cap))) devices.push(node(`nvidia-caps/${cap}`));
  }
  return { gpus: chosen, devices };
}

function scan(dir: string, depth: number, visit: (path: string, name: string) => void): void {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory() && depth > 0) scan(p, depth - 1, visit);
    else if (e.isFile() || e.isSymbolicLink()) visit(p, e.name);
  }
}

/**
 * The host paths of the driver's libraries and utilities, each resolved to the file itself
 * (libcuda.so.1 -> libcuda.so.550.54.15): the rootfs's own symlinks, copied by
 * --include-gpu-libs, then lead to the bound file. Found as rootfs-tools/gpu.ts finds them,
 * synchronously (run()'s options are checked before anything starts).
 */
export function nvidiaDriverFiles(opts: GpuDiscoveryOptions = {}): string[] {
  const found: string[] = [];
  if (opts.libraryRoots && opts.libraryRoots.length > 0) {
    for (const root of opts.libraryRoots) {
      scan(root, 4, (path, name) => {
        if (isNvidiaLibraryName(name) || NVIDIA_BINARIES.includes(name)) found.push(path);
      });
    }
  } else {
    const cache = opts.ldCachePath ?? '/etc/ld.so.cache';
    let buf: Buffer | null = null;
    try {
      buf = readFileSync(cache);
    } catch {
      // No cache: no libraries found, said below.
    }
    const machines: Record<string, number> = { x64: 62, arm64: 183 };
    const flags = cacheFlagsFor(64, machines[process.arch] ?? 62);
    for (const e of buf ? parseLdCache(buf, cache) : []) {
      if (e.hwcap === 0n && (flags === null || e.flags === flags) && isNvidiaLibraryName(e.name)) {
        found.push(e.path);
      }
    }
    for (const dir of ['/usr/bin', '/bin', '/usr/local/bin']) {
      for (const bin of NVIDIA_BINARIES) {
        const p = join(dir, bin);
        if (lstatSync(p, { throwIfNoEntry: false })) found.push(p);
      }
    }
  }
  const real = new Set<string>();
  for (const p of found) {
    try {
      const r = realpathSync(p);
      if (statSync(r).isFile()) real.add(r);
    } catch {
      // A dangling link in the driver's directory: nothing to bind.
    }
  }
  return [...real].sort();
}

/**
 * Read-only binds of the host's driver files over their copies in the rootfs. Each target must
 * be a regular file in the rootfs whose real path stays inside it (mount(2) follows symlinks,
 * so a link in the rootfs could aim a bind anywhere on the host). @throws ConfigError
 */
export function nvidiaDriverBinds(
  rootfs: string,
  rootfsArg: string,
  opts: GpuDiscoveryOptions = {},
): { source: string; target: string; readOnly: true }[] {
  const files = nvidiaDriverFiles(opts);
  if (files.length === 0) {
    const where = opts.libraryRoots?.length
      ? `under ${opts.libraryRoots.join(', ')}`
      : `in the ld.so cache ${opts.ldCachePath ?? '/etc/ld.so.cache'}`;
    fail(
      `--gpu: no NVIDIA driver libraries (libcuda.so.1, libnvidia-ml.so.1, ...) found ${where}: ` +
        'install the driver and run ldconfig, or pass --no-gpu-libs (gpuLibraries: false) to give the devices only',
    );
  }
  return files.map((source) => {
    const b = rootfsBind(
      rootfs,
      rootfsArg,
      source,
      source,
      true,
      'gpus',
      'build the rootfs on this host with `capsule rootfs build --include-gpu-libs` (again after a driver update), ' +
        'or pass --no-gpu-libs (gpuLibraries: false)',
    );
    return { ...b, readOnly: true as const };
  });
}
