/**
 * config.json's reader: real clients' configs (podman, containerd, runc spec, crun spec,
 * captured on this machine, test/oci/fixtures/) are accepted and mapped sensibly, every error
 * names the field at fault, and nothing unsupported is accepted.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ConfigError } from '../../src/errors.js';
import { capabilityNumber } from '../../src/oci/caps.js';
import { U64_MAX } from '../../src/oci/fields.js';
import { expandCgroupMount, MOUNT_ATTR, MS } from '../../src/oci/mounts.js';
import { readBundle, readConfig } from '../../src/oci/spec.js';
import { normalizeProfile } from '../../src/seccomp/profile.js';

type Config = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const FIXTURES = join(import.meta.dirname, 'fixtures');
let bundle: string;
let rootfs: string;

beforeAll(() => {
  bundle = mkdtempSync(join(tmpdir(), 'capsule-ocispec-'));
  rootfs = join(bundle, 'rootfs');
  mkdirSync(rootfs);
});
afterAll(() => rmSync(bundle, { recursive: true, force: true }));

/** A fixture with root.path pointing at the test's rootfs (the captured one was the engine's). */
function fixture(name: string): Config {
  const c = JSON.parse(readFileSync(join(FIXTURES, name), 'utf8')) as Config;
  c.root.path = rootfs;
  return c;
}

/** The smallest config capsule accepts, to change one field of. */
function minimal(): Config {
  return {
    ociVersion: '1.2.0',
    root: { path: 'rootfs' },
    process: { args: ['/bin/true'], cwd: '/' },
    linux: { namespaces: [{ type: 'mount' }] },
  };
}

function read(c: Config, strict = false) {
  return readConfig(c, bundle, 'test-1', { strict });
}

/** `strict`: unknown properties are errors (see ReadOptions). */
function rejects(edit: (c: Config) => void, message: RegExp, field?: string, strict = false) {
  const c = minimal();
  edit(c);
  let err: unknown;
  try {
    read(c, strict);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ConfigError);
  expect((err as Error).message).toMatch(message);
  expect((err as Error).message).toMatch(/^config\.json: /);
  if (field) expect((err as ConfigError).option).toBe(field);
}

const cap = (name: string) => capabilityNumber(name)!;

