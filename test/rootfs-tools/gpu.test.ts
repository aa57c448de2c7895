import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, readlink, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { buildRootfs } from '../../rootfs-tools/build.js';
import { findGpuLibraries, isNvidiaLibraryName } from '../../rootfs-tools/gpu.js';
import { encodeLdCache, readLdCache } from '../../rootfs-tools/ldcache.js';
import { compile, hasGcc, inChroot, isRoot, makeTempDir, removeDir } from './fixtures.js';

const VERSION = '535.104.05';

describe('isNvidiaLibraryName', () => {
  it('matches driver libraries, not the CUDA toolkit', () => {
    expect(isNvidiaLibraryName('libcuda.so.1')).toBe(true);
    expect(isNvidiaLibraryName(`libcuda.so.${VERSION}`)).toBe(true);
    expect(isNvidiaLibraryName('libnvidia-ml.so')).toBe(true);
    expect(isNvidiaLibraryName('libcudart.so.12')).toBe(false);
    expect(isNvidiaLibraryName('libcudnn.so.8')).toBe(false);
  });
});

/**
 * A fake driver and toolkit, built with gcc: libcuda (which needs libnvidia-ptxjitcompiler through
 * its DT_RUNPATH $ORIGIN), libnvidia-ml, nvidia-smi; and a "model server" linked against a
 * toolkit libcudart under opt/cuda/lib64 that dlopen()s libcuda.so.1 the way the real one does.
 */
