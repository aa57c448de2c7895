/**
 * The seccomp layer: which profile a run gets, compiled once, as the fd the
 * sandbox loads it from. See docs/security.md.
 */
import { ConfigError } from '../errors.js';
import { BUILTIN_PROFILES, builtinProfile, type BuiltinProfileName } from './builtin.js';
import { compileCached, type CompiledFilter, quietly } from './cache.js';
import { loadProfileFile, normalizeProfile, type SeccompProfile } from './profile.js';

export { BUILTIN_PROFILES, builtinProfile, type BuiltinProfileName } from './builtin.js';
export {
  cachedFilters,
  compileCached,
  filterNote,
  filterOrigin,
  filterText,
  profileKey,
  rememberKey,
  type CompiledFilter,
} from './cache.js';
export {
  loadProfileFile,
  normalizeProfile,
  REQUIRED_SYSCALLS,
  type OciSeccompProfile,
  type OciSyscallRule,
  type SeccompProfile,
} from './profile.js';
export { securityViolation, violationMessage, type Violation } from './verdict.js';

const builtins = new Map<BuiltinProfileName, SeccompProfile>();

/** A built-in profile, normalized (once). Null for `none`. */
export function builtinNormalized(name: BuiltinProfileName): SeccompProfile | null {
  const cached = builtins.get(name);
  if (cached) return cached;
  const oci = builtinProfile(name);
  if (!oci) return null;
  const p = quietly(normalizeProfile(oci, `the built-in ${name} profile`, { enosysStub: false }));
  builtins.set(name, p);
  return p;
}

/**
 * The filter for a run's options: `seccompProfile` (a file) wins over
 * `seccomp` (a built-in name, `default` when neither is given). Null for
 * `none`. Throws ConfigError for an unknown name or a bad profile.
 */
export function resolveSeccomp(name: unknown, profilePath: unknown): CompiledFilter | null {
  if (profilePath !== undefined) {
    if (typeof profilePath !== 'string' || profilePath === '')
      throw new ConfigError('seccompProfile must be the path of a JSON profile', 'seccompProfile');
    if (name !== undefined)
      throw new ConfigError('give seccomp or seccompProfile, not both', 'seccompProfile');
    return compileCached(loadProfileFile(profilePath), profilePath);
  }
  const chosen = name ?? 'default';
  if (typeof chosen !== 'string' || !(BUILTIN_PROFILES as readonly string[]).includes(chosen)) {
    throw new ConfigError(
      `seccomp must be one of ${BUILTIN_PROFILES.join(', ')}, got ${JSON.stringify(chosen)}`,
      'seccomp',
    );
  }
  const p = builtinNormalized(chosen as BuiltinProfileName);
  return p ? compileCached(p, `the built-in ${chosen} profile`) : null;
}