describe('real clients', () => {
  it('podman run: mounts, capabilities, namespaces, rlimits, seccomp, resources', () => {
    const plan = read(fixture('podman-run.json'));
    const { native } = plan;
    const oci = native.oci;
    expect(native.rootfs).toBe(rootfs);
    expect(native.argv).toEqual(['capsule-oci', 'echo', 'hi']);
    expect(native.env).toContain('container=podman');
    expect(native.cwd).toBe('/');
    expect(oci.umask).toBe(0o22);
    expect(oci.hostname).toBe('244532c12967');

    expect(oci.mounts.map((m) => m.destination)).toEqual([
      '/proc',
      '/dev',
      '/sys',
      '/dev/pts',
      '/dev/mqueue',
      '/etc/resolv.conf',
      '/etc/hosts',
      '/dev/shm',
      '/run/.containerenv',
      '/etc/hostname',
      '/sys/fs/cgroup',
    ]);
    const byDest = Object.fromEntries(oci.mounts.map((m) => [m.destination, m]));
    const A = MOUNT_ATTR;
    expect(byDest['/proc']).toEqual({
      destination: '/proc',
      type: 'proc',
      source: 'proc',
      recursive: false,
      attrs: A.NOSUID | A.NOEXEC | A.NODEV,
      propagation: 0,
      data: [],
    });
    expect(byDest['/dev']!.attrs).toBe(A.NOSUID | A.NOEXEC | A.STRICTATIME);
    expect(byDest['/dev']!.data).toEqual([
      ['mode', '755'],
      ['size', '65536k'],
    ]);
    expect(byDest['/sys']!.attrs).toBe(A.NOSUID | A.NOEXEC | A.NODEV | A.RDONLY);
    expect(byDest['/dev/pts']!.data).toEqual([
      ['newinstance', null],
      ['ptmxmode', '0666'],
      ['mode', '0620'],
      ['gid', '5'],
    ]);
    expect(byDest['/etc/resolv.conf']).toMatchObject({
      type: 'bind',
      recursive: false,
      propagation: MS.PRIVATE | MS.REC,
      data: [],
    });
    expect(byDest['/etc/resolv.conf']!.source).toMatch(/^\/.*\/userdata\/resolv\.conf$/);
    expect(byDest['/dev/shm']!.attrs).toBe(A.NOSUID | A.NOEXEC | A.NODEV);
    expect(byDest['/sys/fs/cgroup']).toMatchObject({
      type: 'cgroup',
      attrs: A.RDONLY | A.NOSUID | A.NOEXEC | A.NODEV | A.RELATIME,
      data: [],
    });

    const podmanCaps = [
      'CAP_CHOWN',
      'CAP_DAC_OVERRIDE',
      'CAP_FOWNER',
      'CAP_FSETID',
      'CAP_KILL',
      'CAP_NET_BIND_SERVICE',
      'CAP_SETFCAP',
      'CAP_SETGID',
      'CAP_SETPCAP',
      'CAP_SETUID',
      'CAP_SYS_CHROOT',
    ].map(cap);
    expect(oci.capabilities.bounding).toEqual(podmanCaps);
    expect(oci.capabilities.effective).toEqual(podmanCaps);
    expect(oci.capabilities.permitted).toEqual(podmanCaps);
    expect(oci.capabilities.inheritable).toEqual([]);
    expect(oci.capabilities.ambient).toEqual([]);
    expect(plan.warnings).toEqual([]);

    expect(oci.namespaces.map((n) => n.type)).toEqual(['pid', 'network', 'ipc', 'uts', 'mount']);
    expect(oci.namespaces.every((n) => n.fd === -1)).toBe(true);
    expect(plan.joinNamespaces).toEqual([
      { index: 1, type: 'network', path: expect.stringMatching(/^\/run\/netns\/netns-/) },
    ]);
    expect(oci.sysctl).toEqual([{ key: 'net.ipv4.ping_group_range', value: '0 0' }]);
    expect(native.rlimits).toEqual([
      { resource: 7, soft: 20000, hard: 20000 },
      { resource: 6, soft: 32768, hard: 32768 },
    ]);
    expect(oci.rootPropagation).toBe(MS.PRIVATE | MS.REC);
    expect(oci.rootReadonly).toBe(false);
    expect(oci.maskedPaths).toContain('/proc/kcore');
    expect(oci.readonlyPaths).toContain('/proc/sys');

    expect(plan.cgroupsPath).toMatch(/^\/capsule-test\/libpod-/);
    expect(plan.resources.pids).toEqual({ limit: 2048 });
    expect(plan.resources.devices).toEqual([
      { allow: false, type: 'a', major: null, minor: null, access: 'rwm' },
    ]);
    expect(plan.terminal).toBe(false);
    expect(plan.annotations['io.container.manager']).toBe('libpod');

    const seccomp = plan.seccomp!;
    expect(seccomp.defaultAction).toEqual({ kind: 'errno', value: 38 });
    expect(seccomp.badArchAction).toEqual({ kind: 'kill_process', value: 0 });
    expect(seccomp.rules.find((r) => r.syscall === 'kexec_load')?.action).toEqual({
      kind: 'errno',
      value: 1,
    });
    expect(seccomp.rules.some((r) => r.syscall === 'read' && r.action.kind === 'allow')).toBe(true);
    /* The default is ENOSYS already: no stub, as runc. */
    expect(seccomp.enosysAfter).toEqual([]);
  });

  it('podman run -t with limits: terminal, hostname, memory and CPU', () => {
    const plan = read(fixture('podman-run-tty-limits.json'));
    expect(plan.terminal).toBe(true);
    expect(plan.native.hostname).toBe('box1');
    expect(plan.native.oci.hostname).toBe('box1');
    expect(plan.resources.memory).toEqual({ limit: 64 * 1024 * 1024, swap: 128 * 1024 * 1024 });
    expect(plan.resources.cpu).toEqual({ quota: 50000, period: 100000 });
    expect(plan.resources.pids).toEqual({ limit: 100 });
  });

  it('podman run with options: read-only root, user, caps, binds, tmpfs (tmpcopyup), device, sysctl, limits', () => {
    const plan = read(fixture('podman-options.json'));
    const { native } = plan;
    const oci = native.oci;
    expect(oci.rootReadonly).toBe(true);
    expect(native).toMatchObject({ uid: 1000, gid: 1000, cwd: '/tmp', hostname: 'opts' });
    expect(oci.additionalGids).toEqual([1000, 5]);
    const caps = ['CAP_NET_RAW', 'CAP_SYS_PTRACE'].map(cap);
    expect(oci.capabilities).toEqual({
      bounding: caps,
      effective: caps,
      permitted: caps,
      inheritable: caps,
      ambient: caps,
    });
    expect(oci.noNewPrivileges).toBe(true);
    expect(plan.oomScoreAdj).toBe(100);
    const byDest = Object.fromEntries(oci.mounts.map((m) => [m.destination, m]));
    expect(byDest['/data']).toMatchObject({
      type: 'bind',
      source: '/tmp/ocispec-cap/vol',
      recursive: true,
      attrs: MOUNT_ATTR.RDONLY,
      propagation: MS.PRIVATE | MS.REC,
    });
    expect(byDest['/data2']).toMatchObject({
      type: 'bind',
      recursive: true,
      attrs: 0,
      propagation: MS.SHARED | MS.REC,
    });
    /* tmpcopyup with nothing to copy (the test's rootfs is empty): accepted, and not passed on. */
    expect(byDest['/scratch']).toMatchObject({
      type: 'tmpfs',
      attrs: MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV,
      data: [
        ['size', '1m'],
        ['mode', '1777'],
      ],
    });
    expect(byDest['/tmp']!.data).toEqual([]);
    expect(oci.devices).toEqual([
      { path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 0 },
    ]);
    expect(oci.sysctl).toEqual([
      { key: 'kernel.shmmax', value: '1000000' },
      { key: 'net.ipv4.ip_forward', value: '1' },
      { key: 'net.ipv4.ping_group_range', value: '0 0' },
    ]);
    expect(plan.resources.memory).toEqual({
      limit: 100 * 1024 * 1024,
      swap: 200 * 1024 * 1024,
      swappiness: 10,
    });
    expect(plan.resources.cpu).toEqual({ cpus: '0' });
    expect(plan.resources.devices[1]).toEqual({
      allow: true,
      type: 'c',
      major: 10,
      minor: 229,
      access: 'rwm',
    });
  });

  it('podman run --privileged: every host device (st_mode as fileMode), every capability, no masks', () => {
    const plan = read(fixture('podman-privileged.json'));
    const oci = plan.native.oci;
    expect(oci.devices.length).toBeGreaterThan(10);
    expect(oci.devices.every((d) => d.fileMode <= 0o7777)).toBe(true);
    expect(oci.devices.find((d) => d.path === '/dev/autofs')).toMatchObject({
      type: 'c',
      major: 10,
      minor: 235,
      fileMode: 0o644,
    });
    expect(oci.capabilities.bounding).toContain(cap('CAP_SYS_ADMIN'));
    expect(oci.capabilities.bounding.length).toBeGreaterThanOrEqual(40);
    expect(oci.maskedPaths).toEqual([]);
    expect(oci.readonlyPaths).toEqual([]);
    expect(oci.mounts.find((m) => m.destination === '/sys')!.attrs & MOUNT_ATTR.RDONLY).toBe(0);
    expect(plan.seccomp).toBeNull();
    expect(plan.resources.devices).toEqual([
      { allow: true, type: 'a', major: null, minor: null, access: 'rwm' },
    ]);
  });

  it("podman run with the host's pid, network, ipc and uts: only a mount namespace", () => {
    const plan = read(fixture('podman-hostns.json'));
    expect(plan.native.oci.namespaces).toEqual([{ type: 'mount', fd: -1 }]);
    expect(plan.native.oci.hostname).toBe('');
    expect(plan.seccomp).toBeNull();
  });

  it('podman run --uidmap/--gidmap: a user namespace with its mappings', () => {
    const plan = read(fixture('podman-userns.json'));
    expect(plan.native.oci.namespaces.map((n) => n.type)).toContain('user');
    expect(plan.native.oci.uidMappings).toEqual([{ containerID: 0, hostID: 100000, size: 65536 }]);
    expect(plan.native.oci.gidMappings).toEqual([{ containerID: 0, hostID: 100000, size: 65536 }]);
  });

  it('containerd (ctr run): devices rules, cpu shares, a new network namespace, noNewPrivileges', () => {
    const plan = read(fixture('containerd-ctr-run.json'));
    const oci = plan.native.oci;
    expect(oci.noNewPrivileges).toBe(true);
    expect(oci.additionalGids).toEqual([0]);
    expect(oci.umask).toBe(-1);
    expect(plan.joinNamespaces).toEqual([]);
    expect(oci.namespaces.map((n) => n.type)).toEqual(['pid', 'ipc', 'uts', 'mount', 'network']);
    expect(plan.resources.cpu).toEqual({ shares: 1024 });
    expect(plan.resources.devices[0]).toEqual({
      allow: false,
      type: 'a',
      major: null,
      minor: null,
      access: 'rwm',
    });
    expect(plan.resources.devices).toContainEqual({
      allow: true,
      type: 'c',
      major: 136,
      minor: null,
      access: 'rwm',
    });
    expect(plan.resources.devices).toContainEqual({
      allow: true,
      type: 'c',
      major: 1,
      minor: 3,
      access: 'rwm',
    });
    const shm = oci.mounts.find((m) => m.destination === '/dev/shm')!;
    expect(shm).toMatchObject({
      type: 'tmpfs',
      source: 'shm',
      attrs: MOUNT_ATTR.NOSUID | MOUNT_ATTR.NOEXEC | MOUNT_ATTR.NODEV,
    });
    expect(shm.data).toEqual([
      ['mode', '1777'],
      ['size', '65536k'],
    ]);
    expect(plan.seccomp).toBeNull();
    expect(plan.native.argv).toEqual(['capsule-oci', 'echo', 'hi']);
  });

  it("containerd's CRI plugin (kubelet's path): the pause container and a workload joining its namespaces by path", () => {
    const pause = read(fixture('containerd-cri-pause.json'));
    expect(pause.native.argv).toEqual(['capsule-oci', 'sleep', '2147483647']);
    expect(pause.native.oci.hostname).toBe('capsule-pod');
    expect(pause.native.oci.rootReadonly).toBe(true);
    expect(pause.joinNamespaces).toEqual([
      {
        index: 4,
        type: 'network',
        path: expect.stringMatching(/\/io\.containerd\.grpc\.v1\.cri\/netns\/cni-/),
      },
    ]);
    expect(pause.oomScoreAdj).toBe(0);
    expect(pause.resources.cpu).toEqual({ shares: 2 });
    expect(pause.native.oci.mounts.filter((m) => m.destination === '/dev/shm').map((m) => m.type)).toEqual([
      'tmpfs',
      'bind',
    ]);

    const work = read(fixture('containerd-cri-workload.json'));
    expect(work.joinNamespaces.map((j) => [j.type, j.path.replace(/\d+/, 'PID')])).toEqual([
      ['pid', '/proc/PID/ns/pid'],
      ['ipc', '/proc/PID/ns/ipc'],
      ['uts', '/proc/PID/ns/uts'],
      ['network', '/proc/PID/ns/net'],
    ]);
    expect(work.native.oci.namespaces.find((n) => n.type === 'mount')).toEqual({ type: 'mount', fd: -1 });
    expect(work.native.oci.mounts.find((m) => m.destination === '/etc/hosts')).toMatchObject({
      type: 'bind',
      recursive: true,
      propagation: MS.PRIVATE | MS.REC,
    });
    expect(work.native.oci.mounts.find((m) => m.destination === '/sys/fs/cgroup')?.type).toBe('cgroup');
  });

  it('runc spec: the relative rootfs, read-only root, and ambient capabilities the kernel would refuse', () => {
    const c = JSON.parse(readFileSync(join(FIXTURES, 'runc-spec.json'), 'utf8')) as Config;
    const plan = read(c);
    expect(plan.native.rootfs).toBe(rootfs);
    expect(plan.native.oci.rootReadonly).toBe(true);
    expect(plan.native.writableRoot).toBe(false);
    expect(plan.terminal).toBe(true);
    expect(plan.native.argv).toEqual(['capsule-oci', 'sh']);
    const caps = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'].map(cap);
    expect(plan.native.oci.capabilities.bounding).toEqual(caps);
    /* runc spec lists them ambient but not inheritable: PR_CAP_AMBIENT_RAISE would fail. */
    expect(plan.native.oci.capabilities.ambient).toEqual([]);
    expect(plan.warnings).toEqual([
      expect.stringMatching(
        /^process\.capabilities\.ambient: CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE left out/,
      ),
    ]);
    expect(plan.native.oci.mounts.find((m) => m.destination === '/sys')!.attrs).toBe(
      MOUNT_ATTR.NOSUID | MOUNT_ATTR.NOEXEC | MOUNT_ATTR.NODEV | MOUNT_ATTR.RDONLY,
    );
  });

  it('runc spec --rootless: a user namespace with its mappings', () => {
    const c = JSON.parse(readFileSync(join(FIXTURES, 'runc-spec-rootless.json'), 'utf8')) as Config;
    const plan = read(c);
    expect(plan.native.oci.namespaces.map((n) => n.type)).toContain('user');
    expect(plan.native.oci.uidMappings).toEqual([{ containerID: 0, hostID: 0, size: 1 }]);
    const sys = plan.native.oci.mounts.find((m) => m.destination === '/sys')!;
    expect(sys).toMatchObject({ type: 'bind', source: '/sys', recursive: true });
  });

  it('crun spec', () => {
    const c = JSON.parse(readFileSync(join(FIXTURES, 'crun-spec.json'), 'utf8')) as Config;
    const plan = read(c);
    expect(plan.native.rootfs).toBe(rootfs);
    expect(plan.native.oci.mounts.find((m) => m.destination === '/sys/fs/cgroup')?.type).toBe('cgroup');
  });
});

