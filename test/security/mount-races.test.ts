/**
 * Path races on mount targets and sources (the CVE-2021-30465 class, issue 9
 * §1): a name inside the rootfs swapped between the moment capsule checks it
 * and the moment it mounts on it. A host process swaps a directory with a
 * symlink in a loop while runs bind a host directory read-only there; no write
 * may ever reach that directory, and a mount target under a symlinked
 * directory is refused before anything starts.
 */
import { chmodSync, mkdirSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ConfigError, run, SetupError } from '../../src/index.js';
import { resolveOptions } from '../../src/options.js';
import { launchOutcomes, raceFixture, withRacer as racing } from './race.js';

let dir: string;
let rootfs: string;
let racer: string;

beforeAll(async () => {
  ({ dir, rootfs, racer } = await raceFixture('capsule-mount-races-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const withRacer = <T>(race: string, body: () => Promise<T>) => racing(racer, race, body);

/** The race's rootfs entries and a world-writable host directory to bind read-only over them. */
function raceSetup(name: string) {
  /*
   * /race/a is a directory holding proc/, /race/b a symlink to /, so
   * /race/a/proc is always a directory to a check that follows links, and in
   * the child's view before pivot_root it is either the rootfs's directory or
   * the host's /proc, a mount point. Looking it up twice (mount, then
   * mount_setattr) can find the directory first and /proc second: the
   * read-only flag then lands on /proc and the bind stays writable. The
   * source is world-writable: only the bind's read-only flag stands between
   * the sandbox's nobody and it.
   */
  const race = join(rootfs, name);
  mkdirSync(join(race, 'a', 'proc'), { recursive: true });
  symlinkSync('/', join(race, 'b'));
  const source = join(dir, `${name}-source`);
  mkdirSync(source);
  chmodSync(source, 0o777);
  const script = `for i in 1 2 3 4 5 6 7 8; do echo x > /${name}/a/proc/w$i$$; echo x > /${name}/b/proc/v$i$$; done 2>/dev/null; true`;
  return { race, source, script, target: `/${name}/a/proc` };
}

describe('a rename-exchange race inside the rootfs (CVE-2021-30465)', () => {
  it('never lets a write through a readOnly bind: 300 launches, checked before the race began', async () => {
    /*
     * The addon driven directly, with options resolved while the names were
     * still in place: every launch reaches the child's own lookups, as one
     * that won the race against the TypeScript check would.
     */
    const { race, source, script, target } = raceSetup('race1');
    const opts = resolveOptions({
      rootfs,
      argv: ['/bin/sh', '-c', script],
      binds: [{ source, target, readOnly: true }],
    });
    const outcomes = await withRacer(race, () => launchOutcomes(opts, 300));
    expect({ writes: readdirSync(source), outcomes }).toEqual({
      writes: [],
      outcomes: expect.any(Map),
    });
    /* The program got to try, and a refusal is the lookup seeing the symlink (ELOOP), nothing else. */
    expect(outcomes.get('ran, status 0') ?? 0).toBeGreaterThan(0);
    for (const key of outcomes.keys())
      expect(key).toMatch(/^ran, status 0$|^refused at open_mount_target, errno 40$/);
  }, 300_000);

  it('never lets a write through a readOnly bind: 300 runs through run()', async () => {
    const { race, source, script, target } = raceSetup('race2');
    let ran = 0;
    await withRacer(race, async () => {
      for (let i = 0; i < 300; i++) {
        try {
          await run({ rootfs, argv: ['/bin/sh', '-c', script], binds: [{ source, target, readOnly: true }] });
          ran++;
        } catch (e) {
          /* Refusing a name that is (or turned into) a symlink is right, before clone or after. */
          if (!(e instanceof SetupError) && !(e instanceof ConfigError)) throw e;
          if (e instanceof SetupError) expect(e.message).toMatch(/binds\[0\]\.target/);
          else expect(e.option).toBe('binds[0].target');
        }
      }
    });
    expect(readdirSync(source)).toEqual([]);
    expect(ran).toBeGreaterThan(0);
  }, 300_000);
});

describe('mount targets with a symlink in any component', () => {
  it('a bind target under a symlinked directory is a ConfigError', async () => {
    const elsewhere = join(dir, 'elsewhere');
    mkdirSync(join(elsewhere, 'sub'), { recursive: true });
    symlinkSync(elsewhere, join(rootfs, 'linked'));
    try {
      const e = await run({
        rootfs,
        argv: ['/bin/true'],
        binds: [{ source: dir, target: '/linked/sub' }],
      }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as ConfigError).option).toBe('binds[0].target');
      expect((e as ConfigError).message).toMatch(/\/linked is a symlink/);
    } finally {
      rmSync(join(rootfs, 'linked'));
    }
  });

  it('a bind is private: nothing mounted under it propagates to or from the host', async () => {
    const source = join(dir, 'private-source');
    mkdirSync(join(source, 'inner'), { recursive: true });
    mkdirSync(join(rootfs, 'data'), { recursive: true });
    const r = await run({
      rootfs,
      argv: ['/bin/cat', '/proc/self/mountinfo'],
      binds: [{ source, target: '/data' }],
    });
    const line = r.stdout.split('\n').find((l) => l.split(' ')[4] === '/data');
    expect(line).toBeDefined();
    expect(line!.split(' - ')[0]).not.toMatch(/shared:|master:/);
    expect(line!.split(' ')[5]).toMatch(/^ro,nosuid,nodev/);
  });
});
