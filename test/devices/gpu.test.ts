/**
 * `gpus` without a GPU: fake NVIDIA nodes made with mknod in a temp dir (major 195 for
 * nvidiactl and nvidiaN, a made-up major for nvidia-uvm, as its major is dynamic), a fake
 * /proc/driver/nvidia, and fake driver files. Discovery is checked directly, then a sandbox
 * shows from inside that exactly the chosen nodes are there and the driver files are bound.
 * No real GPU was used: whether CUDA runs is not shown here (docs/devices.md).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { detectCgroups } from '../../src/cgroup/detect.js';
import { listNvidiaGpus, nvidiaDevices, nvidiaDriverFiles, resolveDevices } from '../../src/devices/index.js';
import { ConfigError, run } from '../../src/index.js';
import { buildRootfs } from '../../rootfs-tools/index.js';
import { mountCount } from '../helpers/host.js';
import { probeDev } from './helpers.js';

const rootfs = inject('rootfs');
/** A major no driver on this machine registers (dynamic majors end at 511), so opens say ENXIO. */
const UVM_MAJOR = 509;
const CAPS_MAJOR = 508;

let fake: string;
let devRoot: string;
let procRoot: string;

function mknod(path: string, major: number, minor: number) {
  execFileSync('mknod', ['-m', '0666', path, 'c', String(major), String(minor)]);
}

function gpuInfo(model: string, minor: number): string {
  return `Model: \t\t ${model}\nIRQ:   \t\t 95\nGPU UUID: \t GPU-00000000\nVideo BIOS: \t 00.00\nBus Type: \t PCIe\nDMA Size: \t 47 bits\nDMA Mask: \t 0x7fffffffffff\nBus Location: \t 0000:00:00.0\nDevice Minor: \t ${minor}\nGPU Firmware: \t 570.0\nGPU Excluded:\t No\n`;
}

beforeAll(() => {
  fake = mkdtempSync(join(tmpdir(), 'capsule-gpu-'));
  devRoot = join(fake, 'dev');
  procRoot = join(fake, 'proc');
  mkdirSync(join(devRoot, 'nvidia-caps'), { recursive: true });
  mknod(join(devRoot, 'nvidiactl'), 195, 255);
  mknod(join(devRoot, 'nvidia-modeset'), 195, 254);
  // Minors out of bus order on purpose: the index follows the PCI bus id, not the minor.
  mknod(join(devRoot, 'nvidia0'), 195, 0);
  mknod(join(devRoot, 'nvidia1'), 195, 1);
  mknod(join(devRoot, 'nvidia-uvm'), UVM_MAJOR, 0);
  mknod(join(devRoot, 'nvidia-uvm-tools'), UVM_MAJOR, 1);
  mknod(join(devRoot, 'nvidia-caps', 'nvidia-cap1'), CAPS_MAJOR, 1);
  for (const [bus, model, minor] of [
    ['0000:3b:00.0', 'Fake GPU B', 1],
    ['0000:17:00.0', 'Fake GPU A', 0],
  ] as const) {
    mkdirSync(join(procRoot, 'driver/nvidia/gpus', bus), { recursive: true });
    writeFileSync(join(procRoot, 'driver/nvidia/gpus', bus, 'information'), gpuInfo(model, minor));
  }
});
afterAll(() => rmSync(fake, { recursive: true, force: true }));

