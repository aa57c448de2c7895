/**
 * Reading config.json's JSON with every error naming the field at fault, by its path from
 * the top (`linux.resources.memory.limit`), as a ConfigError whose `option` is that path.
 * `null` counts as absent throughout: Go's encoding/json writes a nil slice, map or pointer
 * so, and engines written in Go send config.json.
 */
import { ConfigError } from '../errors.js';

export type Json = Record<string, unknown>;

/** RLIM_INFINITY and every u64 all-ones as a JSON number reads: 18446744073709551615 rounds to 2^64. */
export const U64_MAX = 2 ** 64;

export function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'bigint') return String(v);
  const s = JSON.stringify(v);
  return s.length > 80 ? s.slice(0, 77) + '...' : s;
}

export function absent(v: unknown): v is undefined | null {
  return v === undefined || v === null;
}

export class Fields {
  /** Unknown properties ignored so far, each a line for the log. */
  readonly warnings: string[] = [];

  /**
   * `file`: how errors name the configuration (config.json). `strict`: an unknown property is an
   * error; otherwise it is ignored with a warning, as the runtime spec requires (config.md,
   * "Extensibility": runtimes MUST NOT generate an error on an unknown property, and MUST ignore it).
   */
  constructor(
    readonly file = 'config.json',
    readonly strict = false,
  ) {}

  /** A property the runtime spec (up to 1.2) does not define. */
  unknown(field: string, hint: string): void {
    if (this.strict) this.fail(field, `unknown field: ${hint}`);
    this.warnings.push(
      `${this.file}: ${field}: unknown property, ignored as the runtime spec requires (${hint})`,
    );
  }

  fail(field: string, message: string): never {
    if (field === '') throw new ConfigError(`${this.file}: ${message}`, this.file);
    throw new ConfigError(`${this.file}: ${field}: ${message}`, field);
  }

  /** An object whose keys must all be in `known`; a key that is not is named as an error. */
  /** An object; a key not in `known` is an unknown property (see `unknown`). */
  object(field: string, v: unknown, known: readonly string[]): Json {
    if (typeof v !== 'object' || v === null || Array.isArray(v))
      this.fail(field, `must be an object, got ${show(v)}`);
    const o = v as Json;
    for (const k of Object.keys(o)) {
      if (!known.includes(k))
        this.unknown(
          field ? `${field}.${k}` : k,
          `${field || 'config.json'} has ${known.join(', ')}; check its spelling`,
        );
    }
    return o;
  }

  optObject(field: string, v: unknown, known: readonly string[]): Json | undefined {
    return absent(v) ? undefined : this.object(field, v, known);
  }

  string(field: string, v: unknown): string {
    if (typeof v !== 'string') this.fail(field, `must be a string, got ${show(v)}`);
    return v;
  }

  optString(field: string, v: unknown, fallback: string): string {
    return absent(v) ? fallback : this.string(field, v);
  }

  bool(field: string, v: unknown, fallback = false): boolean {
    if (absent(v)) return fallback;
    if (typeof v !== 'boolean') this.fail(field, `must be true or false, got ${show(v)}`);
    return v;
  }

  /** An integer from min to max. Past 2^53 a JSON number is not exact, so larger values are refused. */
  int(field: string, v: unknown, min: number, max: number): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
      const range = max >= Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
      this.fail(field, `must be an integer ${range}, got ${show(v)}`);
    }
    return v;
  }

  optInt(field: string, v: unknown, min: number, max: number): number | undefined {
    return absent(v) ? undefined : this.int(field, v, min, max);
  }

  /** An unsigned 64-bit value where all ones (18446744073709551615) means "no limit": U64_MAX then. */
  u64(field: string, v: unknown): number {
    if (v === U64_MAX) return U64_MAX;
    if (typeof v === 'number' && Number.isInteger(v) && v > Number.MAX_SAFE_INTEGER && v < U64_MAX) {
      this.fail(
        field,
        `${show(v)} is too large to read exactly from JSON: give a value below 2^53, or 18446744073709551615 for no limit`,
      );
    }
    return this.int(field, v, 0, Number.MAX_SAFE_INTEGER);
  }

  array(field: string, v: unknown): unknown[] {
    if (!Array.isArray(v)) this.fail(field, `must be an array, got ${show(v)}`);
    return v;
  }

  optArray(field: string, v: unknown): unknown[] {
    return absent(v) ? [] : this.array(field, v);
  }

  strings(field: string, v: unknown): string[] {
    return this.optArray(field, v).map((s, i) => this.string(`${field}[${i}]`, s));
  }

  /** An absolute path (a path inside the container, or a host path). */
  absolute(field: string, v: unknown): string {
    const s = this.string(field, v);
    if (!s.startsWith('/')) this.fail(field, `must be an absolute path, got ${show(s)}`);
    if (s.includes('\0')) this.fail(field, 'must not contain a NUL byte');
    return s;
  }

  /** A field capsule does not support: an error when it is set (`empty` says what counts as unset). */
  unsupported(field: string, v: unknown, why: string, empty: (v: unknown) => boolean = absent): void {
    if (!empty(v)) this.fail(field, why);
  }
}

/** Absent, '', [] or {} (a Go zero value some engines write for a field they do not use). */
export function emptyValue(v: unknown): boolean {
  if (absent(v) || v === '') return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === 'object') return Object.values(v as Json).every(emptyValue);
  return false;
}
