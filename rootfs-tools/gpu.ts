/**
 * NVIDIA driver user-space libraries, for GPU jobs (`--include-gpu-libs`).
 *
 * CUDA programs link against libcudart from the CUDA toolkit (found like any library, e.g. through
 * DT_RUNPATH or /opt/cuda/lib64 given with --include), but libcudart dlopen(3)s the *driver's*
 * libcuda.so.1, which no DT_NEEDED names. It and its siblings must match the host's kernel module
 * exactly, so they are taken from the host: found through the ld.so cache, as the loader would
 * find them, or under directories given with `gpuRoots` (which replace the cache, for tests and
 * unusual installs). The device nodes (/dev/nvidia*) are the runtime's business, not the rootfs's.
 */
import { readdir, lstat } from 'node:fs/promises';
import { posix } from 'node:path';
import { RootfsError } from './errors.js';
import { cacheFlagsFor, readLdCache } from './ldcache.js';

/** Library name stems of the driver's user-space part (after nvidia-container-toolkit's list). */
export const NVIDIA_LIBRARIES = [
  'libcuda',
  'libcudadebugger',
  'libnvidia-ml',
  'libnvidia-ptxjitcompiler',
  'libnvidia-nvvm',
  'libnvidia-gpucomp',
  'libnvidia-allocator',
  'libnvidia-cfg',
  'libnvidia-opencl',
  'libnvidia-compiler',
  'libnvidia-fatbinaryloader',
  'libnvidia-pkcs11',
  'libnvidia-pkcs11-openssl3',
  'libnvidia-nscq',
  'libnvidia-opticalflow',
  'libnvidia-encode',
  'libnvcuvid',
];

/** Driver utilities added when present. */
export const NVIDIA_BINARIES = ['nvidia-smi', 'nvidia-debugdump', 'nvidia-persistenced'];

/** Options for {@link findGpuLibraries}. */
export interface GpuOptions {
  /**
   * Directories to search (recursively, 4 levels) instead of the ld.so cache and `binDirs`.
   * @default undefined (use the cache)
   */
  roots?: string[];
  /** The ld.so cache to read. @default '/etc/ld.so.cache' */
  ldCachePath?: string;
  /** Where driver utilities are looked for when `roots` is not given. @default ['/usr/bin', '/bin', '/usr/local/bin'] */
  binDirs?: string[];
}

export interface GpuFiles {
  /** Libraries: the name the loader asks for (the cache key) and the path. */
  libraries: Array<{ name: string; path: string }>;
  /** Utilities such as nvidia-smi, when present. */
  binaries: string[];
}

/** True for `libcuda.so`, `libcuda.so.1`, `libcuda.so.535.104.05`, not for `libcudart.so.12`. */
export function isNvidiaLibraryName(name: string): boolean {
  return NVIDIA_LIBRARIES.some((stem) => name === `${stem}.so` || name.startsWith(`${stem}.so.`));
}

function hostAbi(): { bits: 32 | 64; machine: number } {
  const machines: Record<string, number> = { x64: 62, arm64: 183, ppc64: 21, s390x: 22, ia32: 3 };
  return { bits: process.arch === 'ia32' ? 32 : 64, machine: machines[process.arch] ?? 62 };
}

async function scan(dir: string, depth: number, visit: (path: string, name: string) => void): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    const p = posix.join(dir, e.name);
    if (e.isDirectory() && depth > 0) await scan(p, depth - 1, visit);
    else if (e.isFile() || e.isSymbolicLink()) visit(p, e.name);
  }
}

/** Finds the NVIDIA driver's user-space files; throws NO_GPU_LIBS with what to do when there are none. */
export async function findGpuLibraries(options: GpuOptions = {}): Promise<GpuFiles> {
  const found: GpuFiles = { libraries: [], binaries: [] };
  if (options.roots && options.roots.length > 0) {
    for (const root of options.roots) {
      const st = await lstat(root).catch(() => null);
      if (!st?.isDirectory()) {
        throw new RootfsError(
          'ENOENT',
          `GPU library directory ${root} does not exist or is not a directory`,
          {
            path: root,
          },
        );
      }
      await scan(root, 4, (path, name) => {
        if (isNvidiaLibraryName(name)) found.libraries.push({ name, path });
        else if (NVIDIA_BINARIES.includes(name)) found.binaries.push(path);
      });
    }
  } else {
    const cachePath = options.ldCachePath ?? '/etc/ld.so.cache';
    const { bits, machine } = hostAbi();
    const flags = cacheFlagsFor(bits, machine);
    for (const e of await readLdCache(cachePath)) {
      if (e.hwcap === 0n && (flags === null || e.flags === flags) && isNvidiaLibraryName(e.name)) {
        found.libraries.push({ name: e.name, path: e.path });
      }
    }
    for (const dir of options.binDirs ?? ['/usr/bin', '/bin', '/usr/local/bin']) {
      for (const bin of NVIDIA_BINARIES) {
        const p = posix.join(dir, bin);
        if (!found.binaries.some((b) => posix.basename(b) === bin) && (await lstat(p).catch(() => null))) {
          found.binaries.push(p);
        }
      }
    }
  }
  if (found.libraries.length === 0) {
    const where = options.roots?.length
      ? `under ${options.roots.join(', ')}`
      : `in the ld.so cache ${options.ldCachePath ?? '/etc/ld.so.cache'}`;
    throw new RootfsError(
      'NO_GPU_LIBS',
      `--include-gpu-libs: no NVIDIA driver libraries (libcuda.so.1, libnvidia-ml.so.1, ...) found ${where}; ` +
        'install the NVIDIA driver and run ldconfig, or point --gpu-root at the directory that holds them',
    );
  }
  return found;
}