describe('NVIDIA discovery (fake root)', () => {
  it('lists the GPUs in PCI bus id order with their minors and models', () => {
    expect(listNvidiaGpus({ devRoot, procRoot })).toEqual([
      { index: 0, busId: '0000:17:00.0', minor: 0, model: 'Fake GPU A' },
      { index: 1, busId: '0000:3b:00.0', minor: 1, model: 'Fake GPU B' },
    ]);
  });

  it('without /proc/driver/nvidia, falls back to the /dev/nvidiaN nodes', () => {
    expect(listNvidiaGpus({ devRoot, procRoot: join(fake, 'none') }).map((g) => g.minor)).toEqual([0, 1]);
  });

  it('gives the control nodes, uvm and uvm-tools, modeset, the caps and the chosen GPUs only', () => {
    const targets = (sel: 'all' | number[]) =>
      nvidiaDevices(sel, { devRoot, procRoot }).devices.map((d) => d.sandboxPath);
    expect(targets([1])).toEqual([
      '/dev/nvidiactl',
      '/dev/nvidia-uvm',
      '/dev/nvidia-uvm-tools',
      '/dev/nvidia-modeset',
      '/dev/nvidia1',
      '/dev/nvidia-caps/nvidia-cap1',
    ]);
    expect(targets('all')).toEqual(expect.arrayContaining(['/dev/nvidia0', '/dev/nvidia1']));
  });

  it('says clearly when there is no GPU, or no such GPU', () => {
    let error: unknown;
    try {
      nvidiaDevices('all', { devRoot: join(fake, 'empty'), procRoot });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).option).toBe('gpus');
    expect((error as ConfigError).message).toBe(
      `--gpu all: no NVIDIA GPU found (no ${join(fake, 'empty')}/nvidiactl): the NVIDIA kernel driver is not loaded ` +
        '(lsmod | grep nvidia; `nvidia-smi` loads it and makes the nodes), or this machine has no NVIDIA GPU',
    );
    expect(() => nvidiaDevices([2], { devRoot, procRoot })).toThrow(
      /--gpu 2: no GPU 2: this machine has GPUs 0 to 1/,
    );
    expect(() => nvidiaDevices([0, 0], { devRoot, procRoot })).toThrow(/GPU 0 is asked twice/);
    expect(() => nvidiaDevices([], { devRoot, procRoot })).toThrow(/non-empty/);
    expect(() => resolveDevices({ gpus: 'all', gpuDiscovery: { devRoot: 'dev' } }, '/', 'r')).toThrow(
      /gpuDiscovery must be .* with absolute paths/,
    );
  });

  it('on this machine (no GPU), the default roots give the same clear error', async () => {
    await expect(run({ rootfs, argv: ['/probe', 'exit', '0'], gpus: 'all' })).rejects.toThrow(
      /^--gpu all: no NVIDIA GPU found \(no \/dev\/nvidiactl\)/,
    );
  });
});

describe('gpus in a sandbox (fake nodes)', () => {
  it('has exactly the chosen GPU: its nodes open as far as the (absent) driver; GPU 0 is absent', async () => {
    const mounts = mountCount();
    const { seen, devicesList } = await probeDev(
      { rootfs, gpus: [1], gpuLibraries: false, gpuDiscovery: { devRoot, procRoot } },
      [
        '/dev/nvidiactl',
        '/dev/nvidia1',
        '/dev/nvidia0',
        '/dev/nvidia-uvm',
        '/dev/nvidia-uvm-tools',
        '/dev/nvidia-modeset',
        '/dev/nvidia-caps/nvidia-cap1',
        '/dev/kvm',
      ],
    );
    const numbers = (p: string) => {
      const s = seen.get(p)!;
      return [s.type, s.major, s.minor, s.mode];
    };
    expect(numbers('/dev/nvidiactl')).toEqual(['c', 195, 255, 0o666]);
    expect(numbers('/dev/nvidia1')).toEqual(['c', 195, 1, 0o666]);
    expect(numbers('/dev/nvidia-uvm')).toEqual(['c', UVM_MAJOR, 0, 0o666]);
    expect(numbers('/dev/nvidia-uvm-tools')).toEqual(['c', UVM_MAJOR, 1, 0o666]);
    expect(numbers('/dev/nvidia-modeset')).toEqual(['c', 195, 254, 0o666]);
    expect(numbers('/dev/nvidia-caps/nvidia-cap1')).toEqual(['c', CAPS_MAJOR, 1, 0o666]);
    // Past the mode and the devices cgroup (which would say EACCES or EPERM): no driver has the major.
    for (const p of ['/dev/nvidiactl', '/dev/nvidia1', '/dev/nvidia-uvm']) {
      expect([p, seen.get(p)!.read, seen.get(p)!.write]).toEqual([p, 'ENXIO', 'ENXIO']);
    }
    expect(seen.get('/dev/nvidia0')!.stat).toBe('ENOENT');
    expect(seen.get('/dev/kvm')!.stat).toBe('ENOENT');
    if (detectCgroups().controllers.devices?.version === 1) {
      expect(devicesList).toContain('c 195:1 rwm');
      expect(devicesList).not.toContain('195:0 ');
    }
    expect(mountCount()).toBe(mounts);
  });

  it('turns /dev/shm on for more than one GPU (NCCL)', async () => {
    const r = await run({
      rootfs,
      argv: ['/probe', 'write', '/dev/shm/nccl'],
      gpus: 'all',
      gpuLibraries: false,
      gpuDiscovery: { devRoot, procRoot },
    });
    expect(r.stdout.trim()).toBe('ok');
    const one = await run({
      rootfs,
      argv: ['/probe', 'write', '/dev/shm/nccl'],
      gpus: [0],
      gpuLibraries: false,
      gpuDiscovery: { devRoot, procRoot },
    });
    expect(one.stdout.trim()).not.toBe('ok');
  });
});

