/**
 * containerd with the OCI runtime under test: through ctr and the runc shim
 * (`ctr run --runtime io.containerd.runc.v2 --runc-binary RUNTIME`), then through the CRI
 * plugin, which is what kubelet talks to, with a runtime handler whose `BinaryName` is the
 * runtime: a pod whose pause container and workload share a network namespace by path.
 *
 * The containerd is private (test/oci/containerd.ts), started and stopped here; every
 * container's cgroup is under this suite's own parent. Afterwards no shim, mount, cgroup
 * or temp dir is left.
 */
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Containerd, containerdConfig, HANDLER } from './containerd.js';
import { CriClient } from './cri.js';
import {
  cgroupDirs,
  cgroupPathsOf,
  exited,
  leftovers,
  makeOciArchive,
  memoryLimitOf,
  ociRuntime,
  removeCgroupTree,
  runtimeForEngines,
  waitFor,
} from './helpers.js';

const IMAGE = 'localhost/capsule-busybox:test';
const PAUSE = 'localhost/capsule-pause:test';
/** ctr's namespace (containerd's, not the kernel's); the CRI plugin's is k8s.io. */
const NS = 'capsule-test';
const rt = ociRuntime();
if (rt.skip) console.warn(`test/oci/containerd: skipped: ${rt.skip}`);

/*
 * docs/kubernetes.md shows the runtime entry to put in a node's containerd config: it must be
 * the one these tests run (with the runtime's path where the page says
 * /usr/local/bin/capsule-runc).
 */
describe('docs/kubernetes.md', () => {
  it('shows the containerd runtime entry that the CRI test runs', () => {
    const page = readFileSync(join(import.meta.dirname, '../../docs/kubernetes.md'), 'utf8');
    const block = page.match(/<!-- containerd-runtime-entry:[^\n]*-->\n\n```toml\n([\s\S]*?)```/);
    expect(block, 'the marked toml block in docs/kubernetes.md').not.toBeNull();
    const config = containerdConfig('/tmp/x', '/usr/local/bin/capsule-runc', PAUSE);
    expect(config).toContain((block as RegExpMatchArray)[1]);
  });
});

