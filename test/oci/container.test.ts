/**
 * src/oci/container.ts with a real container: create (the addon's OCI mode, waiting for
 * start), start, state, exec, kill and delete of a busybox `sleep` in the test rootfs, its
 * cgroup under /capsule-test/. The plan is written by hand (what spec.ts would read from a
 * config.json), so this tests the lifecycle apart from config.json's reader.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { native } from '../../src/native.js';
import {
  containerState,
  createContainer,
  deleteContainer,
  execContainer,
  killContainer,
  startContainer,
} from '../../src/oci/container.js';
import type { ContainerPlan } from '../../src/oci/plan.js';
import { type ExecProcess } from '../../src/oci/process.js';
import { procStat, readState } from '../../src/oci/state.js';
import { removeTestCgroupParents } from './fake-state.js';

/* Made and removed only when the suite runs (a skipped suite runs no hooks). */
let tmp = '';
let root = '';
/* A copy of the test rootfs: create makes mount points in an OCI rootfs, which the shared one must never get. */
let rootfs = '';
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'capsule-oci-ctr-'));
  root = join(tmp, 'root');
  rootfs = join(tmp, 'rootfs');
  cpSync(inject('rootfs'), rootfs, { recursive: true, verbatimSymlinks: true });
});
afterAll(async () => {
  if (!tmp) return;
  for (const id of ['t1', 't2', 'h1', 'h2', 'k1', 'k2'])
    await deleteContainer(root, id, true).catch(() => {});
  rmSync(tmp, { recursive: true, force: true });
  removeTestCgroupParents();
});

/* The addon's OCI mode is the lead's (native: OCI ...): its marker is startSignal. */
const hasOci = typeof (native() as { startSignal?: unknown }).startSignal === 'number';

const MS_REC = 0x4000;
const MS_PRIVATE = 0x40000;

