/**
 * `capsule run [options] ROOTFS PROG [ARGS...]`: flags in, exit status out.
 * Everything after PROG goes to the program untouched.
 */
import { Command, InvalidArgumentError, Option } from 'commander';

import type { BindMount, RunOptions } from '../options.js';
import { parseBytes } from '../units.js';

/** `HOST:SANDBOX[:ro|rw]`, read-only unless `:rw`. */
export function parseBind(value: string, previous: BindMount[] = []): BindMount[] {
  const parts = value.split(':');
  let readOnly = true;
  if (parts.length === 3 && (parts[2] === 'ro' || parts[2] === 'rw')) {
    readOnly = parts.pop() === 'ro';
  }
  if (parts.length !== 2 || !parts[0] || !parts[1]) {
    throw new InvalidArgumentError(`expected HOST:SANDBOX[:ro|rw], got ${JSON.stringify(value)}`);
  }
  return [...previous, { source: parts[0], target: parts[1], readOnly }];
}

/** `KEY=VALUE`, repeatable. */
export function parseEnv(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`expected KEY=VALUE, got ${JSON.stringify(value)}`);
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

function parseId(value: string): number {
  if (!/^\d+$/.test(value))
    throw new InvalidArgumentError(`expected a numeric id, got ${JSON.stringify(value)}`);
  return Number(value);
}

function bytes(value: string): number {
  try {
    return parseBytes(value);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message.replace(/^capsule: /, ''));
  }
}

export interface RunFlags {
  bind?: BindMount[];
  env?: Record<string, string>;
  cwd?: string;
  hostname?: string;
  uid?: number;
  gid?: number;
  writableRoot?: boolean;
  tmpSize?: number;
  devPts?: boolean;
  devShm?: boolean;
}

/** The library options a `capsule run` command line stands for (stdio is the caller's). */
export function runOptionsFromFlags(rootfs: string, argv: string[], flags: RunFlags): RunOptions {
  return {
    rootfs,
    argv,
    env: flags.env,
    cwd: flags.cwd,
    hostname: flags.hostname,
    uid: flags.uid,
    gid: flags.gid,
    writableRoot: flags.writableRoot,
    tmpSizeBytes: flags.tmpSize,
    devPts: flags.devPts,
    devShm: flags.devShm,
    binds: flags.bind,
    stdin: 'inherit',
    stdout: 'inherit',
    stderr: 'inherit',
  };
}

export function runCommand(
  action: (rootfs: string, argv: string[], flags: RunFlags) => Promise<void>,
): Command {
  return new Command('run')
    .summary('run a program in a sandbox')
    .description(
      'Run PROG inside ROOTFS in a sandbox: new PID, network, mount, IPC and UTS namespaces; ' +
        'the rootfs as / (pivot_root), read-only; a private /proc, /dev and /tmp; user nobody, ' +
        'no capabilities, no_new_privs. stdin, stdout and stderr are yours.\n\n' +
        "Exit status: the program's, or 128+N when it was killed by signal N; 125 when capsule " +
        'itself failed, 126 when PROG cannot be executed, 127 when it is not found.',
    )
    .argument('<rootfs>', 'directory to use as the sandbox root (needs /proc, /dev, /tmp in it)')
    .argument('<prog>', 'absolute path of the program inside ROOTFS')
    .argument('[args...]', 'arguments for PROG, passed untouched')
    .addOption(
      new Option(
        '--bind <HOST:SANDBOX[:ro|rw]>',
        'bind a host path into the sandbox (read-only unless :rw); repeatable',
      ).argParser(parseBind),
    )
    .addOption(
      new Option(
        '-e, --env <KEY=VALUE>',
        "set a variable (the host's environment is never passed); repeatable",
      ).argParser(parseEnv),
    )
    .option('--cwd <dir>', 'working directory inside the sandbox', '/')
    .option('--hostname <name>', 'hostname inside the sandbox', 'capsule')
    .addOption(
      new Option('--uid <n>', 'user id inside the sandbox (default: 65534, nobody)').argParser(parseId),
    )
    .addOption(
      new Option('--gid <n>', 'group id inside the sandbox (default: 65534, nogroup)').argParser(parseId),
    )
    .option('--writable-root', 'leave the rootfs writable (writes reach the host directory)')
    .addOption(
      new Option('--tmp-size <size>', 'size cap of the private /tmp, e.g. 64m (default: 64m)').argParser(
        bytes,
      ),
    )
    .option('--dev-pts', 'mount a private /dev/pts')
    .option('--dev-shm', 'mount a private /dev/shm')
    .passThroughOptions()
    .addHelpText(
      'after',
      '\nExamples:\n' +
        "  capsule run ./rootfs /bin/sh -c 'echo $$; id; ls /'\n" +
        '  capsule run --bind ./data:/data --env LANG=C ./rootfs /usr/bin/python3 /data/solve.py\n' +
        '  capsule run --bind ./out:/out:rw ./rootfs /bin/sh -c "date > /out/stamp"\n' +
        "  capsule run --env A=1 -- ./rootfs /bin/prog --its-own-flags   (-- ends capsule's options)",
    )
    .action(async (rootfs: string, prog: string, args: string[], flags: RunFlags) => {
      await action(rootfs, [prog, ...args], flags);
    });
}
