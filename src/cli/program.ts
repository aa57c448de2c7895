/**
 * The capsule command. It only turns flags into options and results into exit
 * statuses; everything else is the library's.
 */
import { readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';

import { Command, CommanderError } from 'commander';

import { CapsuleError, SetupError } from '../errors.js';
import { type ExplainStep, formatExplain } from '../explain.js';
import { metaFromError, metaFromResult } from '../meta.js';
import type { Sandbox } from '../options.js';
import type { RunResult } from '../run.js';
import { packageRoot } from '../native.js';
import { violationMessage } from '../seccomp/verdict.js';
import { registerDoctorCommand } from './doctor.js';
import { registerGcCommand } from './gc.js';
import { runcMain } from './oci.js';
import { cliMessage, type MessageContext } from './messages.js';
import { closeReportFiles, openReportFiles, type ReportFile, writeReportFile } from './reports.js';
import { registerRootfsCommands } from './rootfs.js';
import { registerSessionCommands } from './session.js';
import { forward, stderr, stdout, write } from './streams.js';
import { explainCommand, type RunFlags, runCommand, runOptionsFromFlags } from './run.js';
import { CallerTerminal, callerWindowSize } from './tty.js';

/** docker/podman's convention for a runtime's own failures. */
export const EXIT_CAPSULE_FAILED = 125;
export const EXIT_CANNOT_EXECUTE = 126;
export const EXIT_NOT_FOUND = 127;

/** Signals the CLI passes on to the sandbox, where capsule-init forwards them to the program. */
const FORWARDED: NodeJS.Signals[] = [
  'SIGINT',
  'SIGTERM',
  'SIGHUP',
  'SIGQUIT',
  'SIGUSR1',
  'SIGUSR2',
  'SIGWINCH',
];

/** What the errors' hints need to know of the command line (set by the command that runs). */
const context: MessageContext = {};

/** The exit status for an error capsule raised: one line goes to stderr. */
export function exitStatusFor(error: unknown): number {
  if (error instanceof SetupError && error.step === 'exec') {
    return error.code === 'ENOENT' ? EXIT_NOT_FOUND : EXIT_CANNOT_EXECUTE;
  }
  return EXIT_CAPSULE_FAILED;
}

export function program(): Command {
  const version = (
    JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }
  ).version;
  const cli = new Command('capsule')
    .description('Run untrusted programs on Linux in a sandbox made from kernel primitives.')
    .version(version, '-V, --version')
    .enablePositionalOptions()
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({
      outputError: () => {} /* main() prints one line of its own */,
      writeOut: (text) => void write(stdout(), text),
      writeErr: (text) => void write(stderr(), text),
    })
    .addHelpText(
      'after',
      "\nExit status of capsule run: the program's, or 128+N when a signal N killed it; 125 when capsule\n" +
        'itself failed, 126 when the program cannot be executed, 127 when it is not found.\n\n' +
        'Examples:\n' +
        '  capsule rootfs build ./box --bin /bin/sh --bin /bin/ls\n' +
        "  capsule run ./box /bin/sh -c 'echo $$; id; ls /'\n" +
        '  capsule run --cpu-time-limit 2s --memory-limit 256m --meta meta.txt ./box /box/solution\n' +
        '  capsule explain ./box /bin/true\n' +
        '  capsule help run\n\n' +
        'How it works, step by step: docs/internals.md. Run `capsule COMMAND --help` for each command.',
    );

  const add = (cmd: Command) => cli.addCommand(cmd.copyInheritedSettings(cli));
  add(
    runCommand(async (rootfs, argv, flags) => {
      context.rootfs = rootfs;
      const { run } = await import('../run.js');
      /*
       * The handlers go in before the sandbox starts: the program writes to the caller's stdout
       * directly, so a caller may see its first output, and signal capsule, before run() has
       * handed back the sandbox. A signal that comes that early waits here and is delivered as
       * soon as there is a sandbox to deliver it to (capsule-init keeps signals blocked from the
       * launch on, so none is lost inside either).
       */
      const handlers = new Map<NodeJS.Signals, () => void>();
      let sandbox: Sandbox | undefined;
      const early: NodeJS.Signals[] = [];
      let interrupts = 0;
      /* -t: no stdin terminal is one line and exit 125, before anything runs; else raw mode from here. */
      const caller = flags.tty ? CallerTerminal.open() : null;
      const deliver = (to: Sandbox, sig: NodeJS.Signals) => {
        if (caller) {
          /*
           * With a terminal, none of these comes from the keyboard (raw mode): a signal to
           * capsule hangs the program's terminal up (SIGHUP, as closing a terminal window
           * does; a shell that ignores SIGTERM and SIGINT still ends), and a second one ends
           * the sandbox. The window size follows by TIOCSWINSZ, not a forwarded SIGWINCH.
           */
          if (sig === 'SIGWINCH') return;
          if (sig === 'SIGINT' || sig === 'SIGTERM' || sig === 'SIGHUP' || sig === 'SIGQUIT')
            to.kill(++interrupts > 1 ? 'SIGKILL' : 'SIGHUP');
          else to.kill(sig);
          return;
        }
        /* The first SIGINT/SIGTERM goes to the program; a second one ends the sandbox. */
        if ((sig === 'SIGINT' || sig === 'SIGTERM') && ++interrupts > 1) to.kill('SIGKILL');
        else to.kill(sig);
      };
      /* Before anything runs: a path that cannot be written is exit 125, not a lost exit status. */
      let files: ReportFile[] = [];
      try {
        files = openReportFiles(flags);
      } catch (e) {
        caller?.restore();
        throw e;
      }
      for (const sig of FORWARDED) {
        const forward = () => (sandbox ? deliver(sandbox, sig) : early.push(sig));
        handlers.set(sig, forward);
        process.on(sig, forward);
      }
      try {
        const options = runOptionsFromFlags(rootfs, argv, flags);
        if (caller) options.terminal = { ...callerWindowSize(), keepOutput: false };
        const result = await run({
          ...options,
          /* With --output-limit the program's output streams through capsule, within the cap. */
          /*
           * A slow reader of ours slows the program down (it blocks on its full pipe), and one
           * that has gone (`| head`) closes the program's pipe: its next write fails with
           * EPIPE/SIGPIPE, as in a shell pipeline, and the run ends as usual.
           */
          onOutput: (stream, chunk) => forward(stream === 'stdout' ? stdout() : stderr(), chunk),
          onSpawn: (spawned) => {
            sandbox = spawned;
            if (caller && spawned.terminal) caller.attach(spawned.terminal);
            for (const sig of early.splice(0)) deliver(spawned, sig);
          },
        });
        caller?.restore(); /* before any line of ours: raw mode would print it without its carriage return */
        if (result.explain) printExplain(flags, result.explain);
        writeReports(
          flags,
          files,
          { ...result, stdout: undefined, stderr: undefined },
          metaFromResult(result),
        );
        const note = limitNote(result);
        if (note) write(stderr(), `capsule: ${note}\n`);
        process.exitCode = result.exitCode ?? 128 + (result.signal ? osConstants.signals[result.signal] : 0);
      } catch (e) {
        caller?.restore();
        if (e instanceof SetupError && e.explain) printExplain(flags, e.explain);
        const meta = files.find((f) => f.flag === '--meta');
        if (CapsuleError.is(e) && meta) writeReportFile(meta, metaFromError(cliMessage(e, context)));
        throw e;
      } finally {
        caller?.restore();
        for (const [sig, h] of handlers) process.off(sig, h);
        closeReportFiles(files);
      }
    }),
  );
  add(
    explainCommand(async (rootfs, argv, flags) => {
      context.rootfs = rootfs;
      const { explainOptions } = await import('../run.js');
      const steps = explainOptions(runOptionsFromFlags(rootfs, argv, { ...flags, explain: false }));
      write(stdout(), flags.json ? JSON.stringify(steps, null, 2) + '\n' : formatExplain(steps));
    }),
  );
  registerRootfsCommands(cli);
  registerGcCommand(cli);
  registerSessionCommands(cli);
  registerDoctorCommand(cli);
  /* Listed for help only: main() hands `capsule oci ...` to the OCI command line before parsing. */
  cli
    .command('oci')
    .description("the OCI runtime command line (runc's, as capsule-runc): `capsule oci --help`");
  return cli;
}

