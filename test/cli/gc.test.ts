import { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { formatGcResult, registerGcCommand } from '../../src/cli/gc.js';

describe('capsule gc', () => {
  afterEach(() => {
    vi.restoreAllMocks();
    process.exitCode = undefined;
  });

  /* The gc action loads the cgroup layer when it runs, so it is async. */
  async function runCli(args: string[]): Promise<string> {
    let out = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      out += String(chunk);
      return true;
    });
    const program = new Command('capsule').exitOverride();
    registerGcCommand(program);
    await program.parseAsync(['node', 'capsule', ...args]);
    return out;
  }

  it('--json prints the result object', async () => {
    const out = await runCli(['gc', '--json', '--cgroup-parent', `capsule-none-${process.pid}`]);
    expect(JSON.parse(out)).toEqual({ removed: [], killed: [], failed: [], live: [] });
    expect(process.exitCode).toBeUndefined();
  });

  it('says so when there is nothing to remove', async () => {
    expect(await runCli(['gc', '--cgroup-parent', `capsule-none-${process.pid}`])).toBe(
      'nothing to remove\n',
    );
  });

  it('formats removals, kills, failures and live cgroups', () => {
    expect(
      formatGcResult({
        removed: ['/sys/fs/cgroup/memory/capsule/1-2-3'],
        killed: [42],
        failed: [{ path: '/sys/fs/cgroup/pids/capsule/1-2-4', error: 'EBUSY' }],
        live: ['/x'],
      }),
    ).toBe(
      [
        'removed /sys/fs/cgroup/memory/capsule/1-2-3',
        'killed 1 leftover process(es): 42',
        'could not remove /sys/fs/cgroup/pids/capsule/1-2-4: EBUSY',
        'kept 1 cgroup(s) of running capsule processes',
        '',
      ].join('\n'),
    );
  });
});
