/**
 * A whole run() on cgroup v2 alone, on this hybrid machine: a child Node process in a mount
 * namespace of its own (unshare -m) where every v1 hierarchy is unmounted, so that capsule
 * finds only the cgroup2 mount and gates devices with its BPF device program. While the
 * sandbox runs, helper shells are moved into its v2 cgroup and open nodes as root (so the
 * nodes' modes cannot be what refuses them): what the program allows opens, the rest is EPERM.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { detectCgroups } from '../../src/cgroup/detect.js';

const rootfs = inject('rootfs');
const dist = join(import.meta.dirname, '../../dist/src');
const unified = detectCgroups().unified;
const skip =
  process.getuid?.() !== 0
    ? 'not root'
    : !unified || unified.readOnly
      ? 'no writable cgroup2 mount'
      : !existsSync(join(dist, 'index.js'))
        ? 'dist/ not built (npm run build:ts)'
        : !existsSync('/usr/bin/unshare')
          ? 'no unshare(1)'
          : null;
if (skip) console.warn(`skipping run() on cgroup v2 alone: ${skip}`);

const SCRIPT = `
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { run } from '${dist}/index.js';
import { detectCgroups } from '${dist}/cgroup/index.js';

const layout = detectCgroups();
let seen = null;
const r = await run({
  rootfs: process.argv[2],
  argv: ['/bin/sh', '-c', '/probe sleep 300 && exec /probe dev /dev/fuse'],
  devices: ['/dev/fuse:r'],
  onSpawn: (sb) => {
    const path = readFileSync('/proc/' + sb.pid + '/cgroup', 'utf8').split('\\n').find((l) => l.startsWith('0::')).slice(3);
    const dir = layout.unified.mountPoint + path;
    const open = (how) => {
      const p = spawnSync('/bin/sh', ['-c', 'echo $$ > ' + dir + '/cgroup.procs && exec ' + how + ' && echo ok'], { encoding: 'utf8' });
      return (p.stdout + p.stderr).includes('Operation not permitted') ? 'EPERM' : p.stdout.trim();
    };
    seen = {
      cgroup: path,
      fuseRead: open('3</dev/fuse'),
      fuseWrite: open('3>/dev/fuse'),
      denied: open('3<' + process.argv[3]),
      nullWrite: open('3>/dev/null'),
    };
  },
});
console.log(JSON.stringify({ mode: layout.mode, devices: layout.controllers.devices?.version ?? null, probe: JSON.parse(r.stdout), seen }));
`;

describe.skipIf(skip !== null)('run() on cgroup v2 alone: the BPF device program', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'capsule-v2run-'));
    writeFileSync(join(dir, 'run.mjs'), SCRIPT);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('allows the sandbox exactly its nodes with the access asked; everything else is EPERM', async () => {
    // A host node the program does not allow: /dev/kvm, or where there is none (a VM without
    // nested virtualization) another node a typical machine has.
    const denied = ['/dev/kvm', '/dev/net/tun', '/dev/loop-control'].find((d) => existsSync(d));
    if (!denied) throw new Error('none of /dev/kvm, /dev/net/tun, /dev/loop-control on this host');
    const r = await execa(
      'unshare',
      [
        '-m', // private propagation: the umounts below stay in this namespace
        'sh',
        '-c',
        'for m in $(grep " - cgroup " /proc/self/mountinfo | cut -d" " -f5); do umount -l "$m"; done; exec "$0" "$@"',
        process.execPath,
        join(dir, 'run.mjs'),
        rootfs,
        denied,
      ],
      { reject: false },
    );
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as {
      mode: string;
      devices: number | null;
      probe: { read: string; write: string; mode: number }[];
      seen: Record<string, string>;
    };
    expect([out.mode, out.devices]).toEqual(['v2', 2]);
    expect(out.probe[0]).toMatchObject({ mode: 0o444, read: 'ok', write: 'EACCES' });
    expect(out.seen.cgroup).toMatch(/^\/capsule\/\d+-\d+-\d+$/);
    // The child's manager removed its cgroup when it exited.
    expect(existsSync(unified!.mountPoint + out.seen.cgroup)).toBe(false);
    // Root in the sandbox's cgroup: the host's 0600 root nodes pass the mode; the program decides.
    expect(out.seen).toMatchObject({ fuseRead: 'ok', fuseWrite: 'EPERM', denied: 'EPERM', nullWrite: 'ok' });
  });
});