function plan(id: string, args: string[]): ContainerPlan {
  const none = { bounding: [], effective: [], permitted: [], inheritable: [], ambient: [] };
  return {
    ociVersion: '1.2.0',
    bundle: tmp,
    native: {
      rootfs,
      argv: ['capsule-oci', ...args],
      env: ['PATH=/bin:/usr/bin'],
      cwd: '/',
      hostname: id,
      uid: 0,
      gid: 0,
      writableRoot: false,
      tmpSizeBytes: 0,
      devPts: false,
      devShm: false,
      tmpNoexec: false,
      sys: false,
      devShmSizeBytes: 0,
      devNodes: [],
      devices: [],
      binds: [],
      rlimits: [],
      trace: false,
      oci: {
        waitForStart: true,
        namespaces: (['pid', 'mount', 'ipc', 'uts', 'network'] as const).map((type) => ({ type, fd: -1 })),
        uidMappings: [],
        gidMappings: [],
        rootReadonly: true,
        rootPropagation: MS_PRIVATE | MS_REC,
        mounts: [
          {
            destination: '/proc',
            type: 'proc',
            source: 'proc',
            recursive: false,
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
        capabilities: none,
        noNewPrivileges: true,
        hostname: id,
      },
    },
    joinNamespaces: [],
    cgroupsPath: `/capsule-test/oci-ctr-${process.pid}-${id}`,
    resources: { pids: { limit: 64 }, devices: [] },
    seccomp: null,
    hasProcess: true,
    terminal: false,
    hooks: {
      prestart: [],
      createRuntime: [],
      createContainer: [],
      startContainer: [],
      poststart: [],
      poststop: [],
    },
    annotations: { test: id },
    warnings: [],
  };
}

function proc(args: string[]): ExecProcess {
  return {
    args,
    env: ['PATH=/bin:/usr/bin'],
    cwd: '/',
    uid: 0,
    gid: 0,
    additionalGids: [],
    umask: -1,
    terminal: false,
    capabilities: { bounding: [], effective: [], permitted: [], inheritable: [], ambient: [] },
    noNewPrivileges: true,
    rlimits: [],
  };
}

const status = async (id: string) => (await containerState(root, id)) as { status: string; pid: number };

describe.skipIf(!hasOci)('a busybox container through create, start, exec, kill, delete', () => {
  it('goes created -> running -> stopped and leaves nothing behind', async () => {
    const pidFile = join(tmp, 't1.pid');
    const { state } = await createContainer('t1', plan('t1', ['sleep', '60']), { root, pidFile });
    expect(readFileSync(pidFile, 'utf8')).toBe(String(state.pid));
    expect(await status('t1')).toMatchObject({ status: 'created', pid: state.pid });
    /* Waiting for start: the program has not been forked yet, PID 1 has no child. */
    const cg = state.cgroupPaths;
    expect(cg.every((p) => p.includes('/capsule-test/'))).toBe(true);

    await startContainer(root, 't1');
    expect((await status('t1')).status).toBe('running');

    expect(await execContainer('t1', proc(['sh', '-c', 'test "$(hostname)" = t1 && exit 7']), { root })).toBe(
      7,
    );
    expect(await execContainer('t1', proc(['sh', '-c', 'grep -q sleep /proc/*/cmdline']), { root })).toBe(0);

    await expect(deleteContainer(root, 't1', false)).rejects.toThrow(
      'cannot delete container t1 that is running',
    );
    await killContainer(root, 't1', 9, false);
    for (let i = 0; i < 500 && (await status('t1')).status !== 'stopped'; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect((await status('t1')).status).toBe('stopped');
    await deleteContainer(root, 't1', false);
    expect(readState(root, 't1')).toBeNull();
    expect(existsSync(join(root, 't1'))).toBe(false);
    for (const p of cg) expect(existsSync(p)).toBe(false);
    /* This process made it, so the addon's watcher reaps it, on a later turn of the event loop. */
    for (let i = 0; i < 500 && procStat(state.pid) !== null; i++) await new Promise((r) => setTimeout(r, 10));
    expect(procStat(state.pid)).toBeNull();
  });

  it('delete --force ends a running container', async () => {
    const { state } = await createContainer('t2', plan('t2', ['sleep', '60']), { root });
    await startContainer(root, 't2');
    await deleteContainer(root, 't2', true);
    expect(existsSync(join(root, 't2'))).toBe(false);
    for (const p of state.cgroupPaths) expect(existsSync(p)).toBe(false);
  });

  it('a second create of the same id is refused and leaves the first alone', async () => {
    await createContainer('t2', plan('t2', ['sleep', '60']), { root });
    await expect(createContainer('t2', plan('t2', ['sleep', '60']), { root })).rejects.toThrow(
      'container with id t2 already exists',
    );
    expect((await status('t2')).status).toBe('created');
    await deleteContainer(root, 't2', false);
  });
});

/** The mounts of this (the host's) mount namespace at or under `dir`, as mountinfo lists them. */
function mountsUnder(dir: string): { id: number; point: string; optional: string }[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .trim()
    .split('\n')
    .map((l) => {
      const f = l.split(' ');
      const dash = f.indexOf('-');
      return { id: Number(f[0]), point: f[4]!, optional: f.slice(6, dash).join(' ') };
    })
    .filter((m) => m.point === dir || m.point.startsWith(dir + '/'));
}

/** plan() without a mount namespace: the host's is the container's (spec.ts sets hostMounts so). */
function hostMountsPlan(id: string, args: string[]): ContainerPlan {
  const p = plan(id, args);
  p.native.oci.namespaces = p.native.oci.namespaces.filter((n) => n.type !== 'mount');
  p.native.oci.hostMounts = true;
  p.native.oci.maskedPaths = ['/proc/sys'];
  return p;
}

describe.skipIf(!hasOci)("a container without a mount namespace (the host's, as runc allows)", () => {
  it("shares the host's mount namespace, is chrooted in its rootfs, and delete takes its mounts away", async () => {
    writeFileSync(join(rootfs, 'capsule-marker'), 'inside\n');
    expect(mountsUnder(rootfs)).toEqual([]);
    const { state } = await createContainer('h1', hostMountsPlan('h1', ['sleep', '60']), { root });
    /* The same mount namespace as ours; its root is the rootfs (a chroot, not pivot_root). */
    expect(readlinkSync(`/proc/${state.pid}/ns/mnt`)).toBe(readlinkSync('/proc/self/ns/mnt'));
    expect(readlinkSync(`/proc/${state.pid}/root`)).toBe(rootfs);
    expect(readlinkSync(`/proc/${state.pid}/ns/pid`)).not.toBe(readlinkSync('/proc/self/ns/pid'));
    /* Its mounts are in the host's table: the rootfs's bind, private (no "shared:"), and /proc on it. */
    const mounts = mountsUnder(rootfs);
    expect(mounts.map((m) => m.point)).toEqual([rootfs, join(rootfs, 'proc'), join(rootfs, 'proc/sys')]);
    for (const m of mounts) expect(m.optional).not.toMatch(/shared:/);
    expect(state.hostMounts).toEqual({ path: rootfs, mntId: mounts[0]!.id });

    await startContainer(root, 'h1');
    /* exec lands in the container's root too, not at the host's. */
    expect(
      await execContainer('h1', proc(['sh', '-c', 'test "$(cat /capsule-marker)" = inside']), { root }),
    ).toBe(0);
    expect(
      await execContainer('h1', proc(['sh', '-c', `test -e ${join(tmp, 'rootfs', 'capsule-marker')}`]), {
        root,
      }),
    ).toBe(1);

    await deleteContainer(root, 'h1', true);
    expect(mountsUnder(rootfs)).toEqual([]);
    expect(existsSync(join(root, 'h1'))).toBe(false);
    rmSync(join(rootfs, 'capsule-marker'));
  });

  it('a create that fails after the rootfs was bound leaves no mount behind', async () => {
    const p = hostMountsPlan('h2', ['sleep', '60']);
    p.native.oci.mounts.push({
      destination: '/mnt',
      type: 'bind',
      source: join(tmp, 'no-such-source'),
      recursive: false,
      attrs: 0,
      propagation: 0,
      data: [],
    });
    await expect(createContainer('h2', p, { root })).rejects.toThrow(/mounts\[1\] \(\/mnt\)/);
    expect(mountsUnder(rootfs)).toEqual([]);
    expect(existsSync(join(root, 'h2'))).toBe(false);
  });

  it('delete refuses, and keeps the container, while another mount covers its rootfs', async () => {
    const { state } = await createContainer('h2', hostMountsPlan('h2', ['sleep', '60']), { root });
    /* Someone binds the rootfs again, on top of the container's bind: delete must not unmount theirs. */
    execFileSync('mount', ['--bind', rootfs, rootfs]);
    try {
      await expect(deleteContainer(root, 'h2', true)).rejects.toThrow(/covered by another mount/);
      expect(existsSync(join(root, 'h2'))).toBe(true);
      expect(mountsUnder(rootfs).map((m) => m.id)).toContain(state.hostMounts!.mntId);
    } finally {
      execFileSync('umount', [rootfs]);
    }
    await deleteContainer(root, 'h2', true);
    expect(mountsUnder(rootfs)).toEqual([]);
    expect(existsSync(join(root, 'h2'))).toBe(false);
  });
});

/** A hook: /bin/sh on the host running `script`, the state on its stdin. */
function shHook(script: string, timeout?: number) {
  return {
    path: '/bin/sh',
    args: ['sh', '-c', script],
    env: ['PATH=/usr/bin:/bin'],
    ...(timeout ? { timeout } : {}),
  };
}

describe.skipIf(!hasOci)('the hooks of create, at their point of the lifecycle', () => {
  it('prestart, createRuntime and createContainer run in order before pivot_root, createContainer in the container', async () => {
    const log = join(tmp, 'hooks.log');
    const p = plan('k1', ['sleep', '60']);
    /* Where the hook runs (its namespaces), what root the container's process has, and the state's pid. */
    const record = (name: string) =>
      shHook(
        `pid=$(sed 's/.*"pid":\\([0-9]*\\).*/\\1/'); echo "${name} $pid $(readlink /proc/self/ns/mnt) $(readlink /proc/self/ns/net) $(test -d /proc/$pid/root${rootfs}/bin && echo pre-pivot || echo post-pivot)" >> ${log}`,
      );
    p.hooks.prestart = [record('prestart')];
    p.hooks.createRuntime = [record('createRuntime')];
    p.hooks.createContainer = [record('createContainer')];
    const { state } = await createContainer('k1', p, { root });
    const lines = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(' '));
    expect(lines.map((l) => l[0])).toEqual(['prestart', 'createRuntime', 'createContainer']);
    const mine = [readlinkSync('/proc/self/ns/mnt'), readlinkSync('/proc/self/ns/net')];
    const its = [readlinkSync(`/proc/${state.pid}/ns/mnt`), readlinkSync(`/proc/${state.pid}/ns/net`)];
    expect(its).not.toEqual(mine);
    for (const [name, pid, mnt, net, pivot] of lines) {
      expect(Number(pid)).toBe(state.pid);
      /* Before pivot_root: the rootfs is still at its host path in the container's mount namespace. */
      expect(pivot).toBe('pre-pivot');
      expect([mnt, net]).toEqual(name === 'createContainer' ? its : mine);
    }
    /* After create it is in its rootfs, waiting for start: that path is gone from its view. */
    expect(existsSync(`/proc/${state.pid}/root${rootfs}/bin`)).toBe(false);
    expect(existsSync(`/proc/${state.pid}/root/bin`)).toBe(true);
    await deleteContainer(root, 'k1', true);
  });

  it('a failing createRuntime hook stops create before createContainer runs, and leaves nothing', async () => {
    const log = join(tmp, 'hooks-fail.log');
    const p = plan('k2', ['sleep', '60']);
    p.hooks.createRuntime = [shHook('echo refused >&2; exit 4')];
    p.hooks.createContainer = [shHook(`echo ran >> ${log}`)];
    await expect(createContainer('k2', p, { root })).rejects.toThrow(
      'createRuntime hook /bin/sh exited with 4: refused',
    );
    expect(existsSync(log)).toBe(false);
    expect(existsSync(join(root, 'k2'))).toBe(false);
    expect(existsSync(`/sys/fs/cgroup/pids${p.cgroupsPath}`)).toBe(false);
  });

  it('a failing or slow createContainer hook fails create with its status, and leaves nothing', async () => {
    const p = plan('k2', ['sleep', '60']);
    p.hooks.createContainer = [shHook('exit 0'), shHook('exit 3')];
    await expect(createContainer('k2', p, { root })).rejects.toThrow(
      'hooks.createContainer[1] /bin/sh exited with 3',
    );
    expect(existsSync(join(root, 'k2'))).toBe(false);
    p.hooks.createContainer = [shHook('sleep 30', 1)];
    const t0 = Date.now();
    await expect(createContainer('k2', p, { root })).rejects.toThrow(
      'hooks.createContainer[0] /bin/sh timed out (its timeout in config.json) and was killed',
    );
    expect(Date.now() - t0).toBeLessThan(20_000);
    p.hooks.createContainer = [{ path: '/no/such/hook', args: [], env: [] }];
    await expect(createContainer('k2', p, { root })).rejects.toThrow(
      'hooks.createContainer[0] /no/such/hook cannot be run: No such file or directory',
    );
    expect(existsSync(join(root, 'k2'))).toBe(false);
    expect(existsSync(`/sys/fs/cgroup/pids${p.cgroupsPath}`)).toBe(false);
  });

  it('startContainer hooks are refused, naming the field', async () => {
    const p = plan('k2', ['sleep', '60']);
    p.hooks.startContainer = [shHook('exit 0')];
    await expect(createContainer('k2', p, { root })).rejects.toThrow(
      /hooks\.startContainer is not supported/,
    );
  });
});