describe('readBundle', () => {
  it('reads BUNDLE/config.json and resolves root.path through symlinks', () => {
    const b = mkdtempSync(join(tmpdir(), 'capsule-ocispec-b-'));
    try {
      mkdirSync(join(b, 'real-root'));
      symlinkSync('real-root', join(b, 'rootfs'));
      writeFileSync(join(b, 'config.json'), JSON.stringify(minimal()));
      const plan = readBundle(b, 'c1');
      expect(plan.bundle).toBe(b);
      expect(plan.native.rootfs).toBe(join(b, 'real-root'));
      expect(plan.native.oci.waitForStart).toBe(true);
      expect(plan.native.oci.umask).toBe(-1);
      expect(plan.native.oci.rootPropagation).toBe(MS.PRIVATE | MS.REC);
      expect(plan.hooks).toEqual({
        prestart: [],
        createRuntime: [],
        createContainer: [],
        startContainer: [],
        poststart: [],
        poststop: [],
      });
    } finally {
      rmSync(b, { recursive: true, force: true });
    }
  });

  it('a missing config.json, bad JSON, a missing or non-directory root are errors that say so', () => {
    const b = mkdtempSync(join(tmpdir(), 'capsule-ocispec-b-'));
    try {
      expect(() => readBundle(b, 'c1')).toThrow(/^config\.json: cannot read .*config\.json: ENOENT/);
      writeFileSync(join(b, 'config.json'), '{"ociVersion": ');
      expect(() => readBundle(b, 'c1')).toThrow(/^config\.json: .* is not valid JSON/);
      writeFileSync(join(b, 'config.json'), JSON.stringify(minimal()));
      expect(() => readBundle(b, 'c1')).toThrow(
        /^config\.json: root\.path: .*rootfs: ENOENT: the root filesystem must exist$/,
      );
      writeFileSync(join(b, 'rootfs'), '');
      expect(() => readBundle(b, 'c1')).toThrow(/^config\.json: root\.path: .*rootfs is not a directory$/);
    } finally {
      rmSync(b, { recursive: true, force: true });
    }
  });

  it('the container id is checked', () => {
    expect(() => readConfig(minimal(), bundle, 'a/b')).toThrow(/container id "a\/b": must be/);
    expect(() => readConfig(minimal(), bundle, '..')).toThrow(ConfigError);
  });
});

