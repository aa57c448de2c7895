/**
 * --report and --meta when their files cannot be written: checked before the run (exit
 * 125, one line naming the flag, nothing runs); a write that fails after the run is one
 * warning and the program's exit status stands.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

const rootfs = inject('rootfs');
const cli = join(import.meta.dirname, '../../dist/capsule.mjs');
const capsule = (args: string[]) => execa('node', [cli, ...args], { reject: false, stdin: 'ignore' });

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'capsule-cli-report-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.each(['--report', '--meta'])('%s', (flag) => {
  it('that cannot be written is refused before the run: exit 125, one line naming the flag', async () => {
    const path = join(dir, 'missing-dir', 'out');
    const r = await capsule(['run', flag, path, rootfs, '/bin/sh', '-c', 'echo ran; exit 42']);
    expect(r.exitCode).toBe(125);
    expect(r.stdout).toBe(''); /* the program never ran */
    expect(r.stderr.split('\n')).toHaveLength(1);
    expect(r.stderr).toBe(
      `capsule: ${flag} ${path} cannot be written: ENOENT (no such file or directory): create its directory ${join(dir, 'missing-dir')} first`,
    );
  });

  it('that is a directory is refused before the run', async () => {
    const r = await capsule(['run', flag, dir, rootfs, '/bin/sh', '-c', 'echo ran']);
    expect(r.exitCode).toBe(125);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(new RegExp(`^capsule: ${flag} .* cannot be written: EISDIR`));
  });

  it("that fails after the run (/dev/full: ENOSPC) is one warning, and the program's status stands", async () => {
    const r = await capsule(['run', flag, '/dev/full', rootfs, '/bin/sh', '-c', 'echo ran; exit 42']);
    expect(r.stdout).toBe('ran');
    expect(r.exitCode).toBe(42);
    expect(r.stderr).toBe(
      `capsule: warning: ${flag} /dev/full was not written: ENOSPC (no space left on device)`,
    );
  });
});

it('writes nothing and runs nothing when only one of the two paths is bad', async () => {
  const report = join(dir, 'good.json');
  const r = await capsule(['run', '--report', report, '--meta', join(dir, 'no/such'), rootfs, '/bin/true']);
  expect(r.exitCode).toBe(125);
  expect(existsSync(report)).toBe(false);
});
