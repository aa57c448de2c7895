/**
 * `capsule gc`: remove the cgroups a crashed capsule process left behind (see
 * src/cgroup/gc.ts for what counts as a leftover). Prints one line per cgroup removed, or
 * one JSON object with `--json`. Exit status 0 when everything found was removed, 1 when
 * some leftover could not be.
 */
import { Command } from 'commander';
import type { GcResult } from '../cgroup/gc.js';
import { stdout, write } from './streams.js';

/** Human-readable report: what was removed and killed, what was kept and why. */
export function formatGcResult(result: GcResult): string {
  const lines: string[] = [];
  for (const path of result.removed) lines.push(`removed ${path}`);
  if (result.killed.length > 0)
    lines.push(`killed ${result.killed.length} leftover process(es): ${result.killed.join(' ')}`);
  for (const { path, error } of result.failed) lines.push(`could not remove ${path}: ${error}`);
  if (result.live.length > 0) lines.push(`kept ${result.live.length} cgroup(s) of running capsule processes`);
  if (lines.length === 0) lines.push('nothing to remove');
  return `${lines.join('\n')}\n`;
}

export function gcCommand(): Command {
  return new Command('gc')
    .description('remove cgroups left behind by capsule processes that are no longer running')
    .option('--json', 'print the result as one JSON object')
    .option('--cgroup-parent <path>', 'parent cgroup the sandboxes were created under', 'capsule')
    .addHelpText(
      'after',
      '\nA sandbox cgroup is named after the capsule process that made it (pid and start time), so gc\n' +
        'removes only those whose process is gone, after killing anything left inside; it never\n' +
        'touches a cgroup capsule did not create. Without root it searches the cgroup v2 subtree\n' +
        'delegated to you (the topmost directory above your own cgroup that you own), where\n' +
        'rootless runs make theirs.\n\nExamples:\n' +
        '  capsule gc\n' +
        '  capsule gc --json\n' +
        '  capsule gc --cgroup-parent judge/capsule',
    )
    .action(async (flags: { json?: boolean; cgroupParent: string }) => {
      /* Loaded when used, so that other commands start without the cgroup layer. */
      const { detectCgroups } = await import('../cgroup/detect.js');
      const { gcCgroups } = await import('../cgroup/gc.js');
      const { delegatedGcLayouts, rootlessMode } = await import('../rootless.js');
      const layout = detectCgroups();
      /* Without root: the subtree delegated to the caller, where its rootless runs made theirs (src/rootless.ts). */
      const layouts = rootlessMode()
        ? delegatedGcLayouts(layout, process.geteuid?.() ?? 0, '/proc', flags.cgroupParent)
        : [layout];
      const result: GcResult = { removed: [], killed: [], failed: [], live: [] };
      for (const l of layouts) {
        const r = gcCgroups(l, { parent: flags.cgroupParent });
        result.removed.push(...r.removed);
        result.killed.push(...r.killed);
        result.failed.push(...r.failed);
        result.live.push(...r.live);
      }
      write(stdout(), flags.json ? `${JSON.stringify(result)}\n` : formatGcResult(result));
      if (result.failed.length > 0) process.exitCode = 1;
    });
}

/** Add `capsule gc` to the program. */
export function registerGcCommand(program: Command): void {
  program.addCommand(gcCommand().copyInheritedSettings(program));
}