describe('mapping', () => {
  it('process: user, env, rlimits (RLIM_INFINITY), oomScoreAdj, consoleSize', () => {
    const c = minimal();
    c.process = {
      args: ['prog', 'a'],
      cwd: '/work',
      env: ['A=1', 'B='],
      user: { uid: 1000, gid: 1001, umask: 0o77, additionalGids: [5, 6] },
      rlimits: [
        { type: 'RLIMIT_CORE', soft: 0, hard: JSON.parse('18446744073709551615') as number },
        { type: 'RLIMIT_NOFILE', soft: 1024, hard: 4096 },
      ],
      oomScoreAdj: -500,
      terminal: true,
      consoleSize: { height: 24, width: 80 },
      apparmorProfile: '',
      selinuxLabel: '',
    };
    const plan = read(c);
    expect(plan.native).toMatchObject({ uid: 1000, gid: 1001, cwd: '/work', env: ['A=1', 'B='] });
    expect(plan.native.argv).toEqual(['capsule-oci', 'prog', 'a']);
    expect(plan.native.oci).toMatchObject({ umask: 0o77, additionalGids: [5, 6] });
    expect(plan.native.rlimits).toEqual([
      { resource: 4, soft: 0, hard: U64_MAX },
      { resource: 7, soft: 1024, hard: 4096 },
    ]);
    expect(plan.oomScoreAdj).toBe(-500);
    expect(plan.consoleSize).toEqual({ height: 24, width: 80 });
  });

  it('namespaces: joined by path, user namespace mappings, hostname and domainname with uts', () => {
    const c = minimal();
    c.hostname = 'h';
    c.domainname = 'example.org';
    c.linux.namespaces = [
      { type: 'user' },
      { type: 'mount' },
      { type: 'network', path: '/var/run/netns/x' },
      { type: 'uts' },
      { type: 'ipc', path: '/proc/77/ns/ipc' },
      { type: 'cgroup' },
      { type: 'pid' },
    ];
    c.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    c.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    c.linux.sysctl = { 'kernel.shmmax': '1000', 'net.ipv4.ip_forward': '1', 'fs.mqueue.msg_max': '20' };
    const plan = read(c);
    expect(plan.joinNamespaces).toEqual([
      { index: 2, type: 'network', path: '/var/run/netns/x' },
      { index: 4, type: 'ipc', path: '/proc/77/ns/ipc' },
    ]);
    expect(plan.native.oci.uidMappings).toEqual([{ containerID: 0, hostID: 100000, size: 65536 }]);
    expect(plan.native.oci.hostname).toBe('h');
    expect(plan.native.oci.sysctl).toEqual([
      { key: 'kernel.shmmax', value: '1000' },
      { key: 'net.ipv4.ip_forward', value: '1' },
      { key: 'fs.mqueue.msg_max', value: '20' },
      { key: 'kernel.domainname', value: 'example.org' },
    ]);
  });

  it('devices: defaults for fileMode, uid and gid; FIFOs need no numbers', () => {
    const c = minimal();
    c.linux.devices = [
      { path: '/dev/fuse', type: 'c', major: 10, minor: 229 },
      { path: '/dev/sda', type: 'b', major: 8, minor: 0, fileMode: 0o600, uid: 5, gid: 6 },
      { path: '/dev/fifo', type: 'p' },
    ];
    expect(read(c).native.oci.devices).toEqual([
      { path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 0 },
      { path: '/dev/sda', type: 'b', major: 8, minor: 0, fileMode: 0o600, uid: 5, gid: 6 },
      { path: '/dev/fifo', type: 'p', major: 0, minor: 0, fileMode: 0o666, uid: 0, gid: 0 },
    ]);
  });

  it('resources: memory, cpu, hugepages, unified, device wildcards', () => {
    const c = minimal();
    c.linux.resources = {
      memory: {
        limit: 1 << 30,
        reservation: -1,
        swappiness: 10,
        disableOOMKiller: false,
        useHierarchy: true,
      },
      cpu: { shares: 512, quota: -1, period: 100000, cpus: '0-3,5', mems: '0', realtimeRuntime: 0 },
      hugepageLimits: [{ pageSize: '2MB', limit: 1 << 21 }],
      unified: { 'memory.high': '1G' },
      devices: [{ allow: true, type: 'c', major: -1, minor: 3, access: 'rw' }],
      blockIO: {},
      network: { classID: null, priorities: [] },
    };
    const r = read(c).resources;
    expect(r.memory).toEqual({ limit: 1 << 30, reservation: -1, swappiness: 10, disableOOMKiller: false });
    expect(r.cpu).toEqual({
      shares: 512,
      quota: -1,
      period: 100000,
      cpus: '0-3,5',
      mems: '0',
      realtimeRuntime: 0,
    });
    expect(r.hugepageLimits).toEqual([{ pageSize: '2MB', limit: 1 << 21 }]);
    expect(r.unified).toEqual({ 'memory.high': '1G' });
    expect(r.devices).toEqual([{ allow: true, type: 'c', major: null, minor: 3, access: 'rw' }]);
    expect(r.blockIO).toBeUndefined();
  });

  it('hooks of every kind, annotations, rootfsPropagation, masked and read-only paths', () => {
    const c = minimal();
    const hook = { path: '/usr/bin/hook', args: ['hook', 'x'], env: ['K=v'], timeout: 5 };
    c.hooks = {
      prestart: [hook],
      createRuntime: [hook],
      createContainer: [{ path: '/h' }],
      startContainer: [],
      poststart: [hook],
      poststop: [hook],
    };
    c.annotations = { a: 'b' };
    c.linux.rootfsPropagation = 'rslave';
    c.linux.maskedPaths = ['/proc/kcore'];
    c.linux.readonlyPaths = ['/proc/sys'];
    const plan = read(c);
    expect(plan.hooks.prestart).toEqual([hook]);
    expect(plan.hooks.createContainer).toEqual([{ path: '/h', args: [], env: [] }]);
    expect(plan.annotations).toEqual({ a: 'b' });
    expect(plan.native.oci.rootPropagation).toBe(MS.SLAVE | MS.REC);
    expect(plan.native.oci.maskedPaths).toEqual(['/proc/kcore']);
    expect(plan.native.oci.readonlyPaths).toEqual(['/proc/sys']);
  });

  it('mounts: flags become attributes and propagation, the rest is fsconfig data, the last of a pair wins', () => {
    const c = minimal();
    c.mounts = [
      {
        destination: '/a',
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['ro', 'rw', 'nosuid', 'suid', 'noexec', 'size=1m', 'noswap'],
      },
      {
        destination: '/b/../c/',
        type: 'none',
        source: 'data',
        options: ['rbind', 'ro', 'rslave', 'nosymfollow'],
      },
      {
        destination: '/d',
        source: '/abs',
        options: ['bind', 'noatime', 'nodiratime', 'defaults', 'shared', 'private'],
      },
      { destination: '/e', type: 'bind', source: '/x' },
      { destination: '/f', type: 'mqueue', source: 'mqueue' },
    ];
    const m = read(c).native.oci.mounts;
    expect(m[0]).toEqual({
      destination: '/a',
      type: 'tmpfs',
      source: 'tmpfs',
      recursive: false,
      attrs: MOUNT_ATTR.NOEXEC,
      propagation: 0,
      data: [
        ['size', '1m'],
        ['noswap', null],
      ],
    });
    expect(m[1]).toEqual({
      destination: '/c',
      type: 'bind',
      source: join(bundle, 'data'),
      recursive: true,
      attrs: MOUNT_ATTR.RDONLY | MOUNT_ATTR.NOSYMFOLLOW,
      propagation: MS.SLAVE | MS.REC,
      data: [],
    });
    expect(m[2]).toMatchObject({
      type: 'bind',
      source: '/abs',
      recursive: false,
      attrs: MOUNT_ATTR.NOATIME | MOUNT_ATTR.NODIRATIME,
      propagation: MS.PRIVATE,
    });
    expect(m[3]).toMatchObject({ type: 'bind', source: '/x', recursive: false, attrs: 0 });
    expect(m[4]).toMatchObject({ type: 'mqueue', source: 'mqueue', data: [] });
  });

  it('a cgroup mount expands, once the cgroup is known, as runc mounts it', () => {
    const m = read({
      ...minimal(),
      mounts: [
        {
          destination: '/sys/fs/cgroup',
          type: 'cgroup',
          source: 'cgroup',
          options: ['ro', 'nosuid', 'rprivate'],
        },
      ],
    }).native.oci.mounts[0]!;
    const A = MOUNT_ATTR;
    const hard = A.NOSUID | A.NODEV | A.NOEXEC;
    expect(expandCgroupMount(m, { mode: 'v2', dir: '/sys/fs/cgroup/x', cgroupNamespace: true })).toEqual([
      { ...m, type: 'cgroup2', source: 'cgroup2', data: [] },
    ]);
    expect(expandCgroupMount(m, { mode: 'v2', dir: '/sys/fs/cgroup/x', cgroupNamespace: false })).toEqual([
      { ...m, type: 'bind', source: '/sys/fs/cgroup/x', recursive: false, data: [] },
    ]);
    expect(
      expandCgroupMount(m, {
        mode: 'v1',
        hierarchies: [
          { name: 'memory', dir: '/sys/fs/cgroup/memory/x' },
          { name: 'pids', dir: '/sys/fs/cgroup/pids/x' },
        ],
      }),
    ).toEqual([
      {
        destination: '/sys/fs/cgroup',
        type: 'tmpfs',
        source: 'tmpfs',
        recursive: false,
        attrs: hard,
        propagation: MS.PRIVATE | MS.REC,
        data: [['mode', '755']],
      },
      {
        destination: '/sys/fs/cgroup/memory',
        type: 'bind',
        source: '/sys/fs/cgroup/memory/x',
        recursive: false,
        attrs: A.RDONLY | hard,
        propagation: 0,
        data: [],
      },
      {
        destination: '/sys/fs/cgroup/pids',
        type: 'bind',
        source: '/sys/fs/cgroup/pids/x',
        recursive: false,
        attrs: A.RDONLY | hard,
        propagation: 0,
        data: [],
      },
    ]);
  });
});

