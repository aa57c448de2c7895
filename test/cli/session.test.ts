/**
 * `capsule create / exec / cp / ps / rm` as a user meets them: a box outlives the
 * `create` that made it, commands share its /tmp, exit statuses are the program's, a name
 * is taken once, and rm leaves nothing (holder, box, record).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, inject, it } from 'vitest';

import { processesWith } from '../helpers/host.js';

const rootfs = inject('rootfs');
const cli = join(import.meta.dirname, '../../dist/capsule.mjs');
const capsule = (args: string[]) => execa('node', [cli, ...args], { reject: false, stdin: 'ignore' });
const name = `t-${process.pid}`;
const dir = join('/run/capsule/sessions', name);

function expectOneLine(stderr: string, pattern: RegExp) {
  expect(stderr.split('\n')).toHaveLength(1);
  expect(stderr).toMatch(/^capsule: /);
  expect(stderr).toMatch(pattern);
}

describe('capsule sessions', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'capsule-cli-session-'));
  afterAll(async () => {
    await capsule(['rm', name]);
    rmSync(tmp, { recursive: true, force: true });
  });

  it('create starts a box that outlives it; exec runs in it with the exit status of the program', async () => {
    const c = await capsule(['create', '--name', name, '--pids-limit', '64', rootfs]);
    expect(c).toMatchObject({ exitCode: 0, stdout: name, stderr: '' });
    const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { pid: number };
    expect(existsSync(`/proc/${state.pid}`)).toBe(true);

    const a = await capsule(['exec', name, '/bin/sh', '-c', 'echo kept > /tmp/f; id -u']);
    expect(a).toMatchObject({ exitCode: 0, stdout: '65534' });
    const b = await capsule(['exec', name, '/bin/cat', '/tmp/f']);
    expect(b).toMatchObject({ exitCode: 0, stdout: 'kept' });
    expect((await capsule(['exec', name, '/bin/sh', '-c', 'exit 7'])).exitCode).toBe(7);
    const slow = await capsule(['exec', '--wall-time-limit', '200ms', name, '/probe', 'sleep', '5000']);
    expect(slow.exitCode).toBe(128 + 9);
    expect(slow.stderr).toMatch(/wall time limit exceeded/);

    const ps = await capsule(['ps']);
    expect(ps.stdout).toMatch(new RegExp(`^${name}\\s+${state.pid}\\s+running`, 'm'));
  });

  it('cp copies in and out, and refuses a symlink planted in the box', async () => {
    writeFileSync(join(tmp, 'in'), 'from host\n');
    expect((await capsule(['cp', join(tmp, 'in'), `${name}:/tmp/in`])).exitCode).toBe(0);
    expect((await capsule(['exec', name, '/bin/cat', '/tmp/in'])).stdout).toBe('from host');
    expect((await capsule(['cp', `${name}:/tmp/f`, join(tmp, 'out')])).exitCode).toBe(0);
    expect(readFileSync(join(tmp, 'out'), 'utf8')).toBe('kept\n');

    await capsule(['exec', name, '/bin/busybox', 'ln', '-s', '/', '/tmp/root']);
    const r = await capsule(['cp', `${name}:/tmp/root/etc/passwd`, join(tmp, 'passwd')]);
    expect(r.exitCode).toBe(125);
    expectOneLine(r.stderr, /symlink/);
    expect(existsSync(join(tmp, 'passwd'))).toBe(false);
  });

  it('a name is taken once; bad input is one line and 125', async () => {
    const again = await capsule(['create', '--name', name, rootfs]);
    expect(again.exitCode).toBe(125);
    expectOneLine(again.stderr, /exists already/);
    const bad = await capsule(['create', '--name', '../x', rootfs]);
    expect(bad.exitCode).toBe(125);
    expectOneLine(bad.stderr, /session name/);
    const none = await capsule(['exec', 'no-such-session', '/bin/true']);
    expect(none.exitCode).toBe(125);
    expectOneLine(none.stderr, /no session named no-such-session/);
  });

  it('rm ends the box and its holder and removes the record', async () => {
    const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as {
      pid: number;
      holderPid: number;
    };
    const r = await capsule(['rm', name]);
    expect(r).toMatchObject({ exitCode: 0, stderr: '' });
    expect(existsSync(dir)).toBe(false);
    expect(existsSync(`/proc/${state.pid}`)).toBe(false);
    expect(existsSync(`/proc/${state.holderPid}`)).toBe(false);
    expect(processesWith(name)).toEqual([]);
    expect((await capsule(['exec', name, '/bin/true'])).exitCode).toBe(125);
  });
});