/** One line for a run a limit ended: the exit status alone would not say so. */
export function limitNote(r: RunResult<string | Buffer>): string | null {
  const l = r.limits;
  switch (r.verdict) {
    case 'TIME_LIMIT':
      return r.timeLimit === 'wall'
        ? `wall time limit of ${l.wallTimeLimitMs} ms exceeded`
        : `CPU time limit of ${l.cpuTimeLimitMs} ms exceeded (${Math.round(r.cpuTimeMs)} ms used)`;
    case 'MEMORY_LIMIT':
      return `memory limit of ${l.memoryLimitBytes} bytes exceeded (killed by the cgroup OOM killer)`;
    case 'OUTPUT_LIMIT':
      return r.mechanism === 'rlimit_fsize'
        ? `file size limit of ${l.fileSizeLimitBytes} bytes exceeded`
        : `output limit of ${l.outputLimitBytes} bytes exceeded (${r.stdoutTruncated ? 'stdout' : 'stderr'} cut there)`;
    case 'SECURITY_VIOLATION':
      return r.violation ? violationMessage(r.violation) : null;
    default:
      return r.pidsLimitHit ? `pids limit of ${l.pidsLimit} reached` : null;
  }
}

/** --explain: the steps of the run, to stderr, as text or JSON. */
function printExplain(flags: RunFlags, steps: ExplainStep[]): void {
  write(stderr(), flags.explainJson ? JSON.stringify(steps, null, 2) + '\n' : formatExplain(steps));
}

