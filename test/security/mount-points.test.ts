/**
 * Mount points capsule makes (make_mount_point, issue 11 §4) under a rename-exchange race
 * inside the rootfs (the CVE-2021-30465 class): a directory on the way to a missing bind
 * target is swapped with a symlink to / while sandboxes launch. The parent of each mount
 * point is looked up once, by descriptor, inside the root, with no symlink allowed, and
 * the point is made in the overlay's tmpfs: nothing may ever be made in the host's / or
 * in the rootfs directory, and the bind stays read-only.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { resolveOptions } from '../../src/options.js';
import { launchOutcomes, raceFixture, withRacer } from './race.js';

let dir: string;
let rootfs: string;
let racer: string;

beforeAll(async () => {
  ({ dir, rootfs, racer } = await raceFixture('capsule-mount-points-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every name under `root`, recursively (symlinks not followed). */
function tree(root: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(root, rel), { withFileTypes: true })) {
    out.push(join(rel, e.name));
    if (e.isDirectory()) out.push(...tree(root, join(rel, e.name)));
  }
  return out;
}

describe('missing mount points under a rename-exchange race', () => {
  it('are never made outside the overlay, and the bind stays read-only: 300 launches', async () => {
    /* A name no host path has: if it ever appears in / or in the rootfs, a lookup escaped. */
    const name = `capsule-mkpoint-${randomBytes(6).toString('hex')}`;
    const race = join(rootfs, 'race');
    mkdirSync(join(race, 'a'), { recursive: true });
    symlinkSync('/', join(race, 'b'));
    const source = join(dir, 'source');
    mkdirSync(source);
    chmodSync(source, 0o777);
    const target = `/race/a/${name}/dir`;
    const script = `for i in 1 2 3 4; do echo x > ${target}/w$i; echo x > /race/b/${name}/dir/v$i; done 2>/dev/null; true`;
    /* Resolved while /race/a is a directory: every launch reaches the child's own lookups. */
    const opts = resolveOptions({
      rootfs,
      argv: ['/bin/sh', '-c', script],
      binds: [{ source, target, readOnly: true }],
    });
    expect(opts.mountPoints.map((m) => m.path)).toEqual([`/race/a/${name}`, target]);
    const before = tree(rootfs);
    const outcomes = await withRacer(racer, race, () => launchOutcomes(opts, 300));
    expect(existsSync(join('/', name))).toBe(false);
    expect(readdirSync(source)).toEqual([]);
    /* The rootfs has the same names as before (a and b may have traded places). */
    expect(tree(rootfs).filter((p) => p.includes(name))).toEqual([]);
    expect(tree(rootfs).sort()).toEqual(before.sort());
    expect(outcomes.get('ran, status 0') ?? 0).toBeGreaterThan(0);
    /*
     * A refusal is a lookup that met the symlink (ELOOP), or found the name it made a
     * moment ago moved away with its directory (ENOENT); nothing else.
     */
    for (const key of outcomes.keys())
      expect(key).toMatch(/^ran, status 0$|^refused at (make_mount_point|open_mount_target), errno (40|2)$/);
  }, 300_000);
});
