/**
 * Resolving profiles (the data in profiles.ts) against what this host has: command names to
 * paths, include patterns to the paths they match, with one error naming every missing package.
 */
import { existsSync } from 'node:fs';
import { posix } from 'node:path';
import { RootfsError } from './errors.js';
import { expandGlob } from './glob.js';
import { PROFILES, PROFILE_BIN_DIRS, type Profile } from './profiles.js';

/** A profile resolved on this host. */
export interface ResolvedProfiles {
  /** The profiles, `extends` first, each once. */
  names: string[];
  programs: Array<{ path: string; bin: string }>;
  include: Array<{ path: string; exclude: string[] }>;
  /** Debian packages to add whole, with their dependencies (dpkg.ts). */
  packages: string[];
}

/** Profiles in dependency order (a profile's `extends` before it), each once. */
function expandNames(names: string[], profiles: Readonly<Record<string, Profile>>): string[] {
  const out: string[] = [];
  const visit = (name: string, trail: string[]): void => {
    const profile: Profile | undefined = profiles[name];
    if (!profile) {
      throw new RootfsError(
        'INVALID',
        `unknown profile '${name}'; the profiles are ${Object.keys(profiles).join(', ')}`,
      );
    }
    if (out.includes(name) || trail.includes(name)) return;
    for (const parent of profile.extends ?? []) visit(parent, [...trail, name]);
    out.push(name);
  };
  for (const n of names) visit(n, []);
  return out;
}

/**
 * Resolves profiles against the host. Throws a PROFILE error such as
 * `profile c needs the program gcc, which this host does not have: apt-get install gcc`.
 * `profiles` is there for tests. @default PROFILES
 */
export async function resolveProfiles(
  names: string[],
  profiles: Readonly<Record<string, Profile>> = PROFILES,
): Promise<ResolvedProfiles> {
  const result: ResolvedProfiles = {
    names: expandNames(names, profiles),
    programs: [],
    include: [],
    packages: [],
  };
  const missing: Array<{ profile: string; what: string; pkg: string }> = [];
  for (const name of result.names) {
    const profile = profiles[name] as Profile;
    for (const pkg of profile.packages ?? []) {
      if (
        existsSync(`/var/lib/dpkg/info/${pkg}.list`) ||
        (await expandGlob('/', `/var/lib/dpkg/info/${pkg}:*.list`)).length > 0
      )
        result.packages.push(pkg);
      else missing.push({ profile: name, what: `the package ${pkg}`, pkg });
    }
    for (const p of profile.programs) {
      const path = PROFILE_BIN_DIRS.map((d) => posix.join(d, p.bin)).find((c) => existsSync(c));
      if (path) result.programs.push({ path, bin: p.bin });
      else missing.push({ profile: name, what: `the program ${p.bin}`, pkg: p.package });
    }
    for (const inc of profile.include) {
      const matches = await expandGlob('/', inc.path);
      if (matches.length === 0 && !inc.optional)
        missing.push({ profile: name, what: inc.path, pkg: inc.package });
      for (const m of matches) result.include.push({ path: m, exclude: inc.exclude ?? [] });
    }
  }
  if (missing.length > 0) {
    const packages = [...new Set(missing.map((m) => m.pkg.split(' ')[0] as string))];
    const first = missing[0] as (typeof missing)[number];
    const more = missing.length > 1 ? ` (and ${missing.length - 1} more)` : '';
    throw new RootfsError(
      'PROFILE',
      `profile ${first.profile} needs ${first.what}, which this host does not have${more}: ` +
        `apt-get install ${packages.join(' ')}`,
    );
  }
  return result;
}
