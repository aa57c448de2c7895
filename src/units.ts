/**
 * Parsers for the human-friendly quantities the CLI accepts (`--memory-limit 256m`,
 * `--cpu-time-limit 2s`, `--pids-limit 64`) and a formatter for reports.
 *
 * Every parser either returns a finite, non-negative number or throws a `UnitError` whose
 * message names the offending value and lists the forms that are accepted, so the CLI can
 * show it as is (commander's `InvalidArgumentError` takes a message).
 */

/** Thrown for a value that does not parse; `value` is the input as given. */
export class UnitError extends Error {
  override readonly name = 'UnitError';
  readonly value: string;

  constructor(value: string, what: string, accepted: string) {
    super(`invalid ${what} ${JSON.stringify(value)}: expected ${accepted}`);
    this.value = value;
  }
}

const BYTE_FORMS =
  'a whole number of bytes or a number with a unit k, m, g or t (powers of 1024, optional "b" or "ib": ' +
  '"1048576", "512k", "256m", "1.5g", "2GiB")';

const BYTE_POWERS: Record<string, number> = { '': 0, k: 1, m: 2, g: 3, t: 4 };

/**
 * Parse a byte size. Units are powers of 1024 (as in `ulimit`, `docker --memory` and
 * cgroup files): `k`/`kb`/`kib` = 1024, `m` = 1024², `g` = 1024³, `t` = 1024⁴, case-insensitive.
 * A plain integer is a number of bytes. Fractions are allowed with a unit (`1.5g`) and the
 * result is rounded down to a whole byte; a bare `b` suffix means bytes.
 *
 * @example parseBytes('256m') === 268435456
 * @throws {UnitError} for anything else, including negative numbers and values above 2^53.
 */
export function parseBytes(value: string | number): number {
  const text = String(value).trim();
  const match = /^(\d+(?:\.\d+)?|\.\d+)\s*([kmgt]?)(i?b)?$/i.exec(text);
  if (!match) throw new UnitError(String(value), 'byte size', BYTE_FORMS);
  const [, num = '', unitRaw = '', suffix] = match;
  const unit = unitRaw.toLowerCase();
  // "ib" only makes sense after a unit letter ("256mib"); a bare "ib" is a typo.
  if (suffix !== undefined && suffix.toLowerCase() === 'ib' && unit === '') {
    throw new UnitError(String(value), 'byte size', BYTE_FORMS);
  }
  if (unit === '' && num.includes('.')) throw new UnitError(String(value), 'byte size', BYTE_FORMS);
  const bytes = Math.floor(Number(num) * 1024 ** (BYTE_POWERS[unit] ?? 0));
  if (!Number.isSafeInteger(bytes)) throw new UnitError(String(value), 'byte size', BYTE_FORMS);
  return bytes;
}

const DURATION_FORMS =
  'a number with a unit ms, s, m or h ("500ms", "2s", "1.5s", "2m", "1h"); a plain number is seconds';

const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parse a duration into milliseconds: `500ms`, `2s`, `1.5s`, `2m`, `1h`. A plain number is
 * seconds (`2` = 2000 ms), as in `timeout(1)`. Sub-millisecond results are rounded to the
 * nearest millisecond; a non-zero value never rounds down to 0 (it becomes 1 ms).
 *
 * @throws {UnitError} for anything else, including negative numbers.
 */
export function parseDurationMs(value: string | number): number {
  const text = String(value).trim();
  const match = /^(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h)?$/i.exec(text);
  if (!match) throw new UnitError(String(value), 'duration', DURATION_FORMS);
  const [, num = '', unit = 's'] = match;
  const exact = Number(num) * (DURATION_MS[unit.toLowerCase()] ?? 1000);
  const ms = exact > 0 && exact < 1 ? 1 : Math.round(exact);
  if (!Number.isSafeInteger(ms)) throw new UnitError(String(value), 'duration', DURATION_FORMS);
  return ms;
}

/**
 * Parse a count (`--pids-limit 64`): a non-negative whole number, with an optional
 * decimal suffix k (1000) or m (1000000) for large counts (`10k`).
 *
 * @throws {UnitError} for fractions, negative numbers, or anything else.
 */
export function parseCount(value: string | number): number {
  const forms = 'a whole number, optionally with k (×1000) or m (×1000000): "64", "10k"';
  const text = String(value).trim();
  const match = /^(\d+)\s*([km]?)$/i.exec(text);
  if (!match) throw new UnitError(String(value), 'count', forms);
  const [, num = '', unit = ''] = match;
  const n = Number(num) * (unit.toLowerCase() === 'k' ? 1000 : unit.toLowerCase() === 'm' ? 1_000_000 : 1);
  if (!Number.isSafeInteger(n)) throw new UnitError(String(value), 'count', forms);
  return n;
}

/**
 * Format a byte count for humans with binary units: `formatBytes(268435456) === '256 MiB'`,
 * `formatBytes(1536) === '1.5 KiB'`, `formatBytes(10) === '10 B'`. At most one decimal;
 * trailing `.0` dropped.
 */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = Math.abs(bytes);
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  const rounded = i === 0 ? String(value) : value.toFixed(1).replace(/\.0$/, '');
  return `${bytes < 0 ? '-' : ''}${rounded} ${units[i]}`;
}
