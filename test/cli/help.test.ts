/** Every command's --help is complete: usage, and examples a person can copy. */
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';

const cli = join(import.meta.dirname, '../../dist/capsule.mjs');

describe('--help', () => {
  it.each([
    [[]],
    [['run']],
    [['explain']],
    [['rootfs']],
    [['rootfs', 'build']],
    [['rootfs', 'check']],
    [['gc']],
    [['doctor']],
  ])('capsule %j --help has a usage line and examples, and exits 0', async (words) => {
    const r = await execa('node', [cli, ...words, '--help'], { reject: false });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Usage: capsule${words.length ? ' ' + words.join(' ') : ''} `));
    expect(r.stdout).toMatch(/\nExamples:\n {2}capsule /);
  });
});