describe.skipIf(!hasGcc)('GPU libraries from a fake driver tree', () => {
  let tmp: string;
  let driver: string;
  let cuda: string;
  let server: string;
  beforeAll(async () => {
    tmp = await makeTempDir();
    driver = join(tmp, 'driver');
    const lib = join(driver, 'lib');
    cuda = join(tmp, 'opt/cuda/lib64');
    await mkdir(lib, { recursive: true });
    await mkdir(join(driver, 'bin'));
    await mkdir(cuda, { recursive: true });
    const so = (name: string, soname: string, src: string, flags: string[] = []): Promise<string> =>
      compile(join(lib, name), src, ['-shared', '-fPIC', `-Wl,-soname,${soname}`, ...flags]);
    const ptx = await so(
      `libnvidia-ptxjitcompiler.so.${VERSION}`,
      'libnvidia-ptxjitcompiler.so.1',
      'int ptx(void){return 0;}',
    );
    await symlink(`libnvidia-ptxjitcompiler.so.${VERSION}`, join(lib, 'libnvidia-ptxjitcompiler.so.1'));
    await so(
      `libcuda.so.${VERSION}`,
      'libcuda.so.1',
      'int ptx(void); int cuInit(unsigned f){return ptx() + (int)f;}',
      ['-Wl,--enable-new-dtags,-rpath,$ORIGIN', ptx],
    );
    await symlink(`libcuda.so.${VERSION}`, join(lib, 'libcuda.so.1'));
    await symlink('libcuda.so.1', join(lib, 'libcuda.so'));
    await so(`libnvidia-ml.so.${VERSION}`, 'libnvidia-ml.so.1', 'int nvmlInit(void){return 0;}');
    await symlink(`libnvidia-ml.so.${VERSION}`, join(lib, 'libnvidia-ml.so.1'));
    await compile(
      join(driver, 'bin', 'nvidia-smi'),
      '#include <stdio.h>\nint main(void){puts("NVIDIA-SMI fake");return 0;}',
    );
    const cudart = await compile(
      join(cuda, 'libcudart.so.12'),
      '#include <dlfcn.h>\nint cudaInit(void){void*h=dlopen("libcuda.so.1",RTLD_NOW); if(!h) return -1;' +
        ' int(*f)(unsigned)=(int(*)(unsigned))dlsym(h,"cuInit"); return f?f(0):-2;}',
      ['-shared', '-fPIC', '-Wl,-soname,libcudart.so.12', '-ldl'],
    );
    server = await compile(
      join(tmp, 'model-server'),
      '#include <stdio.h>\nint cudaInit(void); int main(void){printf("cuInit=%d\\n", cudaInit());return 0;}',
      [`-Wl,--enable-new-dtags,-rpath,${cuda}`, cudart],
    );
  });
  afterAll(async () => removeDir(tmp));

  it('finds the driver libraries and nvidia-smi under a given root', async () => {
    const found = await findGpuLibraries({ roots: [driver] });
    expect(found.libraries.map((l) => l.name).sort()).toEqual([
      'libcuda.so',
      'libcuda.so.1',
      `libcuda.so.${VERSION}`,
      'libnvidia-ml.so.1',
      `libnvidia-ml.so.${VERSION}`,
      'libnvidia-ptxjitcompiler.so.1',
      `libnvidia-ptxjitcompiler.so.${VERSION}`,
    ]);
    expect(found.binaries).toEqual([join(driver, 'bin', 'nvidia-smi')]);
  });

  it('finds them through an ld.so cache, as the loader would', async () => {
    const cache = join(tmp, 'ld.so.cache');
    await writeFile(
      cache,
      encodeLdCache([
        { name: 'libcuda.so.1', path: join(driver, 'lib', 'libcuda.so.1'), flags: 0x0303 },
        { name: 'libnvidia-ml.so.1', path: join(driver, 'lib', 'libnvidia-ml.so.1'), flags: 0x0303 },
        { name: 'libcuda.so.1', path: '/usr/lib32/libcuda.so.1', flags: 0x0003 }, // i386: not for this ABI
        { name: 'libz.so.1', path: '/lib/x86_64-linux-gnu/libz.so.1', flags: 0x0303 },
      ]),
    );
    const found = await findGpuLibraries({ ldCachePath: cache, binDirs: [] });
    expect(found.libraries).toEqual([
      { name: 'libnvidia-ml.so.1', path: join(driver, 'lib', 'libnvidia-ml.so.1') },
      { name: 'libcuda.so.1', path: join(driver, 'lib', 'libcuda.so.1') },
    ]);
  });

  it('builds a rootfs where a CUDA-style server finds libcuda.so.1 through the rootfs ld.so cache', async () => {
    const box = join(tmp, 'box');
    const r = await buildRootfs({
      dir: box,
      programs: [server],
      include: [cuda],
      gpu: true,
      gpuRoots: [driver],
    });
    expect(r.gpu?.binaries).toEqual([join(driver, 'bin', 'nvidia-smi')]);
    expect(existsSync(join(box, driver, 'lib', `libcuda.so.${VERSION}`))).toBe(true);
    expect(await readlink(join(box, driver, 'lib', 'libcuda.so.1'))).toBe(`libcuda.so.${VERSION}`);
    expect(existsSync(join(box, driver, 'lib', `libnvidia-ptxjitcompiler.so.${VERSION}`))).toBe(true);
    expect(existsSync(join(box, driver, 'bin', 'nvidia-smi'))).toBe(true);
    const cache = await readLdCache(join(box, 'etc/ld.so.cache'));
    expect(cache.find((e) => e.name === 'libcuda.so.1')?.path).toBe(join(driver, 'lib', 'libcuda.so.1'));
    expect(cache.find((e) => e.name === 'libnvidia-ml.so.1')?.path).toBe(
      join(driver, 'lib', 'libnvidia-ml.so.1'),
    );
    if (isRoot) {
      expect(await inChroot(box, [server])).toMatchObject({ stdout: 'cuInit=0\n', exitCode: 0 });
      expect((await inChroot(box, [join(driver, 'bin', 'nvidia-smi')])).stdout).toBe('NVIDIA-SMI fake\n');
    }
  });

  it('without the GPU libraries, the server cannot find libcuda (the failure --include-gpu-libs fixes)', async () => {
    const box = join(tmp, 'box-nogpu');
    await buildRootfs({ dir: box, programs: [server], include: [cuda] });
    if (isRoot) expect((await inChroot(box, [server])).stdout).toBe('cuInit=-1\n');
  });

  it('says clearly when there are none', async () => {
    const empty = join(tmp, 'empty');
    await mkdir(empty);
    await expect(findGpuLibraries({ roots: [empty] })).rejects.toThrow(
      `--include-gpu-libs: no NVIDIA driver libraries (libcuda.so.1, libnvidia-ml.so.1, ...) found under ${empty}`,
    );
    await expect(findGpuLibraries({ roots: [join(tmp, 'nope')] })).rejects.toThrow(
      `GPU library directory ${join(tmp, 'nope')} does not exist`,
    );
    const hostHas = (await readLdCache('/etc/ld.so.cache')).some((e) => isNvidiaLibraryName(e.name));
    if (!hostHas) {
      await expect(buildRootfs({ dir: join(tmp, 'b'), programs: ['/bin/sh'], gpu: true })).rejects.toThrow(
        'found in the ld.so cache /etc/ld.so.cache; install the NVIDIA driver',
      );
      expect(existsSync(join(tmp, 'b'))).toBe(false);
    }
  });
});
