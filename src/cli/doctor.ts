/**
 * `capsule doctor`: which kernel features capsule uses are here for the caller (src/doctor.ts),
 * one line each with a tick or a cross, and the fix under each cross; `--json` prints the
 * report as one JSON object. Exit status 0 when nothing is missing, 1 otherwise.
 */
import { Command } from 'commander';

import { stdout, write } from './streams.js';

export function doctorCommand(): Command {
  return new Command('doctor')
    .description(
      'check every kernel feature capsule uses on this machine, for you, and say how to fix what is missing',
    )
    .option('--json', 'print the report as one JSON object')
    .addHelpText(
      'after',
      '\nMarks: ✓ there, ✗ missing (a fix follows), ! a suggestion that is your choice, - nothing to do.\n' +
        'Nothing is changed on the machine: probes run in throwaway children and are gone when they end.\n' +
        'Run it as the user who will run capsule: without root, it checks what a rootless run needs.\n\n' +
        'Examples:\n' +
        '  capsule doctor\n' +
        '  capsule doctor --json',
    )
    .action(async (flags: { json?: boolean }) => {
      /* Loaded when used, so that other commands start without it. */
      const { doctor, formatDoctor } = await import('../doctor.js');
      const report = doctor();
      write(stdout(), flags.json ? `${JSON.stringify(report)}\n` : formatDoctor(report));
      if (!report.ok) process.exitCode = 1;
    });
}

/** Add `capsule doctor` to the program. */
export function registerDoctorCommand(program: Command): void {
  program.addCommand(doctorCommand().copyInheritedSettings(program));
}
