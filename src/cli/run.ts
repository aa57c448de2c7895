/**
 * `capsule run [options] ROOTFS PROG [ARGS...]`: flags in, exit status out.
 * Everything after PROG goes to the program untouched.
 */
import { Command, InvalidArgumentError, Option } from 'commander';

import type { LimitOptions } from '../limits.js';
import type { BindMount, RunOptions } from '../options.js';
import { parseBytes, parseCount, parseDurationMs } from '../units.js';
import { BUILTIN_PROFILES } from '../seccomp/builtin.js';
import { type DeviceRequest, parseDeviceSpec } from '../devices/spec.js';

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

/** `FIRST-LAST`, inclusive, for --host-id-range. */
function parseIdRange(value: string): { first: number; count: number } {
  const m = /^(\d+)-(\d+)$/.exec(value);
  if (!m || Number(m[2]) < Number(m[1]))
    throw new InvalidArgumentError(`expected FIRST-LAST host ids, got ${JSON.stringify(value)}`);
  return { first: Number(m[1]), count: Number(m[2]) - Number(m[1]) + 1 };
}

/** Adapt a units.ts parser to commander: its errors become InvalidArgumentError. */
export function unit(parse: (v: string) => number): (v: string) => number {
  return (value) => {
    try {
      return parse(value);
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message.replace(/^capsule: /, ''));
    }
  };
}
const bytes = unit(parseBytes);
const duration = unit(parseDurationMs);
const count = unit(parseCount);
const cpus = unit((v) => {
  const n = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v) || n <= 0)
    throw new Error(`expected a number of CPUs such as 1 or 0.5, got ${JSON.stringify(v)}`);
  return n;
});

function seccompName(value: string): RunOptions['seccomp'] {
  if (!(BUILTIN_PROFILES as readonly string[]).includes(value))
    throw new InvalidArgumentError(
      `expected one of ${BUILTIN_PROFILES.join(', ')}, got ${JSON.stringify(value)}`,
    );
  return value as RunOptions['seccomp'];
}

