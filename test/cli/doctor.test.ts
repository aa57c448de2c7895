/** `capsule doctor`: the text and --json say the same, and the exit status follows the crosses. */
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';

import type { DoctorReport } from '../../src/doctor.js';

const cli = join(import.meta.dirname, '../../dist/capsule.mjs');
const MARK = { ok: '✓', missing: '✗', warn: '!', info: '-' } as const;

describe('capsule doctor', () => {
  it('--json parses, and the text has one line per check with the same mark, and each fix', async () => {
    const json = await execa('node', [cli, 'doctor', '--json'], { reject: false });
    const report = JSON.parse(json.stdout) as DoctorReport;
    expect(report.checks.length).toBeGreaterThan(30);
    expect(json.exitCode).toBe(report.ok ? 0 : 1);

    const text = await execa('node', [cli, 'doctor'], { reject: false });
    expect(text.exitCode).toBe(json.exitCode);
    const lines = text.stdout.split('\n');
    expect(lines[0]).toBe(
      `capsule doctor: Linux ${report.kernel}, uid ${report.uid}${report.privileged ? ' (root)' : ' (rootless)'}`,
    );
    for (const c of report.checks) {
      const at = lines.indexOf(`  ${MARK[c.status]} ${c.summary}`);
      expect(at, c.id).toBeGreaterThan(0);
      if (c.fix && c.status !== 'ok') expect(lines[at + 1]).toBe(`      fix: ${c.fix}`);
    }
    for (const section of new Set(report.checks.map((c) => c.section)))
      expect(lines).toContain(`${section}:`);
    const missing = report.checks.filter((c) => c.status === 'missing').length;
    expect(lines.at(-1)).toMatch(
      missing ? new RegExp(`^${missing} missing`) : /^everything capsule uses is here/,
    );
  });

  it('rejects an unknown flag as every command does (exit 125, a suggestion), no stack trace', async () => {
    const r = await execa('node', [cli, 'doctor', '--jsn'], { reject: false });
    expect(r.exitCode).toBe(125);
    expect(r.stderr.trim().split('\n')).toEqual([
      "capsule: unknown option '--jsn'",
      '(Did you mean --json?)',
    ]);
  });
});