describe('errors name the field and say what to do', () => {
  it('a property the spec does not define is ignored with a warning naming it (config.md, "Extensibility")', () => {
    const c = minimal();
    c.unknown = 'unknown';
    c.process.noNewPrivilges = true;
    c.linux.seccomp = {
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [{ names: ['mount'], action: 'SCMP_ACT_ERRNO', note: 1 }],
    };
    const plan = read(c);
    expect(plan.native.oci.noNewPrivileges).toBe(false);
    expect(plan.warnings).toEqual([
      expect.stringMatching(/^config\.json: unknown: unknown property, ignored as the runtime spec requires/),
      expect.stringMatching(
        /^config\.json: process\.noNewPrivilges: unknown property, ignored .*check its spelling/,
      ),
      expect.stringMatching(/^config\.json: linux\.seccomp\.syscalls\[0\]\.note: unknown property, ignored/),
    ]);
  });

  it('the top level', () => {
    rejects(
      (c) => (c.ociVersion = '2.0.0'),
      /^config\.json: ociVersion: must be a 1\.x version/,
      'ociVersion',
    );
    rejects((c) => (c.procss = {}), /^config\.json: procss: unknown field/, 'procss', true);
    rejects((c) => (c.windows = { layerFolders: [] }), /^config\.json: windows: is for another platform/);
    rejects((c) => (c.vm = { kernel: { path: '/k' } }), /^config\.json: vm: /);
    rejects((c) => delete c.linux, /^config\.json: linux: is required/);
    /* process is OPTIONAL for create (config.md), REQUIRED for start: the plan says it has none. */
    const noProcess = minimal();
    delete noProcess.process;
    expect(read(noProcess)).toMatchObject({ hasProcess: false, native: { argv: ['capsule-oci'] } });
    expect(read(minimal()).hasProcess).toBe(true);
    rejects((c) => (c.root.extra = 1), /^config\.json: root\.extra: unknown field/, undefined, true);
  });

  it('process', () => {
    rejects((c) => (c.process.args = []), /process\.args: must name the program/);
    rejects((c) => (c.process.cwd = 'work'), /process\.cwd: must be an absolute path, got "work"/);
    rejects((c) => (c.process.env = ['NOEQUALS']), /process\.env\[0\]: must be KEY=VALUE/);
    rejects(
      (c) => (c.process.user = { uid: -1 }),
      /process\.user\.uid: must be an integer from 0 to 4294967295, got -1/,
    );
    rejects(
      (c) => (c.process.user = { uid: 0, gid: 0, umask: 0o1000 }),
      /process\.user\.umask: must be an integer from 0 to 511/,
    );
    rejects((c) => (c.process.user = { username: 'bob' }), /process\.user\.username: is for Windows/);
    rejects(
      (c) => (c.process.apparmorProfile = 'docker-default'),
      /process\.apparmorProfile: capsule has no AppArmor or SELinux support/,
      'process.apparmorProfile',
    );
    rejects((c) => (c.process.selinuxLabel = 'system_u:system_r:container_t:s0'), /process\.selinuxLabel: /);
    rejects(
      (c) => (c.process.scheduler = { policy: 'SCHED_FIFO' }),
      /process\.scheduler: scheduling policies/,
    );
    rejects((c) => (c.process.ioPriority = { class: 'IOPRIO_CLASS_IDLE' }), /process\.ioPriority: /);
    rejects((c) => (c.process.execCPUAffinity = { initial: '0' }), /process\.execCPUAffinity: /);
    rejects(
      (c) => (c.process.oomScoreAdj = 1001),
      /process\.oomScoreAdj: must be an integer from -1000 to 1000/,
    );
    rejects((c) => (c.process.terminal = 'yes'), /process\.terminal: must be true or false, got "yes"/);
    rejects(
      (c) => (c.process.consoleSize = { height: 1 }),
      /process\.consoleSize\.width: must be an integer/,
    );
  });

  it('rlimits', () => {
    rejects(
      (c) => (c.process.rlimits = [{ type: 'RLIMIT_BOGUS', soft: 1, hard: 1 }]),
      /process\.rlimits\[0\]\.type: unknown limit "RLIMIT_BOGUS"/,
    );
    rejects(
      (c) => (c.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 2, hard: 1 }]),
      /process\.rlimits\[0\]\.soft: 2 is above hard 1/,
    );
    rejects(
      (c) =>
        (c.process.rlimits = [
          { type: 'RLIMIT_NOFILE', soft: 1, hard: 1 },
          { type: 'RLIMIT_NOFILE', soft: 1, hard: 1 },
        ]),
      /process\.rlimits\[1\]\.type: RLIMIT_NOFILE is given twice/,
    );
    rejects(
      (c) => (c.process.rlimits = [{ type: 'RLIMIT_AS', soft: 'x', hard: 1 }]),
      /process\.rlimits\[0\]\.soft: must be an integer >= 0, got "x"/,
    );
    rejects(
      (c) => (c.process.rlimits = [{ type: 'RLIMIT_AS', soft: 1, hard: 2 ** 60 }]),
      /process\.rlimits\[0\]\.hard: .* too large to read exactly/,
    );
  });

  it('capabilities', () => {
    rejects(
      (c) => (c.process.capabilities = { bounding: ['CAP_NOPE'] }),
      /process\.capabilities\.bounding\[0\]: unknown capability "CAP_NOPE"/,
    );
    rejects(
      (c) => (c.process.capabilities = { bounding: ['cap_kill'] }),
      /unknown capability "cap_kill": names are upper case/,
    );
    rejects(
      (c) => (c.process.capabilities = { effective: ['CAP_KILL'], permitted: [] }),
      /process\.capabilities\.effective: CAP_KILL is not in process\.capabilities\.permitted: the kernel refuses/,
    );
    rejects(
      (c) => (c.process.capabilities = { all: [] }),
      /process\.capabilities\.all: unknown field/,
      undefined,
      true,
    );
  });

  it('namespaces and mappings', () => {
    rejects(
      (c) => c.linux.namespaces.push({ type: 'time' }),
      /linux\.namespaces\[1\]\.type: time namespaces are not supported/,
    );
    rejects(
      (c) => c.linux.namespaces.push({ type: 'net' }),
      /linux\.namespaces\[1\]\.type: must be one of pid, network, mount, ipc, uts, cgroup, user, got "net"/,
    );
    rejects(
      (c) => c.linux.namespaces.push({ type: 'mount' }),
      /linux\.namespaces\[1\]\.type: "mount" is given twice/,
    );
    rejects(
      (c) => c.linux.namespaces.push({ type: 'pid', path: 'proc/1/ns/pid' }),
      /linux\.namespaces\[1\]\.path: must be an absolute path/,
    );
    /* No mount namespace: the host's, as runc and crun take it, said in a warning; never a propagation. */
    const hostMounts = minimal();
    hostMounts.linux.namespaces = [{ type: 'pid' }];
    const hp = read(hostMounts);
    expect(hp.native.oci.hostMounts).toBe(true);
    expect(hp.warnings.join('\n')).toMatch(/no mount namespace: the container shares the host's.*chroot/);
    delete hostMounts.linux.namespaces;
    expect(read(hostMounts).native.oci.hostMounts).toBe(true);
    expect(read(minimal()).native.oci.hostMounts).toBeUndefined();
    rejects((c) => {
      c.linux.namespaces = [{ type: 'pid' }];
      c.linux.rootfsPropagation = 'shared';
    }, /linux\.rootfsPropagation: needs a mount namespace of the container's own/);
    const joined = minimal();
    joined.linux.namespaces = [{ type: 'mount', path: '/proc/1/ns/mnt' }];
    expect(read(joined).joinNamespaces).toEqual([{ index: 0, type: 'mount', path: '/proc/1/ns/mnt' }]);
    rejects(
      (c) => c.linux.namespaces.push({ type: 'user' }),
      /linux\.uidMappings: a new user namespace needs uidMappings and gidMappings/,
    );
    rejects(
      (c) => (c.linux.gidMappings = [{ containerID: 0, hostID: 1000, size: 1 }]),
      /linux\.gidMappings: mappings are only for a new user namespace/,
    );
    rejects((c) => (c.hostname = 'h'), /hostname: needs a UTS namespace of its own/, 'hostname');
    rejects((c) => (c.domainname = 'd'), /domainname: needs a UTS namespace of its own/);
  });

  it('sysctl: only namespaced ones, each with its namespace', () => {
    rejects(
      (c) => (c.linux.sysctl = { 'vm.swappiness': '1' }),
      /linux\.sysctl\.vm\.swappiness: is not namespaced/,
      'linux.sysctl.vm.swappiness',
    );
    rejects(
      (c) => (c.linux.sysctl = { 'kernel.shmmax': '1' }),
      /linux\.sysctl\.kernel\.shmmax: is an IPC namespace setting .* add \{"type": "ipc"\}/,
    );
    rejects(
      (c) => (c.linux.sysctl = { 'fs.mqueue.msg_max': '1' }),
      /fs\.mqueue\.msg_max: is an IPC namespace setting/,
    );
    rejects(
      (c) => (c.linux.sysctl = { 'net.ipv4.ip_forward': '1' }),
      /net\.ipv4\.ip_forward: is a network namespace setting/,
    );
    rejects(
      (c) => (c.linux.sysctl = { 'kernel.hostname': 'x' }),
      /kernel\.hostname: is a UTS namespace setting/,
    );
    rejects((c) => {
      c.linux.namespaces.push({ type: 'network', path: '/proc/self/ns/net' });
      c.linux.sysctl = { 'net.ipv4.ip_forward': '1' };
    }, /net\.ipv4\.ip_forward: the network namespace to join \(\/proc\/self\/ns\/net\) is the host's/);
    rejects(
      (c) => (c.linux.sysctl = { 'kernel.shmmax': 1 }),
      /linux\.sysctl\.kernel\.shmmax: must be a string, got 1/,
    );
  });

  it('linux sections capsule does not support', () => {
    rejects(
      (c) => (c.linux.intelRdt = { closID: 'x' }),
      /linux\.intelRdt: Intel RDT .* not supported/,
      'linux.intelRdt',
    );
    rejects(
      (c) => (c.linux.personality = { domain: 'LINUX32' }),
      /linux\.personality\.domain: "LINUX32" is not supported/,
    );
    rejects(
      (c) => (c.linux.personality = { domain: 'LINUX', flags: ['ADDR_NO_RANDOMIZE'] }),
      /linux\.personality\.flags: /,
    );
    rejects(
      (c) => (c.linux.timeOffsets = { monotonic: { secs: 1 } }),
      /linux\.timeOffsets: time namespaces are not supported/,
    );
    rejects(
      (c) => (c.linux.mountLabel = 'system_u:object_r:container_file_t:s0'),
      /linux\.mountLabel: SELinux labels/,
    );
    rejects((c) => (c.linux.memoryPolicy = { mode: 'MPOL_BIND' }), /linux\.memoryPolicy: /);
    rejects((c) => (c.linux.netDevices = { eth1: {} }), /linux\.netDevices: /);
    rejects(
      (c) => (c.linux.cgroupsPath = 'system.slice:capsule:abc'),
      /linux\.cgroupsPath: .* is a systemd unit/,
    );
    rejects((c) => (c.linux.cgroupsPath = '/a/../b'), /linux\.cgroupsPath: must not contain '\.\.'/);
    rejects(
      (c) => (c.linux.rootfsPropagation = 'recursive'),
      /linux\.rootfsPropagation: must be one of private, rprivate/,
    );
    rejects(
      (c) => (c.linux.maskedPaths = ['proc/kcore']),
      /linux\.maskedPaths\[0\]: must be an absolute path/,
    );
    /* The accepted no-op values. */
    const c = minimal();
    c.linux.personality = { domain: 'LINUX' };
    c.linux.mountLabel = '';
    c.linux.timeOffsets = {};
    expect(() => read(c)).not.toThrow();
  });

  it('resources', () => {
    const res = (r: unknown) => (c: Config) => (c.linux.resources = r);
    rejects(
      res({ memory: { limit: 'x' } }),
      /^config\.json: linux\.resources\.memory\.limit: must be an integer >= -1, got "x"$/,
      'linux.resources.memory.limit',
    );
    rejects(
      res({ memory: { kernelTCP: 1 } }),
      /linux\.resources\.memory\.kernelTCP: kernel TCP memory limits/,
    );
    rejects(
      res({ memory: { swappiness: 101 } }),
      /linux\.resources\.memory\.swappiness: must be an integer from 0 to 100/,
    );
    rejects(
      res({ memory: { useHierarchy: false } }),
      /linux\.resources\.memory\.useHierarchy: false is not possible/,
    );
    rejects(res({ cpu: { cpus: '3-1' } }), /linux\.resources\.cpu\.cpus: must be a list such as "0-3,5"/);
    rejects(res({ cpu: { mems: 'all' } }), /linux\.resources\.cpu\.mems: must be a list/);
    rejects(res({ cpu: { burst: 1000 } }), /linux\.resources\.cpu\.burst: /);
    rejects(res({ cpu: { idle: 1 } }), /linux\.resources\.cpu\.idle: /);
    rejects(
      res({ blockIO: { weight: 100 } }),
      /linux\.resources\.blockIO: block I\/O limits are not supported/,
    );
    rejects(res({ network: { classID: 5 } }), /linux\.resources\.network: /);
    rejects(res({ rdma: { mlx5_1: { hcaHandles: 3 } } }), /linux\.resources\.rdma: /);
    rejects(res({ devices: [{ access: 'rwm' }] }), /linux\.resources\.devices\[0\]\.allow: is required/);
    rejects(
      res({ devices: [{ allow: true, type: 'u' }] }),
      /linux\.resources\.devices\[0\]\.type: must be a, c or b/,
    );
    rejects(
      res({ devices: [{ allow: true, access: 'rwx' }] }),
      /linux\.resources\.devices\[0\]\.access: must be letters of "rwm"/,
    );
    rejects(
      res({ hugepageLimits: [{ pageSize: '2M', limit: 1 }] }),
      /hugepageLimits\[0\]\.pageSize: must be a size such as "2MB"/,
    );
    rejects(
      res({ unified: { '../x': '1' } }),
      /linux\.resources\.unified\.\.\.\/x: is not a cgroup v2 interface file/,
    );
    rejects(res({ pids: { limit: 1.5 } }), /linux\.resources\.pids\.limit: must be an integer/);
    rejects(res({ memroy: {} }), /linux\.resources\.memroy: unknown field/, undefined, true);
  });

  it('devices', () => {
    rejects(
      (c) => (c.linux.devices = [{ path: 'dev/x', type: 'c', major: 1, minor: 3 }]),
      /linux\.devices\[0\]\.path: must be an absolute path/,
    );
    rejects(
      (c) => (c.linux.devices = [{ path: '/dev/x', type: 'x', major: 1, minor: 3 }]),
      /linux\.devices\[0\]\.type: must be c, b, u or p/,
    );
    rejects(
      (c) => (c.linux.devices = [{ path: '/dev/x', type: 'c', minor: 3 }]),
      /linux\.devices\[0\]\.major: must be an integer from 0 to 4095, got nothing/,
    );
    rejects(
      (c) => (c.linux.devices = [{ path: '/dev/x', type: 'c', major: 1, minor: 3, fileMode: 0o10000 }]),
      /linux\.devices\[0\]\.fileMode: /,
    );
  });

  it('devices: file type bits in fileMode must be the device type', () => {
    rejects(
      (c) => (c.linux.devices = [{ path: '/dev/x', type: 'c', major: 1, minor: 3, fileMode: 0o60666 }]),
      /linux\.devices\[0\]\.fileMode: 0o60666 has the file type bits of another kind of file than type "c"/,
    );
    const c = minimal();
    c.linux.devices = [{ path: '/dev/x', type: 'b', major: 8, minor: 0, fileMode: 0o60600 }];
    expect(read(c).native.oci.devices[0]!.fileMode).toBe(0o600);
  });

  it('apparmorProfile "unconfined" asks for nothing and is accepted', () => {
    const c = minimal();
    c.process.apparmorProfile = 'unconfined';
    expect(() => read(c)).not.toThrow();
  });

  it('mounts', () => {
    const mount = (m: unknown) => (c: Config) => (c.mounts = [m]);
    rejects(
      mount({ destination: '/proc/self/attr', type: 'tmpfs' }),
      /mounts\[0\]\.destination: \/proc\/self\/attr is inside \/proc, where only \/proc\/cpuinfo, .* may be mounted over/,
    );
    rejects(
      mount({ destination: '/proc/', type: 'bind', source: '/tmp' }),
      /mounts\[0\]\.destination: only a proc filesystem can be mounted on \/proc, not bind/,
    );
    rejects(mount({ destination: '/', type: 'tmpfs' }), /mounts\[0\]\.destination: is the container's root/);
    const lxcfs = minimal();
    lxcfs.mounts = [
      {
        destination: '/proc/meminfo',
        type: 'bind',
        source: '/var/lib/lxcfs/proc/meminfo',
        options: ['bind'],
      },
    ];
    expect(read(lxcfs).native.oci.mounts[0]!.destination).toBe('/proc/meminfo');
    rejects(
      mount({ destination: 'proc', type: 'proc' }),
      /mounts\[0\]\.destination: must be an absolute path/,
    );
    rejects(
      mount({ destination: '/x', type: 'overlay', source: 'overlay' }),
      /mounts\[0\]\.type: "overlay" is not a filesystem capsule mounts/,
      'mounts[0].type',
    );
    rejects(
      mount({ destination: '/x', source: 'tmpfs' }),
      /mounts\[0\]\.type: is required unless the mount is a bind mount/,
    );
    /* Filesystem options on a bind: mount(2) ignores them, and so does capsule, saying so. */
    const bindData = minimal();
    bindData.mounts = [
      { destination: '/x', source: '/etc', options: ['nosuid', 'mode=755', 'size=1k', 'bind'] },
    ];
    const bindPlan = read(bindData);
    expect(bindPlan.native.oci.mounts[0]).toMatchObject({ type: 'bind', attrs: MOUNT_ATTR.NOSUID, data: [] });
    expect(bindPlan.warnings).toEqual([
      'config.json: mounts[0].options: mode=755, size=1k left out: a bind mount takes no filesystem options (mount(2) ignores them with MS_BIND)',
    ]);
    rejects(
      mount({ destination: '/x', type: 'bind', options: ['rbind'] }),
      /mounts\[0\]\.source: a bind mount needs the host path/,
    );
    rejects(
      mount({ destination: '/x', type: 'tmpfs', options: ['sync'] }),
      /mounts\[0\]\.options\[0\]: "sync" is a superblock flag/,
    );
    mkdirSync(join(rootfs, 'full'), { recursive: true });
    writeFileSync(join(rootfs, 'full', 'f'), 'x');
    rejects(
      mount({ destination: '/full', type: 'tmpfs', options: ['nosuid', 'tmpcopyup'] }),
      /mounts\[0\]\.options\[1\]: "tmpcopyup" would copy what \/full holds in the rootfs into the tmpfs, which capsule does not do/,
    );
    rejects(
      mount({ destination: '/x', type: 'proc', options: ['tmpcopyup'] }),
      /mounts\[0\]\.options\[0\]: "tmpcopyup" is for tmpfs mounts, not proc/,
    );
    const ok = minimal();
    ok.mounts = [{ destination: '/absent', type: 'tmpfs', options: ['tmpcopyup'] }];
    expect(read(ok).native.oci.mounts[0]!.data).toEqual([]);
    ok.mounts = [{ destination: '/full', type: 'tmpfs', options: ['tmpcopyup', 'notmpcopyup'] }];
    expect(read(ok).native.oci.mounts[0]!.data).toEqual([]);
    rejects(
      mount({ destination: '/x', type: 'bind', source: '/h', options: ['rbind', 'rro'] }),
      /mounts\[0\]\.options\[1\]: "rro" \(runc's recursive mount attribute\) is not supported/,
    );
    rejects(
      mount({ destination: '/x', type: 'bind', source: '/h', options: ['idmap'] }),
      /mounts\[0\]\.options\[0\]: "idmap" is an idmapped mount/,
    );
    rejects(
      mount({
        destination: '/x',
        type: 'bind',
        source: '/h',
        uidMappings: [{ containerID: 0, hostID: 1, size: 1 }],
      }),
      /mounts\[0\]\.uidMappings: idmapped mounts/,
    );
    rejects(
      mount({ destination: '/x', type: 'tmpfs', options: ['=x'] }),
      /mounts\[0\]\.options\[0\]: "=x" has no key/,
    );
    rejects(
      mount({ destination: '/x', type: 'tmpfs', options: 'ro' }),
      /mounts\[0\]\.options: must be an array, got "ro"/,
    );
    rejects(
      mount({ destination: '/x', type: 'tmpfs', opts: [] }),
      /mounts\[0\]\.opts: unknown field/,
      undefined,
      true,
    );
  });

  it('hooks and annotations', () => {
    rejects(
      (c) => (c.hooks = { prestart: [{ path: 'hook' }] }),
      /hooks\.prestart\[0\]\.path: must be an absolute path/,
    );
    rejects((c) => (c.hooks = { preStart: [] }), /hooks\.preStart: unknown field/, undefined, true);
    rejects(
      (c) => (c.hooks = { poststop: [{ path: '/h', timeout: 0 }] }),
      /hooks\.poststop\[0\]\.timeout: must be an integer >= 1/,
    );
    rejects(
      (c) => (c.hooks = { poststart: [{ path: '/h', env: ['X'] }] }),
      /hooks\.poststart\[0\]\.env\[0\]: must be KEY=VALUE/,
    );
    rejects((c) => (c.annotations = { a: 1 }), /annotations\.a: must be a string, got 1/);
  });
});

describe('linux.seccomp: the kernel meaning of each action', () => {
  const profile = (p: unknown) => (c: Config) => (c.linux.seccomp = p);
  it('kill actions are the kernel kills, not a capsule report', () => {
    const c = minimal();
    c.linux.seccomp = {
      defaultAction: 'SCMP_ACT_ALLOW',
      flags: ['SECCOMP_FILTER_FLAG_TSYNC'],
      syscalls: [
        { names: ['ptrace'], action: 'SCMP_ACT_KILL' },
        { names: ['kexec_load'], action: 'SCMP_ACT_KILL_PROCESS', comment: 'no' },
        { names: ['bpf'], action: 'SCMP_ACT_KILL_THREAD' },
        { names: ['mount'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 },
      ],
    };
    const s = read(c).seccomp!;
    expect(s.rules.map((r) => [r.syscall, r.action])).toEqual([
      ['ptrace', { kind: 'kill_thread', value: 0 }],
      ['kexec_load', { kind: 'kill_process', value: 0 }],
      ['bpf', { kind: 'kill_thread', value: 0 }],
      ['mount', { kind: 'errno', value: 13 }],
    ]);
    expect(s.badArchAction).toEqual({ kind: 'kill_process', value: 0 });
  });

  it("capsule's own profiles still report kills (the judge's meaning)", () => {
    const s = normalizeProfile(
      { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['ptrace'], action: 'SCMP_ACT_KILL' }] },
      'p.json',
    );
    expect(s.rules[0]!.action).toEqual({ kind: 'notify', value: 0 });
    expect(s.badArchAction).toEqual({ kind: 'notify', value: 0 });
  });

  it('seccomp agents, unsupported flags and Docker-only fields are errors naming the field', () => {
    rejects(
      profile({
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [{ names: ['mount'], action: 'SCMP_ACT_NOTIFY' }],
      }),
      /^config\.json: linux\.seccomp\.syscalls\[0\]\.action: SCMP_ACT_NOTIFY hands the call to a seccomp agent \(linux\.seccomp\.listenerPath\)/,
      'linux.seccomp',
    );
    rejects(
      profile({ defaultAction: 'SCMP_ACT_ALLOW', listenerPath: '/run/agent.sock' }),
      /^config\.json: linux\.seccomp\.listenerPath: seccomp agents/,
    );
    rejects(
      profile({ defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_LOG'] }),
      /linux\.seccomp\.flags: SECCOMP_FILTER_FLAG_LOG is not supported/,
    );
    rejects(
      profile({ defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_SPEC_ALLOW'] }),
      /linux\.seccomp\.flags: SECCOMP_FILTER_FLAG_SPEC_ALLOW is not supported/,
    );
    rejects(
      profile({ defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_X'] }),
      /linux\.seccomp\.flags: unknown flag/,
    );
    rejects(
      profile({ defaultAction: 'SCMP_ACT_ALLOW', archMap: [] }),
      /linux\.seccomp\.archMap: is Docker's extension/,
    );
    rejects(
      profile({
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [{ names: ['mount'], action: 'SCMP_ACT_ERRNO', includes: { caps: ['CAP_SYS_ADMIN'] } }],
      }),
      /linux\.seccomp\.syscalls\[0\]\.includes: is Docker's extension/,
    );
    rejects(
      profile({
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [
          {
            names: ['mount'],
            action: 'SCMP_ACT_ERRNO',
            args: [{ index: 0, value: 1, op: 'SCMP_CMP_EQ', vaule: 2 }],
          },
        ],
      }),
      /linux\.seccomp\.syscalls\[0\]\.args\[0\]\.vaule: unknown field/,
      undefined,
      true,
    );
    rejects(
      profile({ defaultAction: 'SCMP_ACT_NOPE' }),
      /^config\.json: linux\.seccomp\.defaultAction: unknown action "SCMP_ACT_NOPE"/,
    );
    rejects(profile('x'), /^config\.json: linux\.seccomp: must be an object/);
  });
});
