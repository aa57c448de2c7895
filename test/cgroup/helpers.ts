/** Shared helpers for the cgroup tests: fixtures, leak checks, and processes that join a cgroup. */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { CgroupLayout } from '../../src/cgroup/detect.js';
import { layoutHierarchies } from '../../src/cgroup/gc.js';
import type { SandboxCgroup } from '../../src/cgroup/sandbox.js';

/** `find /sys/fs/cgroup/*\/capsule* -maxdepth 1`: every capsule-named cgroup and its children. */
export function capsuleCgroupsOnHost(root = '/sys/fs/cgroup'): string[] {
  const out: string[] = [];
  let hierarchies: string[];
  try {
    hierarchies = readdirSync(root);
  } catch {
    return out;
  }
  for (const h of hierarchies) {
    let entries: string[];
    try {
      entries = readdirSync(join(root, h)).filter((e) => e.startsWith('capsule'));
    } catch {
      continue;
    }
    for (const e of entries) {
      out.push(join(root, h, e));
      try {
        for (const c of readdirSync(join(root, h, e), { withFileTypes: true })) {
          if (c.isDirectory()) out.push(join(root, h, e, c.name));
        }
      } catch {
        // raced with a removal
      }
    }
  }
  return out.sort();
}

/** A parent name unique to this test process, so leak checks do not see other runs. */
export function testParent(label: string): string {
  return `capsule-test-${label}-${process.pid}`;
}

/** Remove a test parent (it must be empty) from every hierarchy of the layout. */
export function removeTestParent(layout: CgroupLayout, parent: string): void {
  for (const h of layoutHierarchies(layout)) {
    const dir = join(h.mountPoint, parent);
    if (existsSync(dir)) rmdirSync(dir);
  }
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Run `script` with /bin/sh in the sandbox cgroup, the way the native child will join it:
 * the cgroup.procs fds are passed as fds 3, 4, ... and the shell writes "0" into each (moving
 * itself) before it execs the script, so only the script's own work is measured.
 */
export function runInCgroup(cg: SandboxCgroup | null, script: string): Promise<Exit> {
  const fds = cg?.joinFds ?? [];
  const join0 = fds.map((_, i) => `echo 0 >&${i + 3} && exec ${i + 3}>&- && `).join('');
  const child = spawn('/bin/sh', ['-c', `${join0}exec /bin/sh -c '${script.replace(/'/g, `'\\''`)}'`], {
    stdio: ['ignore', 'pipe', 'pipe', ...fds],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** A temp dir removed by the returned cleanup. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Create files (with contents) under `root`, making directories as needed. */
export function writeTree(root: string, files: Record<string, string>): void {
  for (const [rel, content] of Object.entries(files)) {
    const path = join(root, rel);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, content);
  }
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/**
 * Total CPU time in ms from the output of the shell's `times` builtin (the shell, then its
 * reaped children: user and system each, as `XmY.YYYs`): the kernel's per-process rusage,
 * an account independent of the cgroup's to check it against, also on a busy machine.
 */
export function timesTotalMs(stdout: string): number {
  const lines = stdout.trim().split('\n').slice(-2).join(' ');
  let total = 0;
  for (const m of lines.matchAll(/(\d+)m([\d.]+)s/g)) total += Number(m[1]) * 60_000 + Number(m[2]) * 1000;
  return total;
}

/**
 * A shell loop that does a fixed amount of work (a burner bounded by `timeout` gets less CPU
 * the busier the machine is: CI once saw 60 ms out of 200 ms of wall time). 100 000 turns of
 * dash take about 180 ms of CPU on the development VM.
 */
export function burnLoop(turns: number): string {
  return `sh -c 'i=0; while [ $i -lt ${turns} ]; do i=$((i+1)); done'`;
}