/** --report FILE, --json (to stderr) and --meta FILE, after the run; a failed write is a warning. */
function writeReports(flags: RunFlags, files: ReportFile[], report: object, meta: string): void {
  const json = JSON.stringify(report, null, 2) + '\n';
  for (const f of files) writeReportFile(f, f.flag === '--report' ? json : meta);
  if (flags.json) write(stderr(), json);
}

/** Run the CLI; never throws, sets process.exitCode. */
/**
 * Run the command line. `cli` is program()'s command tree, made beforehand by the CLI's
 * start-up snapshot (src/cli/snapshot.ts); a tree parses one command line, once.
 */
export async function main(argv: string[] = process.argv, cli?: Command): Promise<void> {
  /* `capsule-runc ARGS` (its launcher or dist/capsule-runc.mjs) and `capsule oci ARGS`: the OCI command line (oci.ts). */
  if (/(^|\/)capsule-runc(\.mjs)?$/.test(argv[1] ?? '')) return runcMain(argv);
  if (argv[2] === 'oci') return runcMain([argv[0]!, argv[1]!, ...argv.slice(3)], 'capsule oci');
  try {
    /*
     * `--explain=json`: commander would take a value for `--explain [format]` from the next
     * word, the rootfs; so the form with '=' is spelled out before parsing. Only capsule's
     * own options are looked at: everything after PROG is the program's.
     */
    const i = argv.indexOf('--explain=json');
    if (i >= 0) argv = [...argv.slice(0, i), '--explain', '--explain-json', ...argv.slice(i + 1)];
    await (cli ?? program()).parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      if (
        e.code === 'commander.helpDisplayed' ||
        e.code === 'commander.version' ||
        e.code === 'commander.help'
      ) {
        process.exitCode = 0;
        return;
      }
      write(stderr(), `capsule: ${e.message.replace(/^error: /, '')}\n`);
      process.exitCode = EXIT_CAPSULE_FAILED;
      return;
    }
    if (CapsuleError.is(e)) {
      write(stderr(), `capsule: ${cliMessage(e, context)}\n`);
      process.exitCode = exitStatusFor(e);
      return;
    }
    /* Not ours: still one line, with the stack only when asked for. */
    const err = e as Error;
    write(stderr(), `capsule: internal error: ${err?.message ?? String(e)}\n`);
    if (process.env.CAPSULE_DEBUG) write(stderr(), `${err?.stack}\n`);
    process.exitCode = EXIT_CAPSULE_FAILED;
  }
}
