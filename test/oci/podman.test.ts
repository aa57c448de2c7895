/**
 * podman with the OCI runtime under test (`podman --runtime RUNTIME`), as a person uses it:
 * run, a terminal, exec, stop, kill, rm -f, and the exit status of a failing program. The
 * runtime is CAPSULE_OCI_RUNTIME or the repository's dist/capsule-runc (test/oci/helpers.ts).
 *
 * podman runs from a private storage under a temp dir, with every container under one
 * cgroup parent of this suite's; afterwards no container, conmon, mount or cgroup is left.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { noPtyReason } from '../helpers/host.js';
import {
  cgroupDirs,
  cgroupPathsOf,
  leftovers,
  makeBusyboxTar,
  memoryLimitOf,
  ociRuntime,
  removeCgroupTree,
  runtimeForEngines,
  waitFor,
} from './helpers.js';
import { Podman } from './podman.js';

const TMUX = '/usr/bin/tmux';
const IMAGE = 'localhost/capsule-busybox:test';
const rt = ociRuntime();
if (rt.skip) console.warn(`test/oci/podman: skipped: ${rt.skip}`);

describe.skipIf(rt.skip !== undefined)(`podman --runtime ${rt.path ?? '(none)'}`, () => {
  let dir: string;
  let cgroupParent: string;
  let podman: Podman;

  beforeAll(() => {
    if (!existsSync('/usr/bin/podman')) throw new Error('podman is missing: apt-get install podman');
    dir = mkdtempSync(join(tmpdir(), 'capsule-oci-podman-'));
    cgroupParent = `/capsule-test-${basename(dir)}`;
    podman = new Podman(dir, runtimeForEngines(dir, rt.path as string), cgroupParent);
    podman.run(['import', makeBusyboxTar(dir), IMAGE]);
  });

  afterAll(() => {
    if (!dir) return;
    try {
      /* Whatever a failed test left running goes first, then the images. */
      podman.status(['rm', '--all', '--force', '--time', '0']);
      const left = podman.run(['ps', '--all', '--quiet']).trim();
      podman.status(['rmi', '--all', '--force']);
      expect(left, 'containers left').toBe('');
      /* conmon and the containers are gone, nothing is mounted under the temp dir... */
      expect(leftovers(dir, '/nonexistent-cgroup')).toEqual([]);
      /*
       * ...and the cgroup parent holds no process: podman leaves the parent (and conmon's
       * cgroup in it) behind by design, so the suite removes them; rmdir(2) fails with
       * EBUSY on a cgroup that still has a process or a child.
       */
      removeCgroupTree(cgroupParent);
      expect(cgroupDirs(cgroupParent)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs a program and prints its output (podman run --rm)', () => {
    const out = podman.run(['run', '--rm', ...podman.runOptions, IMAGE, 'echo', 'hi']);
    expect(out).toBe('hi\n');
    expect(podman.run(['ps', '--all', '--quiet']).trim()).toBe('');
  });

  it("passes on a failing program's exit status", () => {
    const r = podman.status([
      'run',
      '--rm',
      ...podman.runOptions,
      IMAGE,
      'sh',
      '-c',
      'echo failing >&2; exit 3',
    ]);
    expect(r.status).toBe(3);
    expect(r.stderr).toContain('failing');
  });

  it('execs into a running container and stops it (exec, stop)', async () => {
    /* The program ends on SIGTERM, so that `stop` ends it without needing its SIGKILL. */
    const id = podman
      .run([
        'run',
        '--detach',
        '--name',
        'capsule-exec',
        ...podman.runOptions,
        IMAGE,
        'sh',
        '-c',
        "trap 'exit 0' TERM; echo ready > /tmp/ready; while :; do sleep 0.1; done",
      ])
      .trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    await waitFor('the container to start', 10_000, () =>
      podman.status(['exec', 'capsule-exec', 'cat', '/tmp/ready']).stdout === 'ready\n' ? true : undefined,
    );
    /* The exec'd process is in the container: same pid namespace (it sees pid 1 as the sh above). */
    const seen = podman.run([
      'exec',
      'capsule-exec',
      'sh',
      '-c',
      'cat /proc/1/cmdline | tr "\\0" " "; echo; id -u',
    ]);
    expect(seen).toMatch(/^sh -c trap .*\n0\n$/);
    expect(podman.status(['exec', 'capsule-exec', 'sh', '-c', 'exit 4']).status).toBe(4);
    podman.run(['stop', '--time', '10', 'capsule-exec']);
    const state = JSON.parse(podman.run(['inspect', 'capsule-exec']))[0].State;
    expect(state.Status).toBe('exited');
    expect(state.ExitCode).toBe(0);
    podman.run(['rm', 'capsule-exec']);
  });

  it('pauses and resumes a container, updates its resources, execs with a terminal (pause, unpause, update, exec -t)', () => {
    podman.run(['run', '--detach', '--name', 'capsule-pause', ...podman.runOptions, IMAGE, 'sleep', '1000']);
    const inspect = () => JSON.parse(podman.run(['inspect', 'capsule-pause']))[0].State;
    podman.run(['pause', 'capsule-pause']);
    expect(inspect().Status).toBe('paused');
    podman.run(['unpause', 'capsule-pause']);
    expect(inspect().Status).toBe('running');
    /* update: the new memory limit is the container cgroup's, seen from the host. */
    /* Its cgroup, in every hierarchy, is under the suite's --cgroup-parent. */
    for (const path of cgroupPathsOf(inspect().Pid))
      expect(path.startsWith(`${cgroupParent}/`), path).toBe(true);
    podman.run(['update', '--memory', '64m', 'capsule-pause']);
    expect(memoryLimitOf(inspect().Pid)).toBe(String(64 * 1024 * 1024));
    /* exec -t: the exec'd process gets a terminal of its own (the runtime's --console-socket). */
    expect(podman.run(['exec', '--tty', 'capsule-pause', 'tty']).trim()).toMatch(/^\/dev\/pts\/\d+$/);
    podman.run(['rm', '--force', '--time', '0', 'capsule-pause']);
  });

  it('kills a running container with a signal (kill)', async () => {
    podman.run(['run', '--detach', '--name', 'capsule-kill', ...podman.runOptions, IMAGE, 'sleep', '1000']);
    podman.run(['kill', '--signal', 'KILL', 'capsule-kill']);
    const state = await waitFor('the container to exit', 10_000, () => {
      const s = JSON.parse(podman.run(['inspect', 'capsule-kill']))[0].State;
      return s.Status === 'exited' ? s : undefined;
    });
    expect(state.ExitCode).toBe(137);
    podman.run(['rm', 'capsule-kill']);
  });

  it('removes a running container by force (rm -f)', () => {
    podman.run(['run', '--detach', '--name', 'capsule-rmf', ...podman.runOptions, IMAGE, 'sleep', '1000']);
    expect(JSON.parse(podman.run(['inspect', 'capsule-rmf']))[0].State.Status).toBe('running');
    podman.run(['rm', '--force', '--time', '0', 'capsule-rmf']);
    expect(podman.status(['inspect', 'capsule-rmf']).status).not.toBe(0);
    expect(podman.run(['ps', '--all', '--quiet']).trim()).toBe('');
  });

  it.skipIf(noPtyReason() !== null)('gives the program a terminal (run -it, in a tmux pane)', async () => {
    if (!existsSync(TMUX)) throw new Error(`${TMUX} is missing: apt-get install tmux`);
    const socket = join(dir, 'tmux.sock');
    const script = join(dir, 'pane.sh');
    writeFileSync(
      script,
      [
        podman.commandLine(['run', '-it', '--rm', ...podman.runOptions, '--env', 'PS1=box$ ', IMAGE, 'sh']),
        `echo "podman exited $?"`,
        'exec sleep 3600',
      ].join('\n') + '\n',
    );
    const tmux = (...args: string[]) => execFileSync(TMUX, ['-S', socket, ...args], { encoding: 'utf8' });
    tmux('new-session', '-d', '-x', '100', '-y', '30', 'sh', script);
    try {
      const screen = () => tmux('capture-pane', '-p', '-J');
      await waitFor('the shell prompt', 15_000, () => {
        const s = screen();
        if (s.includes('podman exited'))
          throw new Error(`podman ended before the shell prompt:\n${s.trim()}`);
        return s.includes('box$') ? true : undefined;
      });
      /* What is typed reaches the shell through the terminal, and the size is the pane's. */
      tmux('send-keys', 'tty; stty size; echo typed-$((6*7))', 'Enter');
      const out = await waitFor('the output', 10_000, () => {
        const s = screen();
        return s.includes('typed-42') && /\n\d+ \d+\n/.test(s) ? s : undefined;
      });
      expect(out).toMatch(/\/dev\/pts\/\d+/);
      expect(out).toContain(tmux('display-message', '-p', '#{pane_height} #{pane_width}').trim());
      tmux('send-keys', 'exit 5', 'Enter');
      await waitFor('podman to exit', 15_000, () =>
        screen().includes('podman exited 5') ? true : undefined,
      );
    } finally {
      tmux('kill-server');
    }
  });
});
