/**
 * The OCI command line, as engines run it: dist/capsule-runc (and `capsule oci`), its
 * flags, its errors (one line on stderr, exit 1, a JSON line in --log under --log-format
 * json), and the lifecycle commands on containers whose PID 1 is a `sleep` of the test's
 * own in a real cgroup under /capsule-test/ (state, list, ps, kill, pause, resume, update,
 * delete), so that the command line is tested apart from the addon's container.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  cpSync,
  existsSync,
  mkdirSync,
  openSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { detectCgroups } from '../../src/cgroup/detect.js';
import { native } from '../../src/native.js';
import { containerHierarchies, makeContainerCgroup, removeCgroupDirsSync } from '../../src/oci/cgroup.js';
import { deleteContainer } from '../../src/oci/container.js';
import { type ContainerState, listIds, procStat, writeState } from '../../src/oci/state.js';
import { fakeState, removeTestCgroupParents } from './fake-state.js';

const dist = join(import.meta.dirname, '../../dist');
const runc = join(dist, 'capsule-runc');
/* Made when the file runs, not when it is collected (`vitest list` would leave one behind). */
let tmp = '';
let root = '';
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'capsule-oci-cli-'));
  root = join(tmp, 'root');
});
const children: ChildProcess[] = [];
const cgroups: string[][] = [];
afterAll(async () => {
  if (!tmp) return;
  /* A container a failed test left: killed and deleted like any other. */
  for (const id of listIds(root)) await deleteContainer(root, id, true).catch(() => {});
  for (const c of children) c.kill('SIGKILL');
  for (const p of cgroups) removeCgroupDirsSync(p);
  rmSync(tmp, { recursive: true, force: true });
  removeTestCgroupParents();
});

const cli = (args: string[], opts: { input?: string } = {}) =>
  execa(runc, args, {
    reject: false,
    ...(opts.input !== undefined ? { input: opts.input } : { stdin: 'ignore' }),
  });

function oneErrorLine(r: { exitCode?: number; stderr: string }, text: string | RegExp): void {
  expect(r.exitCode).toBe(1);
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(
    typeof text === 'string' ? new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : text,
  );
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

const usable = containerHierarchies(detectCgroups()).length > 0;

/** A container whose PID 1 is a sleep of ours, in its own cgroup under /capsule-test/. */
function container(
  id: string,
  over: Partial<ContainerState> = {},
): { state: ContainerState; child: ChildProcess } {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  children.push(child);
  const cg = makeContainerCgroup(`capsule-test/oci-cli-${process.pid}-${id}`, { devices: [] });
  cgroups.push(cg.paths);
  for (const p of cg.paths) writeFileSync(join(p, 'cgroup.procs'), String(child.pid));
  cg.closeFds();
  const state = fakeState(id, child.pid!, {
    cgroupPaths: cg.paths,
    freezerPath: cg.freezerPath,
    freezerVersion: cg.freezerVersion,
    ...over,
  });
  const dir = join(root, id);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeState(root, state);
  return { state, child };
}

const gone = (c: ChildProcess) =>
  new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once('exit', r)));