describe("the driver's files, bound read-only from the host", () => {
  let libRoot: string;
  let box: string;
  beforeAll(() => {
    // Not under /tmp: the sandbox's /tmp is a tmpfs of its own, so a bind there would be hidden.
    libRoot = mkdtempSync('/var/tmp/capsule-gpulib-');
    chmodSync(libRoot, 0o755);
    mkdirSync(join(libRoot, 'lib'));
    mkdirSync(join(libRoot, 'bin'));
    writeFileSync(join(libRoot, 'lib/libcuda.so.570.1'), 'host driver 570.1\n');
    symlinkSync('libcuda.so.570.1', join(libRoot, 'lib/libcuda.so.1'));
    writeFileSync(join(libRoot, 'lib/libnvidia-ml.so.570.1'), 'host nvml 570.1\n');
    symlinkSync('libnvidia-ml.so.570.1', join(libRoot, 'lib/libnvidia-ml.so.1'));
    writeFileSync(join(libRoot, 'bin/nvidia-smi'), 'host nvidia-smi\n');
    writeFileSync(join(libRoot, 'lib/libcudart.so.12'), 'not the driver\n');
    // A rootfs as --include-gpu-libs leaves it: copies at the same paths, here stale ones.
    box = mkdtempSync(join(tmpdir(), 'capsule-gpubox-'));
    chmodSync(box, 0o755);
    cpSync(rootfs, box, { recursive: true, verbatimSymlinks: true });
    cpSync(libRoot, join(box, libRoot), { recursive: true, verbatimSymlinks: true });
    for (const f of ['lib/libcuda.so.570.1', 'lib/libnvidia-ml.so.570.1', 'bin/nvidia-smi'])
      writeFileSync(join(box, libRoot, f), 'stale copy\n');
  });
  afterAll(() => {
    rmSync(libRoot, { recursive: true, force: true });
    rmSync(box, { recursive: true, force: true });
  });

  it('finds the driver files, resolved to the files themselves, and not the toolkit', () => {
    expect(nvidiaDriverFiles({ libraryRoots: [libRoot] })).toEqual([
      join(libRoot, 'bin/nvidia-smi'),
      join(libRoot, 'lib/libcuda.so.570.1'),
      join(libRoot, 'lib/libnvidia-ml.so.570.1'),
    ]);
  });

  it("the sandbox reads the host's files through the rootfs's links, and cannot write them", async () => {
    const r = await run({
      rootfs: box,
      argv: [
        '/bin/sh',
        '-c',
        `cat ${libRoot}/lib/libcuda.so.1 ${libRoot}/bin/nvidia-smi; /probe write ${libRoot}/lib/libcuda.so.570.1`,
      ],
      gpus: [0],
      gpuDiscovery: { devRoot, procRoot, libraryRoots: [libRoot] },
      uid: 0, // the files' owner, so that only the read-only mount can refuse the write
      hostIds: 'shared', // host root's uid itself: a leased host id would be refused by permissions first
    });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('host driver 570.1\nhost nvidia-smi\nEROFS\n');
  });

  it('a rootfs without the copies is refused, saying how to build one', async () => {
    await expect(
      run({
        rootfs,
        argv: ['/probe', 'exit', '0'],
        gpus: [0],
        gpuDiscovery: { devRoot, procRoot, libraryRoots: [libRoot] },
      }),
    ).rejects.toThrow(
      /^gpus: \S+ has no \S*nvidia-smi to bind \S*nvidia-smi over: build the rootfs on this host with `capsule rootfs build --include-gpu-libs`/,
    );
  });

  it('no driver files at all is refused unless gpuLibraries is false', async () => {
    const empty = join(fake, 'dev'); // a directory without any driver file
    await expect(
      run({
        rootfs,
        argv: ['/probe', 'exit', '0'],
        gpus: [0],
        gpuDiscovery: { devRoot, procRoot, libraryRoots: [empty] },
      }),
    ).rejects.toThrow(/no NVIDIA driver libraries .* found under/);
  });
});

