import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { registerRootfsCommands, RootfsError } from '../../src/cli/rootfs.js';
import { makeTempDir, removeDir } from './fixtures.js';

let tmp: string;
beforeEach(async () => {
  tmp = await makeTempDir();
});
afterEach(async () => {
  process.exitCode = undefined;
  await removeDir(tmp);
});

/** Runs `capsule ARGS` with the rootfs commands, capturing output; errors come back, not thrown. */
async function capsule(
  ...args: string[]
): Promise<{ stdout: string; stderr: string; error: unknown; exitCode: number | undefined }> {
  let stdout = '';
  let stderr = '';
  const program = new Command('capsule').exitOverride().configureOutput({
    writeOut: (s) => (stdout += s),
    writeErr: (s) => (stderr += s),
    outputError: () => undefined,
  });
  registerRootfsCommands(program, {
    stdout: { write: (s: string) => ((stdout += s), true) } as never,
    stderr: { isTTY: false, write: (s: string) => ((stderr += s), true) } as never,
  });
  let error: unknown;
  process.exitCode = undefined;
  try {
    await program.parseAsync(['node', 'capsule', ...args]);
  } catch (e) {
    error = e;
  }
  const exitCode = typeof process.exitCode === 'number' ? process.exitCode : undefined;
  process.exitCode = undefined;
  return { stdout, stderr, error, exitCode };
}

describe('capsule rootfs build', () => {
  it('builds, prints a summary, and is quiet when not a TTY but for that summary', async () => {
    const box = join(tmp, 'box');
    const r = await capsule('rootfs', 'build', box, '--bin', '/bin/sh', '--bin', 'id');
    expect(r.error).toBeUndefined();
    expect(r.stderr).toBe(''); // no progress bar on a pipe
    expect(r.stdout).toMatch(new RegExp(`^rootfs ${box}: added \\d+ files`));
    expect(r.stdout).toContain('  /bin/sh: 1 library');
    expect(existsSync(join(box, 'usr/bin/id'))).toBe(true);
    const again = await capsule('rootfs', 'build', box, '--bin', '/bin/sh', '--quiet');
    expect(again).toMatchObject({ stdout: '', stderr: '', error: undefined });
  });

  it('prints JSON with --json', async () => {
    const r = await capsule('rootfs', 'build', join(tmp, 'box'), '--bin', '/bin/sh', '--json');
    const json = JSON.parse(r.stdout) as {
      dir: string;
      programs: Array<{ path: string; libraries: string[] }>;
    };
    expect(json.dir).toBe(join(tmp, 'box'));
    expect(json.programs[0]?.libraries).toContain('/lib/x86_64-linux-gnu/libc.so.6');
  });

  it('rejects an unknown profile with commander’s one-line error', async () => {
    const r = await capsule('rootfs', 'build', join(tmp, 'box'), '--profile', 'sh,cobol');
    expect(r.error).toBeInstanceOf(CommanderError);
    expect((r.error as Error).message).toContain(
      "unknown profile 'cobol'; choose from sh, c, cpp, python3, java, go, node, rust",
    );
    expect(existsSync(join(tmp, 'box'))).toBe(false);
  });

  it('throws a RootfsError naming the file for a missing program, and creates nothing', async () => {
    const r = await capsule('rootfs', 'build', join(tmp, 'box'), '--bin', '/nope/prog');
    expect(RootfsError.is(r.error)).toBe(true);
    expect((r.error as Error).message).toBe('program /nope/prog does not exist');
    expect(existsSync(join(tmp, 'box'))).toBe(false);
  });

  it('has help with examples', async () => {
    const r = await capsule('rootfs', 'build', '--help');
    expect(r.stdout).toContain('Usage: capsule rootfs build [options] <dir>');
    expect(r.stdout).toContain('--include-gpu-libs');
    expect(r.stdout).toContain(
      'capsule rootfs build ./box --bin /bin/sh --bin /usr/bin/python3 --include /usr/lib/python3.11',
    );
    expect(r.stdout).toMatch(/python3 +Python 3 interpreter/);
  });
});

describe('capsule rootfs check', () => {
  it('exits 0 for a complete rootfs and 1 with one line per missing library', async () => {
    const box = join(tmp, 'box');
    await capsule('rootfs', 'build', box, '--bin', '/usr/bin/ls', '-q');
    const ok = await capsule('rootfs', 'check', box);
    expect(ok.exitCode).toBeUndefined();
    expect(ok.stdout).toMatch(/: \d+ ELF files, 0 scripts, 0 missing\n$/);
    await rm(join(box, 'usr/lib/x86_64-linux-gnu/libselinux.so.1'));
    const bad = await capsule('rootfs', 'check', box, '--quiet');
    expect(bad.exitCode).toBe(1);
    expect(bad.stdout).toBe('/usr/bin/ls: library libselinux.so.1 not found\n');
    const json = await capsule('rootfs', 'check', box, '--json');
    expect(JSON.parse(json.stdout)).toMatchObject({
      problems: [{ file: '/usr/bin/ls', missing: 'libselinux.so.1' }],
    });
  });

  it('names a rootfs that does not exist', async () => {
    const r = await capsule('rootfs', 'check', join(tmp, 'nope'));
    expect((r.error as Error).message).toBe(
      `rootfs ${join(tmp, 'nope')} does not exist or is not a directory`,
    );
  });
});
