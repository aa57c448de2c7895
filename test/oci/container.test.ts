/**
 * src/oci/container.ts with a real container: create (the addon's OCI mode, waiting for
 * start), start, state, exec, kill and delete of a busybox `sleep` in the test rootfs, its
 * cgroup under /capsule-test/. The plan is written by hand (what spec.ts would read from a
 * config.json), so this tests the lifecycle apart from config.json's reader.
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
  for (const id of ['t1', 't2']) await deleteContainer(root, id, true).catch(() => {});
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
