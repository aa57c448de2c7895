/**
 * The network-namespace pool (native/netns_pool.cc) started ahead of a process's first
 * sandbox (startNetnsPool, called by the lifecycle's launch): that first sandbox joins a
 * namespace the pool made instead of clone making one. Each case runs in a fresh node
 * process (the built library, dist/), since a vitest worker has launched sandboxes before.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';

const rootfs = inject('rootfs');
const dist = join(import.meta.dirname, '../../dist/src');

/*
 * Start the pool, wait until it holds a namespace (a descriptor of this process that names
 * a network namespace other than its own: what the pool keeps ready; the deadline only
 * bounds a failure), then run once and report the clone's flags and whether the child
 * joined a namespace made ahead of time.
 */
const script = `
import { readdirSync, readlinkSync } from 'node:fs';
import { native } from ${JSON.stringify(join(dist, 'native.js'))};
import { run } from ${JSON.stringify(join(dist, 'index.js'))};
const own = readlinkSync('/proc/self/ns/net');
const held = () => readdirSync('/proc/self/fd').filter((fd) => {
  try { const l = readlinkSync('/proc/self/fd/' + fd); return l.startsWith('net:') && l !== own; } catch { return false; }
}).length;
native().startNetnsPool();
const deadline = Date.now() + 20000;
while (held() === 0 && process.env.CAPSULE_NETNS_POOL !== '0') {
  if (Date.now() > deadline) throw new Error('the pool made no namespace in 20 s');
  await new Promise((r) => setTimeout(r, 5));
}
const heldBefore = held();
const r = await run({ rootfs: ${JSON.stringify(rootfs)}, argv: ['/bin/true'], explain: true });
const clone = r.explain.find((s) => s.step === 'clone');
console.log(JSON.stringify({
  heldBefore,
  exitCode: r.exitCode,
  newNet: clone.call.includes('CLONE_NEWNET'),
  joined: r.explain.some((s) => s.step === 'set_netns'),
}));
`;

function firstRun(env: Record<string, string> = {}) {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
  return JSON.parse(out.trim().split('\n').pop()!) as {
    heldBefore: number;
    exitCode: number;
    newNet: boolean;
    joined: boolean;
  };
}

describe('the network-namespace pool, started before the first spawn', () => {
  it("gives a process's first sandbox a namespace made ahead of time", () => {
    const r = firstRun();
    expect(r.heldBefore).toBeGreaterThan(0);
    expect(r).toMatchObject({ exitCode: 0, newNet: false, joined: true });
  });

  it('does nothing with CAPSULE_NETNS_POOL=0: clone makes the namespace', () => {
    const r = firstRun({ CAPSULE_NETNS_POOL: '0' });
    expect(r).toEqual({ heldBefore: 0, exitCode: 0, newNet: true, joined: false });
  });
});