/** `--device HOST[:SANDBOX][:r|w|rw]`, repeatable. */
export function parseDevice(value: string, previous: DeviceRequest[] = []): DeviceRequest[] {
  try {
    return [...previous, parseDeviceSpec(value)];
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/** `--gpu all` or `--gpu 0,1`. */
export function parseGpus(value: string): 'all' | number[] {
  if (value === 'all') return 'all';
  if (!/^\d+(,\d+)*$/.test(value))
    throw new InvalidArgumentError(
      `expected all or GPU indexes such as 0 or 0,1, got ${JSON.stringify(value)}`,
    );
  return value.split(',').map(Number);
}

export interface RunFlags {
  cpuTimeLimit?: number;
  wallTimeLimit?: number;
  memoryLimit?: number;
  pidsLimit?: number;
  outputLimit?: number;
  cpus?: number;
  cpuset?: string;
  fileSizeLimit?: number;
  openFilesLimit?: number;
  stackLimit?: number;
  report?: string;
  json?: boolean;
  meta?: string;
  explain?: boolean;
  /** Set by `--explain=json` (see program.ts). */
  explainJson?: boolean;
  bind?: BindMount[];
  env?: Record<string, string>;
  cwd?: string;
  hostname?: string;
  uid?: number;
  gid?: number;
  hostIds?: 'unique' | 'shared';
  hostIdRange?: { first: number; count: number };
  writableRoot?: boolean;
  overlay?: boolean;
  overlaySize?: number;
  box?: string;
  boxSize?: number;
  tmpSize?: number;
  devPts?: boolean;
  devShm?: boolean;
  tmpNoexec?: boolean;
  sys?: boolean;
  seccomp?: RunOptions['seccomp'];
  seccompProfile?: string;
  device?: DeviceRequest[];
  gpu?: 'all' | number[];
  /** false from --no-gpu-libs. */
  gpuLibs?: boolean;
  cdiDevice?: string[];
  /** -t: a terminal of the program's own (src/cli/tty.ts). */
  tty?: boolean;
  /** -i: stdin stays open for the program (it always is: see the flag's help). */
  interactive?: boolean;
}

/** The library options a `capsule run` command line stands for (stdio is the caller's). */
export function runOptionsFromFlags(rootfs: string, argv: string[], flags: RunFlags): RunOptions {
  const limits: LimitOptions = {
    cpuTimeLimitMs: flags.cpuTimeLimit,
    wallTimeLimitMs: flags.wallTimeLimit,
    memoryLimitBytes: flags.memoryLimit,
    pidsLimit: flags.pidsLimit,
    outputLimitBytes: flags.outputLimit,
    cpus: flags.cpus,
    cpusetCpus: flags.cpuset,
    fileSizeLimitBytes: flags.fileSizeLimit,
    openFilesLimit: flags.openFilesLimit,
    stackLimitBytes: flags.stackLimit,
  };
  /* An output cap needs capsule between the program and your stdout: it streams through. */
  const output = flags.outputLimit === undefined ? 'inherit' : 'pipe';
  return {
    ...limits,
    rootfs,
    argv,
    env: flags.env,
    cwd: flags.cwd,
    hostname: flags.hostname,
    uid: flags.uid,
    gid: flags.gid,
    hostIds: flags.hostIds,
    hostIdRange: flags.hostIdRange,
    writableRoot: flags.writableRoot,
    /* --overlay-size says --overlay. */
    overlay: flags.overlay === true || flags.overlaySize !== undefined ? true : undefined,
    overlaySizeBytes: flags.overlaySize,
    box: flags.box,
    boxSizeBytes: flags.boxSize,
    tmpSizeBytes: flags.tmpSize,
    devPts: flags.devPts,
    devShm: flags.devShm,
    tmpNoexec: flags.tmpNoexec,
    sys: flags.sys,
    seccomp: flags.seccomp,
    seccompProfile: flags.seccompProfile,
    devices: flags.device,
    gpus: flags.gpu,
    gpuLibraries: flags.gpu === undefined ? undefined : flags.gpuLibs !== false,
    cdiDevices: flags.cdiDevice,
    explain: flags.explain === true || flags.explainJson === true,
    /*
     * A cgroup is for limits and for exact accounting. A plain `capsule run` shows neither,
     * and on cgroup v1 moving a lone process into its cgroups waits for an RCU grace period
     * (milliseconds): so it takes one only when a limit, a report or --explain asks.
     */
    cgroups: Boolean(flags.report || flags.json || flags.meta || flags.explain || flags.explainJson),
    binds: flags.bind,
    /*
     * -t: stdio is the program's own terminal; what it writes streams through capsule (the
     * run's onOutput) and is not kept, since a session may write without end.
     */
    ...(flags.tty
      ? { terminal: { keepOutput: false } }
      : { stdin: 'inherit' as const, stdout: output, stderr: output }),
    encoding: 'buffer',
  };
}

/** The options that describe a sandbox, shared by `capsule run` and `capsule explain`. */
function sandboxOptions(cmd: Command): Command {
  return sandboxFlags(
    cmd
      .argument('<rootfs>', 'directory to use as the sandbox root (needs /proc, /dev, /tmp in it)')
      .argument('<prog>', 'absolute path of the program inside ROOTFS')
      .argument('[args...]', 'arguments for PROG, passed untouched'),
  );
}

/** The flags that describe a sandbox (also `capsule create`'s, src/cli/session.ts). */
export function sandboxFlags(cmd: Command): Command {
  return cmd
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
    .addOption(
      new Option(
        '--host-ids <mode>',
        "unique: each sandbox is a host uid/gid of its own (per-user kernel limits are its own); shared: the sandbox's uid/gid on the host itself",
      ).choices(['unique', 'shared']),
    )
    .addOption(
      new Option(
        '--host-id-range <FIRST-LAST>',
        'host ids --host-ids unique leases from (default: 1879048192-1879113727)',
      ).argParser(parseIdRange),
    )
    .option('--writable-root', 'leave the rootfs writable (writes reach the host directory)')
    .option(
      '--overlay',
      'make the whole root writable for this run only: writes go to a tmpfs over the rootfs, thrown away at the end',
    )
    .addOption(
      new Option(
        '--overlay-size <size>',
        "size cap of --overlay's tmpfs, e.g. 256m (default: 64m; counts against --memory-limit; implies --overlay)",
      ).argParser(bytes),
    )
    .option(
      '--box <dir>',
      "a writable work directory at DIR for this run only: a tmpfs owned by the sandbox's uid, exec allowed",
    )
    .addOption(new Option('--box-size <size>', 'size cap of --box, e.g. 64m (default: 64m)').argParser(bytes))
    .addOption(
      new Option('--tmp-size <size>', 'size cap of the private /tmp, e.g. 64m (default: 64m)').argParser(
        bytes,
      ),
    )
    .option(
      '-t, --tty',
      'give the program a terminal of its own (a pty from a private devpts), driven from yours in raw mode: job control, ^C and ^Z work inside; stdin must be a terminal',
    )
    .option('--dev-pts', 'mount a private /dev/pts')
    .option('--dev-shm', 'mount a private /dev/shm')
    .option('--tmp-noexec', 'mount /tmp noexec: nothing written there can be run')
    .option('--sys', 'mount sysfs at /sys, read-only, firmware and powercap masked (ROOTFS needs /sys)')
    .addOption(
      new Option(
        '--device <HOST[:SANDBOX][:r|w|rw]>',
        "a host device node in the sandbox's /dev, read-write unless :r or :w; repeatable (docs/devices.md)",
      ).argParser(parseDevice),
    )
    .addOption(
      new Option(
        '--gpu <all|list>',
        "NVIDIA GPUs: all, or indexes as nvidia-smi numbers them (0 or 0,1); their device nodes and the host driver's libraries",
      ).argParser(parseGpus),
    )
    .option('--no-gpu-libs', "with --gpu: the device nodes only, not the host driver's libraries")
    .addOption(
      new Option(
        '--cdi-device <vendor.com/class=name>',
        'a CDI device from the JSON specs in /etc/cdi and /var/run/cdi (nodes, bind mounts, env; no hooks); repeatable',
      ).argParser((v: string, previous: string[] = []) => [...previous, v]),
    )
    .addOption(
      new Option(
        '--cpu-time-limit <time>',
        'CPU time of the whole sandbox, e.g. 2s, 500ms (a bare number is seconds)',
      ).argParser(duration),
    )
    .addOption(
      new Option('--wall-time-limit <time>', 'wall-clock time, e.g. 5s (a bare number is seconds)').argParser(
        duration,
      ),
    )
    .addOption(
      new Option('--memory-limit <size>', 'memory of the whole sandbox, swap included, e.g. 256m').argParser(
        bytes,
      ),
    )
    .addOption(new Option('--pids-limit <n>', 'processes and threads alive at once').argParser(count))
    .addOption(
      new Option(
        '--output-limit <size>',
        'bytes of stdout and of stderr each, e.g. 1m; past it the run ends',
      ).argParser(bytes),
    )
    .addOption(new Option('--cpus <n>', 'CPU quota in CPUs, e.g. 1 or 0.5').argParser(cpus))
    .option('--cpuset <list>', 'CPUs to run on, e.g. 0 or 0-1')
    .addOption(
      new Option('--file-size-limit <size>', 'largest file the program may write (RLIMIT_FSIZE)').argParser(
        bytes,
      ),
    )
    .addOption(
      new Option('--open-files-limit <n>', 'open files per process (RLIMIT_NOFILE; default 1024)').argParser(
        count,
      ),
    )
    .addOption(new Option('--stack-limit <size>', 'stack per process (RLIMIT_STACK)').argParser(bytes))
    .addOption(
      new Option(
        '--seccomp <name>',
        'seccomp profile: default (allow-list; ENOSYS, EPERM for known-dangerous calls), default-kill, strict (allow-list for judged programs), compile (default-kill without network, for compilers), none',
      ).argParser(seccompName),
    )
    .option('--seccomp-profile <file>', 'a seccomp profile in the OCI/Docker JSON format instead');
}

export function runCommand(
  action: (rootfs: string, argv: string[], flags: RunFlags) => Promise<void>,
): Command {
  return sandboxOptions(
    new Command('run')
      .summary('run a program in a sandbox')
      .description(
        'Run PROG inside ROOTFS in a sandbox: new PID, network, mount, IPC and UTS namespaces; ' +
          'the rootfs as / (pivot_root), read-only; a private /proc, /dev and /tmp; user nobody, ' +
          'no capabilities, no_new_privs. stdin, stdout and stderr are yours.\n\n' +
          "Exit status: the program's, or 128+N when it was killed by signal N; 125 when capsule " +
          'itself failed, 126 when PROG cannot be executed, 127 when it is not found.',
      ),
  )
    .option(
      '-i, --interactive',
      'keep stdin open for the program (the default: stdin is always passed; -it as with docker)',
    )
    .option('--report <file>', 'write the result (verdict, times, memory, limits) as JSON to FILE')
    .option('--json', 'write the result as JSON to stderr when the run ends')
    .option(
      '--meta <file>',
      "write isolate's meta file (time, time-wall, max-rss, cg-mem, status, ...) to FILE",
    )
    .option(
      '--explain',
      'print every step taken, with its arguments and time, to stderr (--explain=json: as JSON)',
    )
    .addOption(new Option('--explain-json').hideHelp())
    .passThroughOptions()
    .addHelpText(
      'after',
      '\nExamples:\n' +
        "  capsule run ./rootfs /bin/sh -c 'echo $$; id; ls /'\n" +
        '  capsule run --bind ./data:/data --env LANG=C ./rootfs /usr/bin/python3 /data/solve.py\n' +
        '  capsule run --bind ./out:/out:rw ./rootfs /bin/sh -c "date > /out/stamp"\n' +
        '  capsule run --cpu-time-limit 2s --wall-time-limit 5s --memory-limit 256m --pids-limit 64 \\\n' +
        '      --output-limit 1m --meta meta.txt ./rootfs /box/solution < input.txt\n' +
        "  capsule run --env A=1 -- ./rootfs /bin/prog --its-own-flags   (-- ends capsule's options)\n" +
        '  capsule run -it ./rootfs /bin/sh                 (an interactive shell with job control)',
    )
    .action(async (rootfs: string, prog: string, args: string[], flags: RunFlags) => {
      await action(rootfs, [prog, ...args], flags);
    });
}

/** `capsule explain [options] ROOTFS PROG [ARGS...]`: the steps, without running anything. */
export function explainCommand(
  action: (rootfs: string, argv: string[], flags: RunFlags) => Promise<void>,
): Command {
  return sandboxOptions(
    new Command('explain')
      .summary('print the steps a run would take, without running anything')
      .description(
        'Print, in order, every step capsule would take to run PROG in ROOTFS with these options: ' +
          'the system call and its arguments, why it is there, and its man page. Nothing is run; ' +
          'the options are validated as `capsule run` validates them. For teaching, and for reviewing ' +
          'a configuration. See docs/internals.md for the whole story.',
      ),
  )
    .option('--json', 'print the steps as JSON')
    .passThroughOptions()
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  capsule explain ./rootfs /bin/true\n' +
        '  capsule explain --memory-limit 256m --bind ./data:/data ./rootfs /usr/bin/python3 /data/x.py\n' +
        '  capsule run --explain ./rootfs /bin/true      (the same, timed, for a real run)',
    )
    .action(async (rootfs: string, prog: string, args: string[], flags: RunFlags) => {
      await action(rootfs, [prog, ...args], flags);
    });
}