describe('the command line', () => {
  it('is a bin of the package, and `capsule oci` is the same', async () => {
    const pkg = JSON.parse(readFileSync(join(dist, '../package.json'), 'utf8')) as {
      bin: Record<string, string>;
    };
    expect(pkg.bin['capsule-runc']).toBe('dist/capsule-runc');
    const a = await cli(['--version']);
    expect(a.exitCode).toBe(0);
    expect(a.stdout).toMatch(/^capsule-runc version \d+\.\d+\.\d+\nspec: 1\.\d+\.\d+$/);
    const b = await execa(join(dist, 'capsule'), ['oci', '--version'], { reject: false, stdin: 'ignore' });
    expect(b.stdout).toMatch(/^capsule oci version /);
    const c = await execa(process.execPath, [join(dist, 'capsule-runc.mjs'), '--version'], { reject: false });
    expect(c.stdout).toBe(a.stdout);
  });

  it('features: the runtime-spec features document', async () => {
    const r = await cli(['features']);
    expect(r.exitCode).toBe(0);
    const f = JSON.parse(r.stdout) as {
      hooks: string[];
      linux: {
        namespaces: string[];
        capabilities: string[];
        cgroup: Record<string, boolean>;
        seccomp: { actions: string[]; archs: string[] };
      };
    };
    expect(f.hooks).toContain('poststop');
    expect(f.linux.namespaces).toEqual(expect.arrayContaining(['pid', 'network', 'mount', 'user', 'cgroup']));
    expect(f.linux.capabilities).toContain('CAP_SYS_ADMIN');
    expect(f.linux.cgroup).toMatchObject({ v1: true, v2: true, systemd: false });
    expect(f.linux.seccomp.actions).toContain('SCMP_ACT_ERRNO');
    expect(f.linux.seccomp.archs).toContain('SCMP_ARCH_X86_64');
  });

  it('spec writes config.json once, and a rootless one maps root to the caller', async () => {
    const b = join(tmp, 'specb');
    mkdirSync(b);
    expect((await cli(['spec', '-b', b])).exitCode).toBe(0);
    const s = JSON.parse(readFileSync(join(b, 'config.json'), 'utf8')) as {
      root: { path: string };
      linux: { namespaces: { type: string }[]; resources: { pids: { limit: number } } };
    };
    expect(s.root.path).toBe('rootfs');
    expect(s.linux.namespaces.map((n) => n.type)).toContain('cgroup');
    expect(s.linux.resources.pids.limit).toBe(1024);
    oneErrorLine(await cli(['spec', '--bundle', b]), 'config.json exists: remove it first');
    rmSync(join(b, 'config.json'));
    expect((await cli(['spec', '--rootless', '--bundle', b])).exitCode).toBe(0);
    const r = JSON.parse(readFileSync(join(b, 'config.json'), 'utf8')) as {
      linux: { uidMappings: { hostID: number }[]; namespaces: { type: string }[] };
    };
    expect(r.linux.uidMappings[0]!.hostID).toBe(process.getuid!());
    expect(r.linux.namespaces.map((n) => n.type)).toContain('user');
    expect(r.linux.namespaces.map((n) => n.type)).not.toContain('network');
  });

  it.each([
    [['bogus'], "unknown command 'bogus'"],
    [['--root', root, 'state', '../etc'], 'invalid container id "../etc"'],
    [['--root', root, 'state', 'nosuch'], 'container nosuch does not exist'],
    [['--root', root, 'kill', 'nosuch', 'SIGNOPE'], 'unknown signal "SIGNOPE"'],
    [['--systemd-cgroup', '--root', root, 'state', 'x'], '--systemd-cgroup is not supported'],
    [['--root', root, 'delete', 'nosuch'], 'container nosuch does not exist'],
    [['--root', root, 'create', '--preserve-fds', '2', 'x'], '--preserve-fds is not supported'],
    [['--root', root, 'exec', 'nosuch'], 'container nosuch does not exist'],
    [['--root', root, 'update', '--memory', 'lots', 'x'], '--memory takes a size'],
    [['--root', root, 'checkpoint', 'x'], 'checkpoint is not supported by capsule'],
  ])('%j fails with one line and exit 1', async (args, text) => {
    oneErrorLine(await cli(args), text);
  });

  it('--log-format json: each error is a JSON line in --log, as containerd reads it', async () => {
    const log = join(tmp, 'log.json');
    const r = await cli(['--log', log, '--log-format', 'json', '--root', root, 'state', 'nosuch']);
    oneErrorLine(r, 'container nosuch does not exist');
    await cli(['--log', log, '--log-format', 'json', 'bogus']);
    const lines = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, string>);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ level: 'error', msg: 'container nosuch does not exist' });
    expect(lines[1]!.msg).toBe("unknown command 'bogus'");
    expect(Number.isNaN(Date.parse(lines[1]!.time!))).toBe(false);
  });

  it('--log in text: a logrus line', async () => {
    const log = join(tmp, 'log.txt');
    await cli(['--log', log, '--root', root, 'delete', 'nosuch']);
    expect(readFileSync(log, 'utf8')).toMatch(
      /^time="[^"]+" level=error msg="container nosuch does not exist"\n$/,
    );
  });

  it('delete --force of an id that does not exist succeeds, as runc', async () => {
    expect((await cli(['--root', root, 'delete', '--force', 'nosuch'])).exitCode).toBe(0);
  });
});

