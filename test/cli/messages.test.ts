/**
 * The CLI's errors in the CLI's words: flags, not library option names; sizes and times
 * in human units; hints where a value is wrong for this machine or this rootfs.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, inject, it } from 'vitest';

import { ConfigError } from '../../src/errors.js';
import { cliMessage, OPTION_FLAGS } from '../../src/cli/messages.js';
import { runOptionsFromFlags } from '../../src/cli/run.js';

const rootfs = inject('rootfs');
const cli = join(import.meta.dirname, '../../dist/capsule.mjs');
const capsule = (args: string[]) => execa('node', [cli, ...args], { reject: false, stdin: 'ignore' });

describe('capsule run errors', () => {
  it.each([
    [['--memory-limit', '10'], 'capsule: --memory-limit must be at least 1 MiB, got 10 bytes'],
    [['--stack-limit', '1k'], 'capsule: --stack-limit must be at least 64 KiB, got 1 KiB'],
    [['--tmp-size', '10'], 'capsule: --tmp-size must be at least 4 KiB, got 10 bytes'],
    [['--cpu-time-limit', '0'], 'capsule: --cpu-time-limit must be at least 1 ms, got 0 ms'],
    [['--pids-limit', '0'], /^capsule: --pids-limit must be at least \d+, got 0$/],
    [['--open-files-limit', '2'], 'capsule: --open-files-limit must be at least 4, got 2'],
    [['--uid', '99999999999'], 'capsule: --uid must be from 0 to 4294967294, got 99999999999'],
    [['--cwd', 'rel'], 'capsule: --cwd must be an absolute path inside the sandbox, got "rel"'],
  ])('%j: %s', async (flags, expected) => {
    const r = await capsule(['run', ...flags, rootfs, '/bin/true']);
    expect(r.exitCode).toBe(125);
    expect(r.stderr.split('\n')).toHaveLength(1);
    if (typeof expected === 'string') expect(r.stderr).toBe(expected);
    else expect(r.stderr).toMatch(expected);
    expect(r.stderr).not.toMatch(/[a-z](Bytes|Ms|Limit|Cpus)\b/); /* no library option name */
  });

  it('--cwd naming a directory the rootfs lacks gets a hint', async () => {
    const r = await capsule(['run', '--cwd', '/nonexistent', rootfs, '/bin/true']);
    expect(r.exitCode).toBe(125);
    expect(r.stderr.split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^capsule: --cwd \/nonexistent: no such directory in the sandbox/);
    expect(r.stderr).toContain(`mkdir -p ${rootfs}/nonexistent`);
  });

  it('--cpuset naming a CPU this machine lacks gets a hint with the CPUs it has', async () => {
    const online = readFileSync('/sys/devices/system/cpu/online', 'utf8').trim();
    const last = Math.max(...online.split(/[,-]/).map(Number));
    const r = await capsule(['run', '--cpuset', String(last + 1), rootfs, '/bin/true']);
    expect(r.exitCode).toBe(125);
    expect(r.stderr.split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^capsule: --cpuset/);
    expect(r.stderr).toContain(`this machine's CPUs are ${online}`);
  });

  it('--help says a bare number of --cpu-time-limit and --wall-time-limit means seconds', async () => {
    const r = await capsule(['run', '--help']);
    const help = r.stdout.replace(/\s+/g, ' '); /* commander wraps the descriptions */
    expect(help).toMatch(/--cpu-time-limit <time> [^<]*\(a bare number is seconds\)/);
    expect(help).toMatch(/--wall-time-limit <time> [^<]*\(a bare number is seconds\)/);
  });
});

describe('the option-to-flag table', () => {
  it('covers every option a capsule run command line sets', () => {
    const options = runOptionsFromFlags('/r', ['/p'], {});
    /* Chosen by the CLI itself, never from a flag. */
    const internal = new Set(['stdout', 'encoding', 'cgroups', 'explain']);
    for (const key of Object.keys(options)) {
      if (!internal.has(key)) expect(OPTION_FLAGS, key).toHaveProperty(key);
    }
  });

  it('names the flag for any ConfigError, also messages it has never seen, and indexed options', () => {
    expect(cliMessage(new ConfigError('pidsLimit must be from 2 to 4194304, got 1', 'pidsLimit'))).toBe(
      '--pids-limit must be from 2 to 4194304, got 1',
    );
    expect(
      cliMessage(
        new ConfigError('memoryLimitBytes 1073741824 is more than this machine has', 'memoryLimitBytes'),
      ),
    ).toBe('--memory-limit 1 GiB is more than this machine has');
    expect(cliMessage(new ConfigError('unknown option cpuTimeLimit: did you mean cpuTimeLimitMs?'))).toBe(
      'unknown option cpuTimeLimit: did you mean --cpu-time-limit?',
    );
    expect(cliMessage(new ConfigError('binds[1].target must be absolute', 'binds[1].target'))).toMatch(
      /^--bind #2/,
    );
    /* An option that is also an ordinary word is renamed only where it is the option. */
    expect(
      cliMessage(new ConfigError('cdi: env A is set to two values by the CDI devices (x, y)', 'cdiDevices')),
    ).toBe('cdi: env A is set to two values by the CDI devices (x, y)');
    expect(cliMessage(new ConfigError('devices[0]: cannot stat /dev/x', 'devices[0]'))).toBe(
      '--device #1: cannot stat /dev/x',
    );
  });
});
