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
import { precompiledFilter, preverify } from './precompiled.js';
import type { SeccompProfile } from './profile.js';

export interface CompiledFilter {
  /** Sealed memfd holding the BPF program (struct sock_filter[]). */
  fd: number;
  instructions: number;
  /** Calls of another architecture (i386's stime on x86_64): left out, this one does not have them. */
  ignored: string[];
  /**
   * Names this libseccomp does not know, in rules that allow them: left out,
   * so the default action applies to them (Docker and runc do the same). A
   * rule that denies an unknown name is refused instead (a ConfigError).
   */
  unknown: string[];
  /**
   * Where the program came from: `'build'`, compiled by `npm run build:ts` into
   * dist/seccomp (src/seccomp/precompiled.ts); `'run'`, by libseccomp in this process.
   */
  origin: 'build' | 'run';
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
  return JSON.stringify([p.defaultAction, p.badArchAction, rules, p.enosysAfter]);
}

/* Keys computed ahead of time (the CLI's start-up snapshot: src/cli/snapshot.ts). */
const keys = new WeakMap<SeccompProfile, string>();

/**
 * Compute and keep `p`'s key now, and find its precompiled program, so its first
 * compile does neither (for the CLI's start-up snapshot).
 */
export function rememberKey(p: SeccompProfile): void {
  const key = profileKey(p);
  keys.set(p, key);
  preverify(p, key);
}

/* Profiles compiled without the unknown-name warning. */
const quiet = new WeakSet<SeccompProfile>();

/**
 * Compile `p` without the warning about names libseccomp does not know: for
 * capsule's built-in profiles, whose allow-list names calls newer than some
 * libseccomp releases on purpose. Returns `p`.
 */
export function quietly(p: SeccompProfile): SeccompProfile {
  quiet.add(p);
  return p;
}

/* The compiled filters by fd, for --explain. */
const byFd = new Map<number, CompiledFilter>();

/**
 * The compiled filter for `p`, compiled on first use. `source` names the
 * profile in errors and in the one warning (a CapsuleWarning) about names
 * libseccomp does not know, emitted when the profile is first compiled
 * (not for capsule's built-in profiles, see `quietly`).
 */
export function compileCached(p: SeccompProfile, source: string): CompiledFilter {
  const known = byObject.get(p);
  if (known) return known;
  const key = keys.get(p) ?? profileKey(p);
  const hit = cache.get(key);
  if (hit) {
    byObject.set(p, hit);
    return hit;
  }
  let out;
  /* Compiled at build time when it is this very profile (src/seccomp/precompiled.ts). */
  const pre = precompiledFilter(p, key);
  try {
    out = pre ?? native().compileSeccomp({ ...p, pfc: false });
  } catch (e) {
    throw new ConfigError(
      `seccomp profile ${source} cannot be compiled: ${(e as Error).message}`,
      'seccompProfile',
    );
  }
  const compiled: CompiledFilter = {
    fd: out.fd,
    instructions: out.instructions,
    ignored: out.ignored,
    unknown: out.unknown,
    origin: pre ? 'build' : 'run',
  };
  cache.set(key, compiled);
  byObject.set(p, compiled);
  byFd.set(compiled.fd, compiled);
  if (!quiet.has(p) && compiled.unknown.length > 0) {
    process.emitWarning(`seccomp profile ${source}: ${unknownNote(compiled)}`, {
      type: 'CapsuleWarning',
      code: 'CAPSULE_SECCOMP_UNKNOWN_SYSCALL',
    });
  }
  return compiled;
}

function unknownNote(c: CompiledFilter): string {
  return `allows ${c.unknown.join(', ')}, which this libseccomp does not know: left out, so the default action answers them (as Docker and runc do)`;
}

/** What --explain says about the filter in `fd` beyond loading it: the names it left out. */
export function filterNote(fd: number): string | null {
  const c = byFd.get(fd);
  return c && c.unknown.length > 0 ? unknownNote(c) : null;
}

/** Where --explain says the filter in `fd` came from: its size, and who compiled it when. */
export function filterOrigin(fd: number): string | null {
  const c = byFd.get(fd);
  if (!c) return null;
  const when = c.origin === 'build' ? 'at build time (dist/seccomp)' : 'by libseccomp in this process';
  return `${c.instructions} BPF instructions, compiled ${when}`;
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
