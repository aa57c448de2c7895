/**
 * Compiled filters, one per distinct profile per process.
 *
 * libseccomp takes a few milliseconds to compile a profile and the kernel a
 * few microseconds to load the result, so, as crun does, capsule compiles
 * each profile once and keys it by its normalized form: two spellings of the
 * same profile (names in another order, a file read twice) share one sealed
 * memfd. The key is the normalized profile's stable JSON itself, not a digest
 * of it: a Map hashes strings anyway, and leaving node:crypto out saves every
 * `capsule run` about 3 ms of start-up. The memfd is never closed: every run
 * dup3s it into the sandbox, and it costs one page of memory.
 */
import { ConfigError } from '../errors.js';
import { native } from '../native.js';
import type { SeccompProfile } from './profile.js';

export interface CompiledFilter {
  /** Sealed memfd holding the BPF program (struct sock_filter[]). */
  fd: number;
  instructions: number;
  /** System call names this libseccomp does not know on this architecture: left out. */
  ignored: string[];
}

const cache = new Map<string, CompiledFilter>();
/* The same normalized object (a built-in profile, a profile file read once) skips even the key. */
const byObject = new WeakMap<SeccompProfile, CompiledFilter>();

/** Stable JSON of the normalized profile: rules sorted, bigints as decimal strings. */
export function profileKey(p: SeccompProfile): string {
  const rules = p.rules
    .map((r) =>
      JSON.stringify([r.syscall, r.action, r.args], (_k, v: unknown) =>
        typeof v === 'bigint' ? v.toString() : v,
      ),
    )
    .sort();
  return JSON.stringify([p.defaultAction, p.badArchAction, rules]);
}

/** The compiled filter for `p`, compiled on first use. `source` names the profile in errors. */
export function compileCached(p: SeccompProfile, source: string): CompiledFilter {
  const known = byObject.get(p);
  if (known) return known;
  const key = profileKey(p);
  const hit = cache.get(key);
  if (hit) {
    byObject.set(p, hit);
    return hit;
  }
  let out;
  try {
    out = native().compileSeccomp({ ...p, pfc: false });
  } catch (e) {
    throw new ConfigError(
      `seccomp profile ${source} cannot be compiled: ${(e as Error).message}`,
      'seccompProfile',
    );
  }
  const compiled = { fd: out.fd, instructions: out.instructions, ignored: out.ignored };
  cache.set(key, compiled);
  byObject.set(p, compiled);
  return compiled;
}

/** libseccomp's pseudo-code for a profile, for `docs/security.md` and for reading a filter by eye. */
export function filterText(p: SeccompProfile): string {
  const out = native().compileSeccomp({ ...p, pfc: true });
  return out.pfc;
}

/** How many profiles are compiled (for tests and the benchmark). */
export function cachedFilters(): number {
  return cache.size;
}
