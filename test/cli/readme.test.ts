/**
 * The README lists every verdict and every mechanism a result can carry: the sets are
 * read from the type unions in src/verdict.ts, so a value added there without the README
 * fails here.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const verdictTs = readFileSync(join(root, 'src/verdict.ts'), 'utf8');

/** The string literals of `export type NAME = | 'a' | 'b' ...;`, comments skipped. */
function unionValues(name: string): string[] {
  const code = verdictTs.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  const body = new RegExp(`export type ${name} =([^;]*);`).exec(code)?.[1];
  if (body === undefined) throw new Error(`src/verdict.ts has no type ${name}`);
  return [...body.matchAll(/\|\s*'([^']+)'/g)].map((m) => m[1]!);
}

describe('README', () => {
  it.each(['Verdict', 'Mechanism'])('lists every %s value', (type) => {
    const values = unionValues(type);
    expect(values.length).toBeGreaterThan(5);
    const missing = values.filter((v) => !readme.includes(`'${v}'`));
    expect(missing, `${type} values missing from README.md`).toEqual([]);
  });
});
