/**
 * --explain: every step of a run, in order, with its call and time; and the plan
 * for options alone, without running anything. Step names are the ones in
 * native/steps.h everywhere.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, inject, it } from 'vitest';

import { explainOptions } from '../src/run.js';
import { native } from '../src/native.js';
import { run, SetupError, STEPS } from '../src/index.js';

const rootfs = inject('rootfs');
const cli = join(import.meta.dirname, '../dist/capsule.mjs');
const order = STEPS.map((s) => s.name as string);

/** The steps appear in the order native/steps.h lists them (each may repeat). */
function expectInStepOrder(names: string[]) {
  const positions = names.map((n) => order.indexOf(n));
  expect(positions.every((p) => p >= 0)).toBe(true);
  /* Mount-phase steps follow the plan; check the big landmarks keep their order. */
  const landmarks = [
    'clone',
    'set_pdeathsig',
    'mount_proc',
    'pivot_root',
    'set_uid',
    'exec_init',
    'fork_program',
    'exec',
  ];
  const seen = landmarks.map((l) => names.indexOf(l));
  expect(seen.every((p) => p >= 0)).toBe(true);
  expect([...seen].sort((a, b) => a - b)).toEqual(seen);
}

describe('explain', () => {
  it('names the steps exactly as the addon does', () => {
    expect(
      native()
        .steps()
        .map((s) => s.name),
    ).toEqual(order);
  });

  it('has every step explained in docs/internals.md', () => {
    const doc = readFileSync(join(import.meta.dirname, '../docs/internals.md'), 'utf8');
    expect(order.filter((name) => !new RegExp(`\\b${name}\\b`).test(doc))).toEqual([]);
  });

  it('records every step of a run with its call and time', async () => {
    const r = await run({ rootfs, argv: ['/bin/true'], explain: true, memoryLimitBytes: 64 << 20 });
    const steps = r.explain!;
    expectInStepOrder(steps.map((s) => s.step));
    const by = (name: string) => steps.filter((s) => s.step === name);
    expect(by('pivot_root')[0]!.call).toMatch(/^fchdir\(".+"\); pivot_root\("\.", "\."\)$/);
    expect(by('mount_proc')[0]!.call).toMatch(
      /^fsopen\("proc"\); fsmount\(MOUNT_ATTR_NOSUID\|MOUNT_ATTR_NODEV\|MOUNT_ATTR_NOEXEC\); move_mount\(mnt, "\/proc"\)$/,
    );
    expect(by('set_uid')[0]!.call).toBe('setresuid(65534, 65534, 65534)');
    expect(by('exec')[0]!.call).toBe('execve("/bin/true")');
    expect(by('set_cgroup_limits').some((s) => /memory\.limit_in_bytes|memory\.max/.test(s.call))).toBe(true);
    for (const s of steps.filter((x) => x.side === 'child')) {
      expect(s.durationMs).not.toBeNull();
      expect(s.durationMs!).toBeGreaterThanOrEqual(0);
      expect(s.why).not.toBe('');
      expect(s.man).toMatch(/\(\d\w*\)$/);
    }
  });

  it('adds nothing to a run that does not ask', async () => {
    const r = await run({ rootfs, argv: ['/bin/true'] });
    expect(r.explain).toBeUndefined();
  });

  it('shows how far a failed run got', async () => {
    const e = (await run({ rootfs, argv: ['/bin/nope'], explain: true }).catch(
      (x: unknown) => x,
    )) as SetupError;
    expect(e).toBeInstanceOf(SetupError);
    expect(e.step).toBe('exec');
    expect(e.explain!.map((s) => s.step)).toContain('exec_init');
  });

  it('plans the same steps for options alone, running nothing', () => {
    const planned = explainOptions({ rootfs, argv: ['/bin/true'], memoryLimitBytes: 64 << 20 });
    expectInStepOrder(planned.map((s) => s.step));
    expect(planned.every((s) => s.atMs === null && s.durationMs === null)).toBe(true);
    expect(planned.find((s) => s.step === 'join_cgroup')!.call).toBe(
      'write(cgroup.procs, "0") in each hierarchy',
    );
  });
});

describe('capsule explain and --explain', () => {
  it('prints the plan and exits 0', async () => {
    const r = await execa('node', [cli, 'explain', rootfs, '/bin/true'], { reject: false });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^capsule: the steps of this sandbox/);
    expect(r.stdout).toMatch(
      /child +pivot_root +fchdir\(.*\); pivot_root\("\.", "\."\) +\[pivot_root\(2\)\]/,
    );
  });

  it("prints a run's steps to stderr, the program's output staying on stdout", async () => {
    const r = await execa('node', [cli, 'run', '--explain', rootfs, '/bin/echo', 'hi'], { reject: false });
    expect(r.stdout).toBe('hi');
    expect(r.stderr).toMatch(/\+\d+\.\d{3} +\d+\.\d{3} ms +child +mount_proc/);
  });

  it('prints JSON with --explain=json', async () => {
    const r = await execa('node', [cli, 'run', '--explain=json', rootfs, '/bin/true'], { reject: false });
    const steps = JSON.parse(r.stderr) as { step: string }[];
    expectInStepOrder(steps.map((s) => s.step));
  });
});
