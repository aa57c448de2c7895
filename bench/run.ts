/**
 * `npm run bench`: every benchmark, peers side by side, medians and p99. Timings are
 * printed, never asserted. Options: --only table,launch,judge,cgroup,rootfs,seccomp,interactive,streams,session,box,oci  --runs N
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { benchCgroups } from './cgroup.js';
import { benchInteractive } from './interactive.js';
import { benchJudge } from './judge.js';
import { benchLaunch } from './launch.js';
import { ensurePeers, makeRootfs } from './peers.js';
import { benchRootfs } from './rootfs.js';
import { benchSeccomp } from './seccomp.js';
import { benchStreams } from './streams.js';
import { benchSession } from './session.js';
import { benchBox } from './box.js';
import { benchOci } from './oci.js';
import { benchTable } from './table.js';

const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const only = flag('--only')?.split(',');
const runs = Number(flag('--runs') ?? 2000);
const want = (name: string) => !only || only.includes(name);

if (process.getuid?.() !== 0) {
  console.error('capsule: the benchmarks run real sandboxes and need root');
  process.exit(1);
}
ensurePeers();
const dir = mkdtempSync(join(tmpdir(), 'capsule-bench-'));
try {
  const rootfs = makeRootfs(dir);
  console.log(`capsule benchmarks: node ${process.version}, ${runs} runs; medians and p99 in ms`);
  if (want('table')) await benchTable({ dir, rootfs, n: runs });
  if (want('launch')) await benchLaunch({ dir, rootfs, n: runs });
  if (want('judge')) await benchJudge({ rootfs, n: Math.min(runs, 1000) });
  if (want('cgroup')) await benchCgroups();
  if (want('rootfs')) await benchRootfs();
  if (want('seccomp')) await benchSeccomp(rootfs, Math.min(runs, 1000));
  if (want('interactive')) await benchInteractive({ rootfs, n: runs });
  if (want('streams')) await benchStreams({ rootfs, n: Math.max(runs, 1000) });
  if (want('session')) await benchSession(rootfs, Math.min(runs, 1000));
  if (want('box')) await benchBox(rootfs, Math.min(runs, 500));
  if (want('oci')) await benchOci({ dir, rootfs, n: Math.min(runs, 300) });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
