/**
 * The addon's OCI runtime mode (native/oci.cc, init.c "capsule-oci"), driven directly with
 * NativeOptions.oci: the create/start split, config.json's mounts, devices, sysctl, masked and
 * read-only paths, identity, and exec into a running container. The command line over it is
 * tested in test/oci/cli.test.ts; real engines in podman/containerd.test.ts.
 */
import {
  closeSync,
  openSync,
  readlinkSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readSync,
  rmSync,
  symlinkSync,
  mkdirSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { native, type NativeExit, type NativeOci, type NativeOptions } from '../../src/native.js';
import { BUSYBOX } from '../helpers/rootfs.js';

const MS_REC = 16384;
const MS_PRIVATE = 1 << 18;
const RDONLY = 0x1;
const NOSUID = 0x2;
const NODEV = 0x4;
const NOEXEC = 0x8;

let dir: string;
let rootfs: string;
let shared: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'capsule-oci-native-'));
  rootfs = join(dir, 'rootfs');
  shared = join(dir, 'shared');
  mkdirSync(shared);
  for (const d of ['bin', 'proc', 'dev', 'etc']) mkdirSync(join(rootfs, d), { recursive: true });
  writeFileSync(join(rootfs, 'bin/busybox'), readFileSync(BUSYBOX), { mode: 0o755 });
  for (const a of [
    'sh',
    'cat',
    'echo',
    'sleep',
    'hostname',
    'id',
    'ls',
    'stat',
    'grep',
    'touch',
    'readlink',
    'tr',
  ])
    symlinkSync('busybox', join(rootfs, 'bin', a));
  /* An absolute symlink in the rootfs: a mount through it must land inside the rootfs, not on the host's /etc. */
  symlinkSync('/etc', join(rootfs, 'etclink'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function devpts(): NativeOci['mounts'][number] {
  return {
    destination: '/dev/pts',
    type: 'devpts',
    source: 'devpts',
    recursive: false,
    attrs: NOSUID | NOEXEC,
    propagation: 0,
    data: [
      ['newinstance', null],
      ['ptmxmode', '0666'],
      ['mode', '0620'],
    ],
  };
}

function ociOptions(over: Partial<NativeOci> = {}): NativeOci {
  return {
    waitForStart: true,
    namespaces: (['pid', 'mount', 'ipc', 'uts', 'network'] as const).map((type) => ({ type, fd: -1 })),
    uidMappings: [],
    gidMappings: [],
    rootReadonly: false,
    rootPropagation: MS_REC | MS_PRIVATE,
    mounts: [
      {
        destination: '/proc',
        type: 'proc',
        source: 'proc',
        recursive: false,
        attrs: NOSUID | NODEV | NOEXEC,
        propagation: 0,
        data: [],
      },
      {
        destination: '/dev',
        type: 'tmpfs',
        source: 'tmpfs',
        recursive: false,
        attrs: NOSUID,
        propagation: 0,
        data: [
          ['mode', '755'],
          ['size', '65536k'],
        ],
      },
      {
        destination: '/shared',
        type: 'bind',
        source: shared,
        recursive: true,
        attrs: 0,
        propagation: 0,
        data: [],
      },
    ],
    maskedPaths: [],
    readonlyPaths: [],
    sysctl: [],
    devices: [],
    additionalGids: [],
    umask: -1,
    capabilities: { bounding: [], effective: [], permitted: [], inheritable: [], ambient: [] },
    noNewPrivileges: true,
    hostname: '',
    ...over,
  };
}

function options(args: string[], oci: NativeOci, over: Partial<NativeOptions> = {}): NativeOptions {
  return {
    rootfs,
    argv: ['capsule-oci', ...args],
    env: ['PATH=/bin'],
    cwd: '/',
    hostname: '',
    uid: 0,
    gid: 0,
    writableRoot: true,
    tmpSizeBytes: 0,
    devPts: false,
    devShm: false,
    tmpNoexec: false,
    sys: false,
    devShmSizeBytes: 0,
    devNodes: [],
    devices: [],
    binds: [],
    cgroupFds: [],
    rlimits: [],
    stdio: [-1, -1, -1],
    seccompFd: -1,
    trace: false,
    oci,
    ...over,
  };
}

interface Launched {
  pid: number;
  id: number;
  stdio: [number, number, number];
  exit: Promise<NativeExit>;
}

async function launch(o: NativeOptions): Promise<Launched> {
  let done!: (e: NativeExit) => void;
  const exit = new Promise<NativeExit>((resolve) => (done = resolve));
  const r = await native().spawn(o, (e) => done(e));
  return { ...r, exit };
}

/** Everything on a pipe the addon made, once the writer is gone. */
function drain(fd: number): string {
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(65536);
  for (;;) {
    const n = readSync(fd, buf);
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  closeSync(fd);
  return Buffer.concat(chunks).toString();
}

async function finish(l: Launched): Promise<{ exit: NativeExit; stdout: string; stderr: string }> {
  const exit = await l.exit;
  closeSync(l.stdio[0]);
  return { exit, stdout: drain(l.stdio[1]), stderr: drain(l.stdio[2]) };
}

function processState(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[0]!;
  } catch {
    return null;
  }
}

describe('create and start', () => {
  it('create leaves the container waiting before the program; start runs it and its code is the exit code', async () => {
    const marker = join(shared, 'ran');
    const l = await launch(options(['sh', '-c', 'touch /shared/ran; exit 7'], ociOptions()));
    await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(marker)).toBe(false);
    expect(processState(l.pid)).toBe('S');
    process.kill(l.pid, native().startSignal);
    const { exit } = await finish(l);
    expect(exit).toMatchObject({ initCode: 'exited', initStatus: 7 });
    expect(existsSync(marker)).toBe(true);
    rmSync(marker);
  });

  it('with a terminal too, create waits for start', async () => {
    const oci = ociOptions({ mounts: [...ociOptions().mounts, devpts()] });
    const l = await launch(
      options(['sh', '-c', 'touch /shared/tty-ran'], oci, { terminal: { rows: 24, cols: 80 } }),
    );
    await new Promise((r) => setTimeout(r, 200));
    expect(existsSync(join(shared, 'tty-ran'))).toBe(false);
    process.kill(l.pid, native().startSignal);
    const exit = await l.exit;
    for (const fd of [...l.stdio, ...(l as unknown as { terminal: number[] }).terminal])
      if (fd >= 0) closeSync(fd);
    expect(exit.initStatus).toBe(0);
    expect(existsSync(join(shared, 'tty-ran'))).toBe(true);
    rmSync(join(shared, 'tty-ran'));
  });

  it("the container's PID 1 is its program, as under runc", async () => {
    const l = await launch(
      options(['sh', '-c', 'cat /proc/1/comm; echo $$'], ociOptions({ waitForStart: false })),
    );
    const { exit, stdout } = await finish(l);
    expect(exit.initStatus).toBe(0);
    expect(stdout.trim().split('\n')).toEqual(['sh', '1']);
  });

  it('a signal other than start ends a created container with 128 + signal, the program never run', async () => {
    const marker = join(shared, 'never');
    const l = await launch(options(['sh', '-c', 'touch /shared/never'], ociOptions()));
    process.kill(l.pid, 'SIGTERM');
    const { exit } = await finish(l);
    expect(exit).toMatchObject({ initCode: 'exited', initStatus: 128 + 15 });
    expect(existsSync(marker)).toBe(false);
  });

  it('a program missing from PATH fails create with runc words, nothing left running', async () => {
    await expect(launch(options(['no-such-program'], ociOptions()))).rejects.toMatchObject({
      step: 'exec',
      errno: 2,
      detail: '"no-such-program": executable file not found in $PATH',
    });
  });

  it('without waitForStart the program runs at once, and signals from outside are all forwarded', async () => {
    const l = await launch(
      options(
        ['sh', '-c', 'trap "echo got USR1; exit 3" USR1; echo ready; while :; do sleep 0.05; done'],
        ociOptions({ waitForStart: false }),
      ),
    );
    await new Promise((r) => setTimeout(r, 300));
    process.kill(l.pid, 'SIGUSR1');
    const { exit, stdout } = await finish(l);
    expect(stdout).toContain('got USR1');
    expect(exit.initStatus).toBe(3);
  });
});

describe("config.json's choices", () => {
  it('mounts, devices, sysctl, masked and read-only paths, hostname, groups, capabilities', async () => {
    const oci = ociOptions({
      waitForStart: false,
      mounts: [
        ...ociOptions().mounts,
        /* through the rootfs's absolute symlink /etclink -> /etc: inside the rootfs */
        {
          destination: '/etclink/capsule-mounted',
          type: 'tmpfs',
          source: 'tmpfs',
          recursive: false,
          attrs: 0,
          propagation: 0,
          data: [],
        },
        {
          destination: '/ro',
          type: 'bind',
          source: shared,
          recursive: false,
          attrs: RDONLY,
          propagation: 0,
          data: [],
        },
      ],
      devices: [{ path: '/dev/mynull', type: 'c', major: 1, minor: 3, fileMode: 0o600, uid: 12, gid: 13 }],
      sysctl: [{ key: 'net.ipv4.ip_forward', value: '1' }],
      maskedPaths: ['/proc/timer_list', '/proc/no-such-entry'],
      readonlyPaths: ['/proc/sys', '/proc/no-such-dir'],
      hostname: 'oci-box',
      additionalGids: [5, 6],
      capabilities: { bounding: [0, 1], effective: [0], permitted: [0], inheritable: [], ambient: [] },
    });
    const script = [
      'hostname',
      'id',
      'grep -E "^Cap(Prm|Eff|Bnd)" /proc/self/status',
      'cat /proc/sys/net/ipv4/ip_forward',
      'stat -c "%a %u %g %t %T" /dev/mynull',
      'ls /dev',
      'cat /proc/timer_list | wc -c',
      '(echo 0 > /proc/sys/net/ipv4/ip_forward) 2>/dev/null && echo writable || echo read-only',
      '(touch /ro/x) 2>/dev/null && echo ro-writable || echo ro-refused',
      'ls -d /etc/capsule-mounted',
    ].join('; ');
    const l = await launch(options(['sh', '-c', script], oci));
    const { exit, stdout, stderr } = await finish(l);
    expect(stderr).toBe('');
    expect(exit.initStatus).toBe(0);
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toBe('oci-box');
    expect(lines[1]).toBe('uid=0 gid=0 groups=5,6');
    expect(stdout).toMatch(/CapPrm:\s+0000000000000001/);
    expect(stdout).toMatch(/CapEff:\s+0000000000000001/);
    expect(stdout).toMatch(/CapBnd:\s+0000000000000003/);
    expect(lines[5]).toBe('1');
    expect(stdout).toContain('600 12 13 1 3');
    for (const node of ['null', 'zero', 'full', 'random', 'urandom', 'tty', 'fd', 'stdin', 'mynull'])
      expect(stdout).toContain(node);
    expect(stdout).toMatch(/^0$/m); /* timer_list masked: /dev/null */
    expect(stdout).toContain('read-only');
    expect(stdout).toContain('ro-refused');
    expect(stdout).toContain('/etc/capsule-mounted');
    /* The host's /etc got nothing. */
    expect(existsSync('/etc/capsule-mounted')).toBe(false);
    expect(existsSync(join(rootfs, 'etc/capsule-mounted'))).toBe(true);
  });

  it('refuses a mount that a symlink in the rootfs leads into /proc (CVE-2019-19921)', async () => {
    symlinkSync('/proc/sys', join(rootfs, 'procsym'));
    const oci = ociOptions({
      mounts: [
        ...ociOptions().mounts,
        {
          destination: '/procsym/kernel',
          type: 'tmpfs',
          source: 'tmpfs',
          recursive: false,
          attrs: 0,
          propagation: 0,
          data: [],
        },
      ],
    });
    await expect(launch(options(['true'], oci))).rejects.toMatchObject({ step: 'mount_oci', errno: 1 });
    rmSync(join(rootfs, 'procsym'));
  });

  it('refuses a configuration without a mount namespace unless hostMounts says so, naming the field', async () => {
    const oci = ociOptions({ namespaces: [{ type: 'pid', fd: -1 }] });
    await expect(launch(options(['true'], oci))).rejects.toThrow(
      /oci\.namespaces.*mount namespace.*hostMounts/,
    );
    const both = ociOptions({ hostMounts: true });
    await expect(launch(options(['true'], both))).rejects.toThrow(
      /option oci\.hostMounts.*is only for a container without/,
    );
    const shared = ociOptions({
      namespaces: [{ type: 'pid', fd: -1 }],
      hostMounts: true,
      rootPropagation: 0x100000,
    });
    await expect(launch(options(['true'], shared))).rejects.toThrow(
      /option oci\.rootPropagation.*shared or unbindable/,
    );
  });
});

describe('a terminal', () => {
  it('the program gets a pty from the container devpts, also bound over /dev/console', async () => {
    const oci = ociOptions({
      waitForStart: false,
      mounts: [...ociOptions().mounts, devpts()],
    });
    const l = await launch(
      options(
        [
          'sh',
          '-c',
          'readlink /proc/self/fd/0; stat -L -c "%t:%T" /dev/console /proc/self/fd/0; ls -l /dev/ptmx',
        ],
        oci,
        {
          terminal: { rows: 24, cols: 80 },
        },
      ),
    );
    const master = (l as unknown as { terminal: [number, number] }).terminal;
    const exit = await l.exit;
    let out = '';
    const buf = Buffer.alloc(4096);
    for (;;) {
      let n = 0;
      try {
        n = readSync(master[0], buf);
      } catch {
        break; /* EIO: the slave's last holder is gone */
      }
      if (n === 0) break;
      out += buf.subarray(0, n).toString();
    }
    for (const fd of master) if (fd >= 0) closeSync(fd);
    for (const fd of l.stdio) if (fd >= 0) closeSync(fd);
    expect(exit.initStatus).toBe(0);
    const lines = out.trim().split(/\r?\n/);
    expect(lines[0]).toBe('/dev/pts/0');
    expect(lines[1]).toBe(lines[2]); /* /dev/console is the program's own terminal */
    expect(out).toContain('/dev/ptmx -> pts/ptmx');
  });
});

describe('namespaces joined by path', () => {
  it("a PID namespace: the program is forked into it and its pid is the container's", async () => {
    const holder = await launch(options(['sleep', '30'], ociOptions({ waitForStart: false })));
    const pidNs = openSync(`/proc/${holder.pid}/ns/pid`, 'r');
    const oci = ociOptions({
      namespaces: [
        { type: 'pid', fd: pidNs },
        ...(['mount', 'ipc', 'uts', 'network'] as const).map((type) => ({ type, fd: -1 })),
      ],
    });
    const r = await native().spawn(options(['sleep', '30'], oci, { stdio: [0, 1, 2] }), () => {});
    closeSync(pidNs);
    expect(r.containerPid).toBeGreaterThan(0);
    expect(r.containerPid).not.toBe(r.pid);
    const ns = (pid: number) => readlinkSync(`/proc/${pid}/ns/pid`);
    expect(ns(r.containerPid!)).toBe(ns(holder.pid));
    /* Waiting for start: then the program, in the holder's namespace (pid 2 there, after the holder's sleep). */
    process.kill(r.containerPid!, native().startSignal);
    for (
      let i = 0;
      i < 100 && !readFileSync(`/proc/${r.containerPid}/cmdline`, 'utf8').startsWith('sleep');
      i++
    )
      await new Promise((res) => setTimeout(res, 20));
    expect(readFileSync(`/proc/${r.containerPid}/cmdline`, 'utf8')).toBe('sleep\x0030\x00');
    expect(readFileSync(`/proc/${r.containerPid}/status`, 'utf8')).toMatch(/^NSpid:\s+\d+\s+2$/m);
    process.kill(r.containerPid!, 'SIGKILL');
    process.kill(holder.pid, 'SIGKILL');
    await finish(holder);
  });
});

describe('exec into a running container', () => {
  it('joins its namespaces: same hostname, sees its processes, exits with the program code', async () => {
    const container = await launch(
      options(['sh', '-c', 'sleep 30'], ociOptions({ waitForStart: false, hostname: 'joined-box' })),
    );
    const pidfd = native().pidfdOpen(container.pid);
    const exec = await launch(
      options(
        ['sh', '-c', 'hostname; ls /proc | grep -c "^[0-9]"; exit 4'],
        ociOptions({ waitForStart: false, namespaces: [], mounts: [] }),
        {
          join: { pid: container.pid, pidfd, userns: false },
        },
      ),
    );
    closeSync(pidfd);
    const { exit, stdout } = await finish(exec);
    expect(exit.initStatus).toBe(4);
    const [hostname, count] = stdout.trim().split('\n');
    expect(hostname).toBe('joined-box');
    /* capsule-init, sleep, and the exec'd shell (and ls, grep): the container's PID namespace, not the host's. */
    expect(Number(count)).toBeLessThan(10);
    process.kill(container.pid, 'SIGKILL');
    await finish(container);
  });
});