describe('with a rootfs from `capsule rootfs build --include-gpu-libs`', () => {
  let fixtures: string;
  beforeAll(() => {
    // Not under /tmp: the sandbox's /tmp is its own tmpfs (see above).
    fixtures = mkdtempSync('/var/tmp/capsule-gpubuild-');
    chmodSync(fixtures, 0o755);
  });
  afterAll(() => rmSync(fixtures, { recursive: true, force: true }));

  const cc = (out: string, source: string, flags: string[]) => {
    const src = join(fixtures, `${out.replace(/\W/g, '_')}.c`); // not beside a library: it would look like one
    writeFileSync(src, source);
    execFileSync('cc', ['-O2', '-o', out, src, ...flags]);
  };
  const driverLib = (driver: string, value: number) =>
    cc(join(driver, 'libcuda.so.570.1'), `int cuInit(unsigned f){return (int)f + ${value};}`, [
      '-shared',
      '-fPIC',
      '-Wl,-soname,libcuda.so.1',
    ]);

  it("a program that dlopen()s libcuda.so.1 gets the host driver's, not the rootfs's copy", async () => {
    const driver = join(fixtures, 'driver');
    mkdirSync(driver);
    driverLib(driver, 1);
    symlinkSync('libcuda.so.570.1', join(driver, 'libcuda.so.1'));
    const prog = join(fixtures, 'prog');
    cc(
      prog,
      '#include <dlfcn.h>\n#include <stdio.h>\nint main(void){void*h=dlopen("libcuda.so.1",RTLD_NOW);' +
        'if(!h){puts(dlerror());return 1;} int(*f)(unsigned)=(int(*)(unsigned))dlsym(h,"cuInit");' +
        'printf("cuInit=%d\\n", f(0));return 0;}',
      ['-ldl'],
    );
    const box = join(fixtures, 'box');
    await buildRootfs({ dir: box, programs: [prog], gpu: true, gpuRoots: [driver] });
    // The host's driver changes after the rootfs was built (same file name here, new code).
    driverLib(driver, 2);
    const gpuDiscovery = { devRoot, procRoot, libraryRoots: [driver] };
    const stale = await run({ rootfs: box, argv: [prog], gpus: [0], gpuLibraries: false, gpuDiscovery });
    expect(stale.stdout).toBe('cuInit=1\n');
    const bound = await run({ rootfs: box, argv: [prog], gpus: [0], gpuDiscovery });
    expect(bound.stderr).toBe('');
    expect(bound.stdout).toBe('cuInit=2\n');
  });
});