/** Polls an async check every 100 ms until it returns a value or `ms` pass. */
async function poll<T>(what: string, ms: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(rt.skip !== undefined)(`containerd with ${rt.path ?? '(none)'}`, () => {
  let dir: string;
  let cgroupParent: string;
  let runtime: string;
  let containerd: Containerd;
  const runcStateBefore = new Set<string>();

  /** `ctr run` with the runc shim and the runtime under test, in this suite's cgroup parent. */
  const ctrRun = (id: string, ...rest: string[]) => [
    'run',
    '--runtime',
    'io.containerd.runc.v2',
    '--runc-binary',
    runtime,
    '--cgroup',
    `${cgroupParent}/${id}`,
    ...rest,
  ];

  beforeAll(async () => {
    for (const ns of [NS, 'k8s.io']) if (existsSync(`/run/containerd/runc/${ns}`)) runcStateBefore.add(ns);
    dir = mkdtempSync(join(tmpdir(), 'capsule-oci-containerd-'));
    cgroupParent = `/capsule-test-${basename(dir)}`;
    runtime = runtimeForEngines(dir, rt.path as string);
    containerd = new Containerd(dir, runtime, PAUSE);
    await containerd.start();
    const busybox = makeOciArchive(dir, IMAGE, ['sh']);
    /* The pod's sandbox ("pause") container: a process that sleeps until it is killed. */
    const pause = makeOciArchive(dir, PAUSE, ['sleep', '2147483647']);
    containerd.ctr(NS, ['images', 'import', busybox]);
    containerd.ctr('k8s.io', ['images', 'import', busybox]);
    containerd.ctr('k8s.io', ['images', 'import', pause]);
  });

  afterAll(async () => {
    if (!dir) return;
    try {
      if (containerd) {
        /* What a failed test left: tasks killed and deleted, containers removed, pods removed. */
        for (const id of containerd
          .ctrStatus(NS, ['task', 'list', '--quiet'])
          .stdout.split('\n')
          .filter(Boolean)) {
          containerd.ctrStatus(NS, ['task', 'kill', '--signal', 'SIGKILL', id]);
          await waitFor(`task ${id} to stop`, 10_000, () =>
            containerd.ctrStatus(NS, ['task', 'delete', id]).status === 0 ? true : undefined,
          ).catch(() => undefined);
        }
        for (const id of containerd
          .ctrStatus(NS, ['container', 'list', '--quiet'])
          .stdout.split('\n')
          .filter(Boolean))
          containerd.ctrStatus(NS, ['container', 'delete', id]);
        const cri = new CriClient(containerd.socket);
        try {
          const { items } = await cri.call('ListPodSandbox', {});
          for (const pod of items) {
            await cri.call('StopPodSandbox', { pod_sandbox_id: pod.id });
            await cri.call('RemovePodSandbox', { pod_sandbox_id: pod.id });
          }
          /* With its last container gone, each shim exits by itself. */
          await waitFor('the shims to exit', 10_000, () =>
            containerd.shims().length === 0 ? true : undefined,
          );
        } finally {
          cri.close();
          await containerd.stop();
        }
        /*
         * The shim's runc state dirs (`--root /run/containerd/runc/NAMESPACE`), empty by now
         * (rmdir(2) fails on one that is not): this suite's namespace's, and k8s.io's if the
         * suite made it.
         */
        for (const ns of [NS, 'k8s.io']) {
          const state = `/run/containerd/runc/${ns}`;
          if (!runcStateBefore.has(ns) && existsSync(state)) rmdirSync(state);
        }
      }
      expect(leftovers(dir, '/nonexistent-cgroup')).toEqual([]);
      /*
       * runc deletes each container's cgroup; the parents it made on the way stay. rmdir(2)
       * fails with EBUSY on a cgroup that still has a process, so removing them checks that.
       */
      removeCgroupTree(cgroupParent);
      expect(cgroupDirs(cgroupParent)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs a program and prints its output (ctr run --rm)', () => {
    const out = containerd.ctr(NS, ctrRun('capsule-echo', '--rm', IMAGE, 'capsule-echo', 'echo', 'hi'));
    expect(out).toBe('hi\n');
    expect(containerd.ctr(NS, ['container', 'list', '--quiet']).trim()).toBe('');
  });

  it("passes on a failing program's exit status (ctr run --rm)", () => {
    const r = containerd.ctrStatus(
      NS,
      ctrRun('capsule-fail', '--rm', IMAGE, 'capsule-fail', 'sh', '-c', 'exit 3'),
    );
    expect(r.status).toBe(3);
  });

  it('execs into a running task (ctr task exec --exec-id)', async () => {
    containerd.ctr(NS, ctrRun('capsule-exec', '--detach', IMAGE, 'capsule-exec', 'sleep', '1000'));
    const seen = containerd.ctr(NS, [
      'task',
      'exec',
      '--exec-id',
      'probe-1',
      'capsule-exec',
      'sh',
      '-c',
      'cat /proc/1/cmdline | tr "\\0" " "; echo; id -u',
    ]);
    /* The exec'd process is in the task's pid namespace: pid 1 is the task's sleep. */
    expect(seen).toBe('sleep 1000 \n0\n');
    const failing = containerd.ctrStatus(NS, [
      'task',
      'exec',
      '--exec-id',
      'probe-2',
      'capsule-exec',
      'sh',
      '-c',
      'exit 4',
    ]);
    expect(failing.status).toBe(4);
    containerd.ctr(NS, ['task', 'kill', '--signal', 'SIGKILL', 'capsule-exec']);
    await waitFor('the task to stop', 10_000, () =>
      /capsule-exec\s+\d+\s+STOPPED/.test(containerd.ctr(NS, ['task', 'list'])) ? true : undefined,
    );
    containerd.ctr(NS, ['task', 'delete', 'capsule-exec']);
    containerd.ctr(NS, ['container', 'delete', 'capsule-exec']);
  });

  it('pauses and resumes a task, and lists its processes (ctr task pause, resume, ps)', async () => {
    containerd.ctr(NS, ctrRun('capsule-pause', '--detach', IMAGE, 'capsule-pause', 'sleep', '1000'));
    const state = () => containerd.ctr(NS, ['task', 'list']).match(/capsule-pause\s+(\d+)\s+(\w+)/);
    containerd.ctr(NS, ['task', 'pause', 'capsule-pause']);
    expect(state()?.[2]).toBe('PAUSED');
    containerd.ctr(NS, ['task', 'resume', 'capsule-pause']);
    expect(state()?.[2]).toBe('RUNNING');
    /* ps: the task's processes as host PIDs; here only its init, the sleep. */
    const pid = state()?.[1];
    /* Its cgroup, in every hierarchy, is the one ctr run --cgroup named. */
    for (const path of cgroupPathsOf(Number(pid))) expect(path).toBe(`${cgroupParent}/capsule-pause`);
    const ps = containerd.ctr(NS, ['task', 'ps', 'capsule-pause']);
    expect(
      ps
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => l.trim().split(/\s+/)[0]),
    ).toEqual([pid]);
    containerd.ctr(NS, ['task', 'kill', '--signal', 'SIGKILL', 'capsule-pause']);
    await waitFor('the task to stop', 10_000, () => (state()?.[2] === 'STOPPED' ? true : undefined));
    containerd.ctr(NS, ['task', 'delete', 'capsule-pause']);
    containerd.ctr(NS, ['container', 'delete', 'capsule-pause']);
  });

  it('kills a running task (ctr task kill), and ctr run reports the signal', async () => {
    const run = containerd.ctrSpawn(
      NS,
      ctrRun('capsule-kill', '--rm', IMAGE, 'capsule-kill', 'sleep', '1000'),
    );
    let stderr = '';
    run.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    await waitFor('the task to run', 10_000, () => {
      if (run.exitCode !== null)
        throw new Error(`ctr run exited ${run.exitCode} before the task ran: ${stderr.trim()}`);
      return /capsule-kill\s+\d+\s+RUNNING/.test(containerd.ctr(NS, ['task', 'list'])) ? true : undefined;
    });
    containerd.ctr(NS, ['task', 'kill', '--signal', 'SIGKILL', 'capsule-kill']);
    expect(await exited(run)).toBe(137);
    expect(containerd.ctr(NS, ['container', 'list', '--quiet']).trim()).toBe('');
  });

  it('runs a pod through the CRI plugin: the workload shares the pause container’s network namespace', async () => {
    const cri = new CriClient(containerd.socket);
    try {
      expect((await cri.call('Version', { version: 'v1' })).runtime_api_version).toBe('v1');
      await poll('the CRI plugin to see the imported image', 10_000, async () =>
        (await cri.call('ImageStatus', { image: { image: IMAGE } }, 'ImageService')).image ? true : undefined,
      );
      const logDir = join(dir, 'pod-logs');
      const podConfig = {
        metadata: { name: 'capsule-pod', uid: 'capsule-pod-uid', namespace: 'capsule-test', attempt: 0 },
        hostname: 'capsule-pod',
        log_directory: logDir,
        linux: {
          cgroup_parent: `${cgroupParent}/pod`,
          security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } },
        },
      };
      const { pod_sandbox_id: pod } = await cri.call('RunPodSandbox', {
        config: podConfig,
        runtime_handler: HANDLER,
      });
      const { container_id: ctr } = await cri.call('CreateContainer', {
        pod_sandbox_id: pod,
        config: {
          metadata: { name: 'netns', attempt: 0 },
          image: { image: IMAGE },
          command: [
            'sh',
            '-c',
            'readlink /proc/self/ns/net; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo released; exit 7',
          ],
          log_path: 'netns.log',
          linux: {},
        },
        sandbox_config: podConfig,
      });
      await cri.call('StartContainer', { container_id: ctr });

      /* From the host: both processes are in one network namespace, not the host's. */
      const podInfo = JSON.parse(
        (await cri.call('PodSandboxStatus', { pod_sandbox_id: pod, verbose: true })).info.info,
      );
      const ctrInfo = JSON.parse(
        (await cri.call('ContainerStatus', { container_id: ctr, verbose: true })).info.info,
      );
      const podNet = readlinkSync(`/proc/${podInfo.pid}/ns/net`);
      expect(readlinkSync(`/proc/${ctrInfo.pid}/ns/net`)).toBe(podNet);
      expect(podNet).not.toBe(readlinkSync('/proc/self/ns/net'));
      /*
       * ...joined by path: the pause container's config.json names the netns that CNI set up
       * (a bind mount under the state dir), the workload's names the pause container's.
       */
      const netnsOf = (spec: { linux: { namespaces: { type: string; path?: string }[] } }) =>
        spec.linux.namespaces.find((n) => n.type === 'network')?.path;
      const podNetns = netnsOf(podInfo.runtimeSpec) as string;
      expect(podNetns).toMatch(new RegExp(`^${dir}/state/`));
      expect(`net:[${statSync(podNetns).ino}]`).toBe(podNet);
      expect(netnsOf(ctrInfo.runtimeSpec)).toBe(`/proc/${podInfo.pid}/ns/net`);

      /* Both cgroups, in every hierarchy, are under the pod's cgroup_parent. */
      for (const pid of [podInfo.pid, ctrInfo.pid])
        for (const path of cgroupPathsOf(pid))
          expect(path.startsWith(`${cgroupParent}/pod/`), path).toBe(true);

      /* UpdateContainerResources (kubelet's resize): the new memory limit is the workload cgroup's. */
      await cri.call('UpdateContainerResources', {
        container_id: ctr,
        linux: { memory_limit_in_bytes: 64 * 1024 * 1024, cpu_shares: 512 },
      });
      expect(memoryLimitOf(ctrInfo.pid)).toBe(String(64 * 1024 * 1024));

      /* ExecSync (kubectl exec, probes) runs in the container; it lets the workload end. */
      const exec = await cri.call('ExecSync', { container_id: ctr, cmd: ['touch', '/tmp/go'], timeout: 10 });
      expect(exec.exit_code).toBe(0);
      const status = await poll('the container to exit', 10_000, async () => {
        const s = (await cri.call('ContainerStatus', { container_id: ctr })).status;
        return s.state === 'CONTAINER_EXITED' ? s : undefined;
      });
      expect(status.exit_code).toBe(7);
      /* The CRI log format: TIMESTAMP STREAM TAG TEXT, one line each. */
      const log = readFileSync(join(logDir, 'netns.log'), 'utf8');
      expect(log).toMatch(
        new RegExp(`^\\S+ stdout F ${podNet.replace(/[[\]]/g, '\\$&')}\n\\S+ stdout F released\n$`),
      );

      await cri.call('StopPodSandbox', { pod_sandbox_id: pod });
      await cri.call('RemovePodSandbox', { pod_sandbox_id: pod });
      expect((await cri.call('ListPodSandbox', {})).items).toEqual([]);
      expect((await cri.call('ListContainers', {})).containers).toEqual([]);
    } finally {
      cri.close();
    }
  });
});