describe.skipIf(!usable)('the lifecycle commands on a container', () => {
  it('state, list, ps, kill, then delete of the stopped container', async () => {
    const { state, child } = container('c1');
    const s = await cli(['--root', root, 'state', 'c1']);
    expect(s.exitCode).toBe(0);
    expect(JSON.parse(s.stdout)).toMatchObject({
      ociVersion: '1.2.0',
      id: 'c1',
      status: 'created',
      pid: child.pid,
      bundle: state.bundle,
      annotations: { a: 'b' },
    });

    const l = await cli(['--root', root, 'list', '--format', 'json']);
    expect(
      (JSON.parse(l.stdout) as { id: string; status: string }[]).find((c) => c.id === 'c1'),
    ).toMatchObject({ status: 'created', pid: child.pid });
    expect((await cli(['--root', root, 'list'])).stdout).toMatch(
      /^ID\s+PID\s+STATUS\s+BUNDLE\s+CREATED\s+OWNER\nc1\s+\d+\s+created\s/,
    );

    const ps = await cli(['--root', root, 'ps', '--format', 'json', 'c1']);
    expect(JSON.parse(ps.stdout)).toEqual([child.pid]);
    const pst = await cli(['--root', root, 'ps', 'c1']);
    expect(pst.stdout.split('\n')[1]).toMatch(/sleep 60/);

    expect((await cli(['--root', root, 'kill', 'c1', 'KILL'])).exitCode).toBe(0);
    await gone(child);
    expect(child.signalCode).toBe('SIGKILL');
    expect(JSON.parse((await cli(['--root', root, 'state', 'c1'])).stdout)).toMatchObject({
      status: 'stopped',
      pid: 0,
    });
    oneErrorLine(await cli(['--root', root, 'kill', 'c1']), 'container c1 is not running');
    oneErrorLine(await cli(['--root', root, 'start', 'c1']), 'cannot start a container that is stopped');

    expect((await cli(['--root', root, 'delete', 'c1'])).exitCode).toBe(0);
    expect(existsSync(join(root, 'c1'))).toBe(false);
    for (const p of state.cgroupPaths) expect(existsSync(p)).toBe(false);
  });

  it('kill takes runc signal spellings, and --all reaches every process of the cgroup', async () => {
    const { child } = container('c2', { status: 'running' });
    const other = spawn('sleep', ['60'], { stdio: 'ignore' });
    children.push(other);
    const st = JSON.parse((await cli(['--root', root, 'state', 'c2'])).stdout) as { status: string };
    expect(st.status).toBe('running');
    /* The second process joins the container's cgroup (as an exec'd one would). */
    const paths = JSON.parse(readFileSync(join(root, 'c2', 'state.json'), 'utf8')) as ContainerState;
    for (const p of paths.cgroupPaths) writeFileSync(join(p, 'cgroup.procs'), String(other.pid));
    expect(JSON.parse((await cli(['--root', root, 'ps', '-f', 'json', 'c2'])).stdout)).toEqual(
      [child.pid, other.pid].sort((a, b) => a! - b!),
    );
    expect((await cli(['--root', root, 'kill', '--all', 'c2', '15'])).exitCode).toBe(0);
    await gone(child);
    await gone(other);
    expect([child.signalCode, other.signalCode]).toEqual(['SIGTERM', 'SIGTERM']);
    expect((await cli(['--root', root, 'delete', 'c2'])).exitCode).toBe(0);
  });

  it('pause, resume and update a running container; delete refuses it without --force', async () => {
    const { state, child } = container('c3', { status: 'running' });
    expect((await cli(['--root', root, 'pause', 'c3'])).exitCode).toBe(0);
    expect(JSON.parse((await cli(['--root', root, 'state', 'c3'])).stdout).status).toBe('paused');
    oneErrorLine(await cli(['--root', root, 'pause', 'c3']), 'cannot pause container c3 that is paused');
    expect((await cli(['--root', root, 'resume', 'c3'])).exitCode).toBe(0);
    expect(JSON.parse((await cli(['--root', root, 'state', 'c3'])).stdout).status).toBe('running');

    expect((await cli(['--root', root, 'update', '--pids-limit', '33', 'c3'])).exitCode).toBe(0);
    const pidsDir = state.cgroupPaths.find((p) => existsSync(join(p, 'pids.max')))!;
    expect(readFileSync(join(pidsDir, 'pids.max'), 'utf8').trim()).toBe('33');
    expect(
      (await cli(['--root', root, 'update', '-r', '-', 'c3'], { input: '{"pids":{"limit":44}}' })).exitCode,
    ).toBe(0);
    expect(readFileSync(join(pidsDir, 'pids.max'), 'utf8').trim()).toBe('44');

    oneErrorLine(await cli(['--root', root, 'delete', 'c3']), 'cannot delete container c3 that is running');
    expect((await cli(['--root', root, 'pause', 'c3'])).exitCode).toBe(0);
    /* --force: SIGKILL, even to a frozen container, and everything goes. */
    expect((await cli(['--root', root, 'delete', '--force', 'c3'])).exitCode).toBe(0);
    await gone(child);
    expect(child.signalCode).toBe('SIGKILL');
    expect(existsSync(join(root, 'c3'))).toBe(false);
    for (const p of state.cgroupPaths) expect(existsSync(p)).toBe(false);
  });

  it('concurrent deletes of one container: one succeeds, the others find no container', async () => {
    const { state, child } = container('c4');
    child.kill('SIGKILL');
    await gone(child);
    const rs = await Promise.all(Array.from({ length: 6 }, () => cli(['--root', root, 'delete', 'c4'])));
    expect(rs.filter((r) => r.exitCode === 0)).toHaveLength(1);
    for (const r of rs.filter((x) => x.exitCode !== 0)) oneErrorLine(r, 'container c4 does not exist');
    expect(existsSync(join(root, 'c4'))).toBe(false);
    for (const p of state.cgroupPaths) expect(existsSync(p)).toBe(false);
    expect(procStat(child.pid!)).toBeNull();
  });

  it('poststop hooks run on delete with the state on stdin; a failing one is a warning', async () => {
    const out = join(tmp, 'hook-out');
    const { child } = container('c5', {
      hooks: {
        poststart: [],
        poststop: [
          { path: '/bin/sh', args: ['sh', '-c', `cat > ${out}`], env: [] },
          { path: '/bin/false', args: ['false'], env: [] },
        ],
      },
    });
    child.kill('SIGKILL');
    await gone(child);
    const r = await cli(['--root', root, 'delete', 'c5']);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/warning: poststop hook \/bin\/false exited with 1/);
    expect(JSON.parse(readFileSync(out, 'utf8'))).toMatchObject({ id: 'c5', status: 'stopped' });
  });
});

