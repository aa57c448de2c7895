/**
 * `capsule gc`: remove sandbox cgroups left behind by a capsule process that died without
 * cleaning up (SIGKILL, a crash, a power cut of the Node process alone).
 *
 * Only directories directly under capsule's parent whose name parses as
 * `<pid>-<starttime>-<n>` (names.ts) are considered, and only those whose creator is gone.
 * Anything still inside is killed first: those are sandboxes of the dead process, whose
 * limits would otherwise be lifted with nothing watching them. The parent itself is kept,
 * since a live capsule may be about to create a cgroup in it.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { CgroupHierarchy, CgroupLayout } from './detect.js';
import { isCgroupError } from './errors.js';
import { parsePids, readOptionalFile, writeCgroupFile } from './files.js';
import { killPids } from './kill.js';
import { ownerAlive, parseCgroupName } from './names.js';
import { removeDirWithRetry } from './wait.js';

export interface GcResult {
  /** Cgroup directories removed. */
  removed: string[];
  /** Processes killed inside them (pids as seen from this pid namespace). */
  killed: number[];
  /** Leftovers that could not be removed, with the reason. */
  failed: { path: string; error: string }[];
  /** Leftovers skipped because their creator is still running. */
  live: string[];
}

export interface GcOptions {
  /** The parent cgroup, relative to each hierarchy's mount point. @default 'capsule' */
  parent?: string;
  /** proc filesystem used to tell whether a creator is alive (tests). @default '/proc' */
  procRoot?: string;
}

/** Every hierarchy capsule may have created cgroups in. */
export function layoutHierarchies(layout: CgroupLayout): CgroupHierarchy[] {
  return layout.unified ? [...layout.v1, layout.unified] : [...layout.v1];
}

export function gcCgroups(layout: CgroupLayout, opts: GcOptions = {}): GcResult {
  const result: GcResult = { removed: [], killed: [], failed: [], live: [] };
  for (const hierarchy of layoutHierarchies(layout)) {
    const parentDir = join(hierarchy.mountPoint, opts.parent ?? 'capsule');
    let entries: string[];
    try {
      entries = readdirSync(parentDir, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
    } catch {
      continue; // no parent there: nothing of capsule's in this hierarchy
    }
    for (const name of entries) {
      const owner = parseCgroupName(name);
      if (!owner) continue;
      const dir = join(parentDir, name);
      if (ownerAlive(owner, opts.procRoot)) {
        result.live.push(dir);
        continue;
      }
      try {
        const pids = parsePids(readOptionalFile(join(dir, 'cgroup.procs')) ?? '');
        if (pids.length > 0) {
          try {
            // v2 (5.14+): the kernel kills every member at once; v1 and older v2: by pid.
            if (hierarchy.version !== 2) throw new Error('v1 has no cgroup.kill');
            writeCgroupFile(join(dir, 'cgroup.kill'), '1', null);
          } catch {
            killPids(pids);
          }
          result.killed.push(...pids.filter((p) => !result.killed.includes(p)));
        }
        removeDirWithRetry(dir, () => killPids(parsePids(readOptionalFile(join(dir, 'cgroup.procs')) ?? '')));
        result.removed.push(dir);
      } catch (cause) {
        result.failed.push({ path: dir, error: isCgroupError(cause) ? cause.message : String(cause) });
      }
    }
  }
  return result;
}