/* The addon's OCI mode (the lead's native side): its marker is startSignal. */
const hasOci = typeof (native() as { startSignal?: unknown }).startSignal === 'number';

/*
 * A copy of the test rootfs, made once: an OCI rootfs is the container's own, and create makes
 * its mount points in it (/sys/fs/cgroup, /dev/pts...), which the shared one must never get.
 */
let rootfsCopy = '';
function privateRootfs(): string {
  if (!rootfsCopy) {
    rootfsCopy = join(tmp, 'rootfs');
    cpSync(inject('rootfs'), rootfsCopy, { recursive: true, verbatimSymlinks: true });
  }
  return rootfsCopy;
}

/**
 * `create --pid-file` of bundle `b` as `id`; returns the pid the file holds. The container keeps
 * create's stdio: a file, not a pipe that would not reach EOF.
 */
function createWithPidFile(id: string, b: string): number {
  const pidFile = join(tmp, `${id}.pid`);
  const log = openSync(join(tmp, `${id}.out`), 'w');
  const r = spawnSync(runc, ['--root', root, 'create', '--bundle', b, '--pid-file', pidFile, id], {
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  expect(r.status).toBe(0);
  return Number(readFileSync(pidFile, 'utf8'));
}

/** A bundle of the test rootfs (busybox) with `capsule-runc spec`'s config.json, changed by `edit`. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- config.json, edited freely
type Config = Record<string, any>;
async function bundle(name: string, edit: (c: Config) => void): Promise<string> {
  const b = join(tmp, name);
  mkdirSync(b);
  expect((await cli(['spec', '-b', b])).exitCode).toBe(0);
  const c = JSON.parse(readFileSync(join(b, 'config.json'), 'utf8')) as Config;
  c.root.path = privateRootfs();
  c.process.terminal = false;
  c.linux.cgroupsPath = `/capsule-test/oci-cli-${process.pid}-${name}`;
  edit(c);
  writeFileSync(join(b, 'config.json'), JSON.stringify(c));
  return b;
}

describe.skipIf(!hasOci || !usable)('real containers through capsule-runc', () => {
  it('create, start, state, exec, ps, kill, delete a busybox sleep; nothing is left', async () => {
    const b = await bundle('real1', (c) => (c.process.args = ['sleep', '60']));
    const pidFile = join(tmp, 'real1.pid');
    const log = join(tmp, 'real1.log');
    const r = (args: string[], input?: string) =>
      cli(
        ['--root', root, '--log', log, '--log-format', 'json', ...args],
        input !== undefined ? { input } : {},
      );
    /*
     * The container's stdio is create's 0, 1 and 2, as runc's: to files here, since it keeps
     * them open (a pipe would not reach EOF, and execa, which pipes even a `{file}` target, would wait
     * for it until the container ends).
     */
    const outFile = join(tmp, 'real1.out');
    const outFd = openSync(outFile, 'w');
    const created = spawnSync(
      runc,
      ['--root', root, 'create', '--bundle', b, '--pid-file', pidFile, 'real1'],
      {
        stdio: ['ignore', outFd, outFd],
      },
    );
    closeSync(outFd);
    expect(readFileSync(outFile, 'utf8')).toBe('');
    expect(created.status).toBe(0);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    const st = JSON.parse((await r(['state', 'real1'])).stdout) as {
      status: string;
      pid: number;
      cgroupPaths?: string[];
    };
    expect(st).toMatchObject({ status: 'created', pid });
    const saved = JSON.parse(readFileSync(join(root, 'real1', 'state.json'), 'utf8')) as ContainerState;
    expect(saved.cgroupPaths.every((p) => p.includes(`/capsule-test/oci-cli-${process.pid}-real1`))).toBe(
      true,
    );

    /* Concurrent starts: exactly one releases it. */
    const starts = await Promise.all([r(['start', 'real1']), r(['start', 'real1']), r(['start', 'real1'])]);
    expect(starts.filter((s) => s.exitCode === 0)).toHaveLength(1);
    for (const s of starts.filter((x) => x.exitCode !== 0))
      oneErrorLine(s, 'cannot start a container that is running');
    expect(JSON.parse((await r(['state', 'real1'])).stdout).status).toBe('running');

    const ex = await r([
      'exec',
      'real1',
      'sh',
      '-c',
      'test "$(cat /proc/1/cmdline | head -c 4)" != "" && exit 5',
    ]);
    expect(ex.exitCode).toBe(5);
    const processJson = JSON.stringify({
      args: ['sh', '-c', 'exit $X'],
      env: ['X=9', 'PATH=/bin'],
      cwd: '/',
      user: { uid: 0, gid: 0 },
    });
    expect((await r(['exec', '--process', '-', 'real1'], processJson)).exitCode).toBe(9);
    /* exec --detach (containerd's and podman's way): returns at once, the pid file names the process. */
    const execPid = join(tmp, 'real1-exec.pid');
    const detached = spawnSync(
      runc,
      ['--root', root, 'exec', '--detach', '--pid-file', execPid, 'real1', 'sleep', '50'],
      {
        stdio: ['ignore', 'ignore', 'ignore'],
      },
    );
    expect(detached.status).toBe(0);
    const ep = Number(readFileSync(execPid, 'utf8'));
    expect(procStat(ep)).not.toBeNull();
    const pids = JSON.parse((await r(['ps', '--format', 'json', 'real1'])).stdout) as number[];
    expect(pids).toContain(ep);
    expect(pids).toContain(pid);
    expect(pids.length).toBeGreaterThanOrEqual(2);

    expect((await r(['kill', 'real1', 'KILL'])).exitCode).toBe(0);
    for (let i = 0; i < 500 && JSON.parse((await r(['state', 'real1'])).stdout).status !== 'stopped'; i++)
      await new Promise((res) => setTimeout(res, 10));
    expect(JSON.parse((await r(['state', 'real1'])).stdout).status).toBe('stopped');
    expect((await r(['delete', 'real1'])).exitCode).toBe(0);
    expect(existsSync(join(root, 'real1'))).toBe(false);
    for (const p of saved.cgroupPaths) expect(existsSync(p)).toBe(false);
    /* Gone, or a zombie its new parent (this machine's reaper of orphans, not capsule) has yet to reap. */
    for (const p of pids) expect(procStat(p)?.state ?? 'gone').toMatch(/^(gone|Z)$/);
    /* The log holds the two refused starts' errors, as JSON lines, and no other error. */
    const errors = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { level: string; msg: string })
      .filter((l) => l.level === 'error');
    expect(errors.map((e) => e.msg)).toEqual(
      Array(2).fill('cannot start a container that is running: only a created one starts'),
    );
  });

  it("run: the exit status is the container's, and the container is deleted after", async () => {
    const b = await bundle('real2', (c) => (c.process.args = ['sh', '-c', 'exit 42']));
    const r = await cli(['--root', root, 'run', '--bundle', b, 'real2']);
    expect(r.exitCode).toBe(42);
    expect(existsSync(join(root, 'real2'))).toBe(false);
    expect(existsSync(`/sys/fs/cgroup/pids/capsule-test/oci-cli-${process.pid}-real2`)).toBe(false);
  });

  it('a failing create (a missing program) is one line, and leaves no state and no cgroup', async () => {
    const b = await bundle('real3', (c) => (c.process.args = ['no-such-program']));
    const r = await cli(['--root', root, 'create', '--bundle', b, 'real3']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(existsSync(join(root, 'real3'))).toBe(false);
    expect(existsSync(`/sys/fs/cgroup/pids/capsule-test/oci-cli-${process.pid}-real3`)).toBe(false);
  });

  it("prestart and createRuntime hooks get the state on stdin: created, with PID 1's pid", async () => {
    const out = join(tmp, 'hook-state');
    const b = await bundle('real5', (c) => {
      c.process.args = ['sleep', '60'];
      const hook = { path: '/bin/sh', args: ['sh', '-c', `cat >> ${out}; echo >> ${out}`] };
      c.hooks = { prestart: [hook], createRuntime: [hook] };
    });
    const pid = createWithPidFile('real5', b);
    const states = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: string; status: string; pid: number; bundle: string });
    expect(states).toHaveLength(2);
    for (const st of states)
      expect(st).toMatchObject({
        id: 'real5',
        status: 'created',
        pid,
        bundle: b,
      });
    expect((await cli(['--root', root, 'delete', '--force', 'real5'])).exitCode).toBe(0);
  });

  it("a createContainer hook runs in the container's namespaces, with the state on stdin", async () => {
    const out = join(tmp, 'hook-cc');
    const b = await bundle('real7', (c) => {
      c.process.args = ['sleep', '60'];
      c.hooks = {
        createContainer: [
          { path: '/bin/sh', args: ['sh', '-c', `{ cat; echo; readlink /proc/self/ns/net; } > ${out}`] },
        ],
      };
    });
    const pid = createWithPidFile('real7', b);
    const [state, netns] = readFileSync(out, 'utf8').trim().split('\n');
    expect(JSON.parse(state!)).toMatchObject({ id: 'real7', status: 'created', pid, bundle: b });
    expect(netns).toBe(readlinkSync(`/proc/${pid}/ns/net`));
    expect(netns).not.toBe(readlinkSync('/proc/self/ns/net'));
    expect((await cli(['--root', root, 'delete', '--force', 'real7'])).exitCode).toBe(0);
  });

  it('a config.json without process creates a container that start refuses, and delete removes', async () => {
    const b = await bundle('real6', (c) => delete (c as { process?: unknown }).process);
    const log = openSync(join(tmp, 'real6.out'), 'w');
    const r = spawnSync(runc, ['--root', root, 'create', '--bundle', b, 'real6'], {
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    expect(r.status).toBe(0);
    oneErrorLine(await cli(['--root', root, 'start', 'real6']), 'its config.json has no process');
    expect(JSON.parse((await cli(['--root', root, 'state', 'real6'])).stdout)).toMatchObject({
      status: 'created',
    });
    expect((await cli(['--root', root, 'delete', '--force', 'real6'])).exitCode).toBe(0);
    expect(existsSync(join(root, 'real6'))).toBe(false);
  });

  it('a failing prestart hook fails create and ends the container', async () => {
    const b = await bundle('real4', (c) => {
      c.process.args = ['sleep', '60'];
      c.hooks = { prestart: [{ path: '/bin/sh', args: ['sh', '-c', 'echo no >&2; exit 3'] }] };
    });
    const r = await cli(['--root', root, 'create', '--bundle', b, 'real4']);
    oneErrorLine(r, 'prestart hook /bin/sh exited with 3: no');
    expect(existsSync(join(root, 'real4'))).toBe(false);
  });
});

/* The far end of --console-socket, as podman's conmon is: it receives the terminal's master (SCM_RIGHTS) and reads it. */
const CONSOLE_PY = `
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(1)
print('ready', flush=True)
c, _ = s.accept()
msg, fds, flags, addr = socket.recv_fds(c, 1024, 1)
buf = b''
while b'hello-tty' not in buf:
    buf += os.read(fds[0], 1024)
print('tty' if b'is-a-tty' in buf else 'not-a-tty', flush=True)
`;

describe.skipIf(!hasOci || !usable)('a container with a terminal', () => {
  it('sends the master to --console-socket, and the program has a terminal', async () => {
    const b = await bundle('tty1', (c) => {
      c.process.terminal = true;
      c.process.args = ['sh', '-c', 'test -t 0 && test -t 1 && echo is-a-tty; echo hello-tty; sleep 60'];
    });
    const sock = join(tmp, 'console.sock');
    const py = spawn('python3', ['-c', CONSOLE_PY, sock], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(py);
    /* One listener for the whole run: a line that comes while nobody waits is kept, not lost. */
    const lines: string[] = [];
    let waiting: ((line: string) => void) | null = null;
    py.stdout!.on('data', (d: Buffer) => {
      lines.push(
        ...d
          .toString()
          .split('\n')
          .filter((l) => l.trim() !== ''),
      );
      if (waiting && lines.length) {
        const w = waiting;
        waiting = null;
        w(lines.shift()!);
      }
    });
    const next = () =>
      new Promise<string>((res) => {
        if (lines.length) res(lines.shift()!);
        else waiting = res;
      });
    expect(await next()).toBe('ready');
    oneErrorLine(
      await cli(['--root', root, 'create', '--bundle', b, 'tty1']),
      'process.terminal is true but no --console-socket was given',
    );
    const created = spawnSync(
      runc,
      ['--root', root, 'create', '--bundle', b, '--console-socket', sock, 'tty1'],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
        encoding: 'utf8',
      },
    );
    expect(created.stderr).toBe('');
    expect(created.status).toBe(0);
    const started = await cli(['--root', root, 'start', 'tty1']);
    expect(started.stderr).toBe('');
    expect(started.exitCode).toBe(0);
    expect(await next()).toBe('tty');
    expect((await cli(['--root', root, 'delete', '--force', 'tty1'])).exitCode).toBe(0);
    expect(existsSync(join(root, 'tty1'))).toBe(false);
  });
});
