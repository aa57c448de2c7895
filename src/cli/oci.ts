/**
 * The OCI runtime command line: `capsule-runc` (package.json "bin") and `capsule oci`,
 * answering runc's command line so that engines (podman --runtime, containerd's runc shim
 * with BinaryName, CRI-O) can call capsule where they call runc. Flags become calls into
 * src/oci/container.ts; results become exit statuses and JSON on stdout.
 *
 * Errors: one line on stderr and exit 1, as runc; with `--log FILE` the same message is
 * appended to FILE too, as a JSON line `{"level":"error","msg":...,"time":...}` under
 * `--log-format json` (containerd's shim reads the last line of that file and shows its
 * msg) or a logrus text line otherwise.
 *
 * Nothing here writes through process.stdout or process.stderr: the container gets this
 * process's descriptors 0, 1 and 2 as its stdio, and Node's wrapping of a pipe would make
 * its open file description non-blocking for the container too (src/cli/streams.ts). Output
 * goes by writeSync on the descriptor.
 */
import { appendFileSync, existsSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';

import { CapsuleError } from '../errors.js';
import { packageRoot } from '../native.js';
import {
  bundleDir,
  containerPids,
  containerState,
  createContainer,
  deleteContainer,
  execContainer,
  killContainer,
  listContainers,
  pauseContainer,
  readInput,
  runContainer,
  startContainer,
  updateContainer,
} from '../oci/container.js';
import { defaultSpec } from '../oci/default-spec.js';
import { features } from '../oci/features.js';
import type { OciResources } from '../oci/plan.js';
import { type ExecProcess, parseProcess, processFromFlags } from '../oci/process.js';
import { parseSignal } from '../oci/signals.js';
import { readBundle } from '../oci/spec.js';
import { DEFAULT_ROOT, lockExisting, OCI_VERSION, validateId } from '../oci/state.js';

/** runc's exit status for its own failures. */
export const EXIT_OCI_FAILED = 1;

interface Globals {
  root: string;
  log?: string;
  logFormat: 'text' | 'json';
  debug?: boolean;
  systemdCgroup?: boolean;
}

const out = (text: string) => writeSync(1, text);
const err = (text: string) => writeSync(2, text);

/** Where log lines go: --log FILE in --log-format, and stderr for errors and warnings. */
export class OciLog {
  constructor(
    private readonly name: string,
    private readonly file: string | undefined,
    private readonly format: 'text' | 'json',
    private readonly debugOn: boolean,
  ) {}

  line(level: 'error' | 'warning' | 'debug', msg: string): void {
    if (level === 'debug' && !this.debugOn) return;
    const time = new Date().toISOString();
    if (this.file) {
      const text =
        this.format === 'json'
          ? JSON.stringify({ level, msg, time }) + '\n'
          : `time="${time}" level=${level} msg=${JSON.stringify(msg)}\n`;
      try {
        appendFileSync(this.file, text);
      } catch (e) {
        err(`${this.name}: cannot write --log ${this.file}: ${(e as Error).message}\n`);
      }
    }
    if (level !== 'debug' || !this.file)
      err(`${this.name}: ${level === 'error' ? '' : level + ': '}${msg}\n`);
  }
}

/**
 * --log and --log-format from the command line before commander parses it, so that a
 * parse error is logged too (containerd needs the line in the file for any failure).
 */
export function logFlags(argv: string[]): { log?: string; logFormat: 'text' | 'json'; debug: boolean } {
  let log: string | undefined;
  let logFormat: 'text' | 'json' = 'text';
  let debug = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (flag: string) =>
      a === flag ? argv[++i] : a.startsWith(flag + '=') ? a.slice(flag.length + 1) : undefined;
    if (a === '--debug' || a === '-debug') debug = true;
    const l = value('--log') ?? value('-log');
    if (l !== undefined) log = l;
    const f = value('--log-format') ?? value('-log-format');
    if (f === 'json' || f === 'text') logFormat = f;
  }
  return { ...(log !== undefined ? { log } : {}), logFormat, debug };
}

function version(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string })
    .version;
}

const int = (flag: string) => (v: string) => {
  if (!/^-?\d+$/.test(v)) throw new InvalidArgumentError(`${flag} takes an integer`);
  return Number(v);
};

/** docker's RAMInBytes: 100m, 1g, 512k, a plain number of bytes; -1 for no limit. */
export function parseBytes(flag: string): (v: string) => number {
  return (v) => {
    const m = /^(-?\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?$/i.exec(v.trim());
    if (!m) throw new InvalidArgumentError(`${flag} takes a size such as 512m or 1g`);
    const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 }[
      m[2]!.toLowerCase()
    ]!;
    return Math.round(Number(m[1]) * unit);
  };
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** The id argument, checked before anything else (no path tricks under --root). */
function id(value: string): string {
  validateId(value);
  return value;
}

/** update's flags and -r FILE (runc's linux.resources JSON) into OciResources. */
function updateResources(flags: Record<string, unknown>): OciResources {
  const r: OciResources = { devices: [] };
  if (typeof flags.r === 'string') {
    let j: Record<string, Record<string, unknown>>;
    try {
      j = JSON.parse(readInput(flags.r)) as Record<string, Record<string, unknown>>;
    } catch (e) {
      throw new CapsuleError(`-r ${flags.r}: not a JSON linux.resources object: ${(e as Error).message}`);
    }
    const num = (o: Record<string, unknown> | undefined, k: string) =>
      o && typeof o[k] === 'number' ? (o[k] as number) : undefined;
    const memory = j.memory;
    if (memory) {
      r.memory = {};
      for (const k of ['limit', 'reservation', 'swap'] as const) {
        const v = num(memory, k);
        if (v !== undefined) r.memory[k] = v;
      }
    }
    const cpu = j.cpu;
    if (cpu) {
      r.cpu = {};
      for (const k of ['shares', 'quota', 'period', 'realtimeRuntime', 'realtimePeriod'] as const) {
        const v = num(cpu, k);
        if (v !== undefined) r.cpu[k] = v;
      }
      if (typeof cpu.cpus === 'string') r.cpu.cpus = cpu.cpus;
      if (typeof cpu.mems === 'string') r.cpu.mems = cpu.mems;
    }
    const pids = num(j.pids, 'limit');
    if (pids !== undefined) r.pids = { limit: pids };
    if (j.unified) r.unified = j.unified as Record<string, string>;
  }
  const f = flags as {
    memory?: number;
    memorySwap?: number;
    memoryReservation?: number;
    pidsLimit?: number;
    cpuQuota?: number;
    cpuPeriod?: number;
    cpuShares?: number;
    cpusetCpus?: string;
    cpusetMems?: string;
  };
  if (f.memory !== undefined || f.memorySwap !== undefined || f.memoryReservation !== undefined) {
    r.memory = { ...r.memory };
    if (f.memory !== undefined) r.memory.limit = f.memory;
    if (f.memorySwap !== undefined) r.memory.swap = f.memorySwap;
    if (f.memoryReservation !== undefined) r.memory.reservation = f.memoryReservation;
  }
  if (f.pidsLimit !== undefined) r.pids = { limit: f.pidsLimit };
  if (
    f.cpuQuota !== undefined ||
    f.cpuPeriod !== undefined ||
    f.cpuShares !== undefined ||
    f.cpusetCpus !== undefined ||
    f.cpusetMems !== undefined
  ) {
    r.cpu = { ...r.cpu };
    if (f.cpuQuota !== undefined) r.cpu.quota = f.cpuQuota;
    if (f.cpuPeriod !== undefined) r.cpu.period = f.cpuPeriod;
    if (f.cpuShares !== undefined) r.cpu.shares = f.cpuShares;
    if (f.cpusetCpus !== undefined) r.cpu.cpus = f.cpusetCpus;
    if (f.cpusetMems !== undefined) r.cpu.mems = f.cpusetMems;
  }
  return r;
}

/**
 * The command tree. `name` is what errors and help call it: `capsule-runc`, or `capsule oci`.
 * `done(code)` receives each command's exit status.
 */
export function ociProgram(name: string, done: (code: number) => void, log: () => OciLog): Command {
  const cli = new Command(name)
    .description("capsule's OCI runtime: runc's command line over capsule's sandbox")
    .option('--root <dir>', 'where container state is kept (a tmpfs)', DEFAULT_ROOT)
    .option('--log <file>', 'also write errors and warnings to FILE')
    .addOption(
      new Option('--log-format <format>', 'format of --log lines').choices(['text', 'json']).default('text'),
    )
    .option('--debug', 'log debug lines too')
    .option('--systemd-cgroup', 'not supported: capsule manages cgroupfs paths (linux.cgroupsPath)')
    .option('--criu <path>', 'accepted for runc compatibility; capsule has no checkpoint/restore')
    .option(
      '--rootless <value>',
      "accepted for runc compatibility ('true', 'false', 'auto'); capsule detects it",
    )
    .version(`${name} version ${version()}\nspec: ${OCI_VERSION}`, '-v, --version')
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ writeOut: out, writeErr: err, outputError: () => {} });

  const g = (cmd: Command): Globals => {
    const o = cmd.optsWithGlobals<Globals>();
    if (o.systemdCgroup) {
      throw new CapsuleError(
        '--systemd-cgroup is not supported: capsule manages cgroupfs paths; drop the flag (and give linux.cgroupsPath as a path)',
      );
    }
    return o;
  };
  const warn = (m: string) => log().line('warning', m);
  const add = (c: Command) =>
    cli.addCommand(c.exitOverride().configureOutput({ writeOut: out, writeErr: err, outputError: () => {} }));

  add(
    new Command('create')
      .description('create a container: every setup step done, the program waiting for `start`')
      .option('-b, --bundle <dir>', 'the bundle directory (config.json and the root)', '.')
      .option('--pid-file <file>', "write the container's PID 1 host pid to FILE")
      .option('--console-socket <path>', "a unix socket to send the terminal's master to (process.terminal)")
      .option('--no-pivot', 'accepted: capsule always uses pivot_root')
      .option('--no-new-keyring', 'accepted: capsule never makes a session keyring')
      .option('--preserve-fds <n>', 'not supported unless 0', int('--preserve-fds'), 0)
      .argument('<id>', 'container id', id)
      .action(
        async (
          cid: string,
          f: { bundle: string; pidFile?: string; consoleSocket?: string; preserveFds: number },
          cmd: Command,
        ) => {
          const o = g(cmd);
          if (f.preserveFds) throw new CapsuleError('--preserve-fds is not supported by capsule');
          const plan = readBundle(bundleDir(f.bundle), cid);
          await createContainer(cid, plan, {
            root: o.root,
            ...(f.pidFile ? { pidFile: f.pidFile } : {}),
            ...(f.consoleSocket ? { consoleSocket: f.consoleSocket } : {}),
            warn,
          });
          done(0);
        },
      ),
  );
  add(
    new Command('start')
      .description('start a created container')
      .argument('<id>', 'container id', id)
      .action(async (cid: string, _f: unknown, cmd: Command) => {
        await startContainer(g(cmd).root, cid, warn);
        done(0);
      }),
  );
  add(
    new Command('state')
      .description("print the container's state (runtime-spec JSON)")
      .argument('<id>', 'container id', id)
      .action(async (cid: string, _f: unknown, cmd: Command) => {
        out(JSON.stringify(await containerState(g(cmd).root, cid), null, 2) + '\n');
        done(0);
      }),
  );
  add(
    new Command('kill')
      .description(
        "send SIGNAL (default SIGTERM) to the container's PID 1, or with --all to every process of it",
      )
      .option('-a, --all', 'every process in the container')
      .argument('<id>', 'container id', id)
      .argument('[signal]', 'a name (SIGKILL, KILL) or a number (9)', 'SIGTERM')
      .action(async (cid: string, sig: string, f: { all?: boolean }, cmd: Command) => {
        const n = parseSignal(sig);
        await killContainer(g(cmd).root, cid, n, f.all === true);
        done(0);
      }),
  );
  add(
    new Command('delete')
      .description("remove a stopped container's cgroup and state (--force: kill a running one first)")
      .option('-f, --force', 'SIGKILL a running container, then delete it')
      .argument('<id>', 'container id', id)
      .action(async (cid: string, f: { force?: boolean }, cmd: Command) => {
        await deleteContainer(g(cmd).root, cid, f.force === true, warn);
        done(0);
      }),
  );
  add(
    new Command('run')
      .description('create and start a container, wait for it, delete it (the exit status is its own)')
      .option('-b, --bundle <dir>', 'the bundle directory', '.')
      .option('--pid-file <file>', "write the container's PID 1 host pid to FILE")
      .option('--console-socket <path>', "a unix socket to send the terminal's master to")
      .option('-d, --detach', 'return once started')
      .option('--keep', 'accepted: the state stays until delete only with --detach')
      .option('--no-pivot', 'accepted: capsule always uses pivot_root')
      .option('--no-new-keyring', 'accepted')
      .option('--preserve-fds <n>', 'not supported unless 0', int('--preserve-fds'), 0)
      .argument('<id>', 'container id', id)
      .action(
        async (
          cid: string,
          f: {
            bundle: string;
            pidFile?: string;
            consoleSocket?: string;
            detach?: boolean;
            preserveFds: number;
          },
          cmd: Command,
        ) => {
          const o = g(cmd);
          if (f.preserveFds) throw new CapsuleError('--preserve-fds is not supported by capsule');
          const plan = readBundle(bundleDir(f.bundle), cid);
          const code = await runContainer(cid, plan, {
            root: o.root,
            ...(f.pidFile ? { pidFile: f.pidFile } : {}),
            ...(f.consoleSocket ? { consoleSocket: f.consoleSocket } : {}),
            detach: f.detach === true,
            warn,
          });
          done(code);
        },
      ),
  );
  add(
    new Command('exec')
      .description("run a new process in a running container (its exit status is the command's)")
      .option(
        '-p, --process <file>',
        "a runtime-spec process JSON ('-': stdin), in place of COMMAND and the flags",
      )
      .option('-d, --detach', 'return once the process runs')
      .option('--pid-file <file>', "write the process's host pid to FILE")
      .option('--console-socket <path>', "a unix socket to send the terminal's master to")
      .option('-t, --tty', 'a terminal (needs --console-socket)')
      .option('--cwd <dir>', 'working directory in the container')
      .option('-e, --env <KEY=VALUE>', 'an environment variable (repeatable)', collect)
      .option('-u, --user <uid[:gid]>', 'user to run as')
      .option('-g, --additional-gids <gid>', 'an additional group (repeatable)', collect)
      .option('-c, --cap <cap>', 'a capability to add (repeatable)', collect)
      .option('--no-new-privs', 'set no_new_privs')
      .option('--preserve-fds <n>', 'not supported unless 0', int('--preserve-fds'), 0)
      .option('--process-label <label>', 'not supported (SELinux)')
      .option('--apparmor <profile>', 'not supported (AppArmor)')
      .argument('<id>', 'container id', id)
      .argument('[command...]', 'the command and its arguments')
      .passThroughOptions()
      .action(
        async (
          cid: string,
          argv: string[],
          f: {
            process?: string;
            detach?: boolean;
            pidFile?: string;
            consoleSocket?: string;
            tty?: boolean;
            cwd?: string;
            env?: string[];
            user?: string;
            additionalGids?: string[];
            cap?: string[];
            newPrivs?: boolean;
            preserveFds: number;
            processLabel?: string;
            apparmor?: string;
          },
          cmd: Command,
        ) => {
          const o = g(cmd);
          if (f.preserveFds) throw new CapsuleError('--preserve-fds is not supported by capsule');
          if (f.processLabel)
            throw new CapsuleError('--process-label is not supported: capsule has no SELinux support');
          if (f.apparmor)
            throw new CapsuleError('--apparmor is not supported: capsule has no AppArmor support');
          let p: ExecProcess;
          if (f.process) {
            if (argv.length > 0) throw new CapsuleError('exec takes --process FILE or a COMMAND, not both');
            let json: unknown;
            try {
              json = JSON.parse(readInput(f.process));
            } catch (e) {
              throw new CapsuleError(`--process ${f.process}: ${(e as Error).message}`);
            }
            p = parseProcess(json, `--process ${f.process}`);
          } else {
            const { lock, state } = await lockExisting(o.root, cid);
            lock.release();
            p = processFromFlags(state.exec.process, argv, {
              ...(f.cwd ? { cwd: f.cwd } : {}),
              ...(f.env ? { env: f.env } : {}),
              ...(f.user ? { user: f.user } : {}),
              ...(f.additionalGids ? { additionalGids: f.additionalGids.map(Number) } : {}),
              ...(f.cap ? { cap: f.cap } : {}),
              noNewPrivs: f.newPrivs === false,
              tty: f.tty === true,
            });
          }
          const code = await execContainer(cid, p, {
            root: o.root,
            detach: f.detach === true,
            ...(f.pidFile ? { pidFile: f.pidFile } : {}),
            ...(f.consoleSocket ? { consoleSocket: f.consoleSocket } : {}),
          });
          done(code ?? 0);
        },
      ),
  );
  add(
    new Command('spec')
      .description("write a starting config.json (runc's shape, capsule's hardened defaults)")
      .option('-b, --bundle <dir>', 'where to write config.json', '.')
      .option('--rootless', 'a spec for a container run without root (a user namespace)')
      .action((f: { bundle: string; rootless?: boolean }) => {
        const file = join(bundleDir(f.bundle), 'config.json');
        if (existsSync(file)) throw new CapsuleError(`${file} exists: remove it first`);
        const spec = defaultSpec({
          rootless: f.rootless === true,
          uid: process.getuid?.() ?? 0,
          gid: process.getgid?.() ?? 0,
        });
        try {
          writeFileSync(file, JSON.stringify(spec, null, '\t') + '\n', { flag: 'wx' });
        } catch (e) {
          throw new CapsuleError(`cannot write ${file}: ${(e as Error).message}`);
        }
        done(0);
      }),
  );
  add(
    new Command('list')
      .description('list the containers under --root')
      .addOption(
        new Option('-f, --format <format>', 'table or json').choices(['table', 'json']).default('table'),
      )
      .option('-q, --quiet', 'ids only')
      .action((f: { format: string; quiet?: boolean }, cmd: Command) => {
        const all = listContainers(g(cmd).root);
        if (f.quiet) out(all.map((c) => c.id + '\n').join(''));
        else if (f.format === 'json') out(JSON.stringify(all) + '\n');
        else
          out(
            table(
              ['ID', 'PID', 'STATUS', 'BUNDLE', 'CREATED', 'OWNER'],
              all.map((c) => [c.id, String(c.pid), c.status, c.bundle, c.created, c.owner]),
            ),
          );
        done(0);
      }),
  );
  add(
    new Command('ps')
      .description('the processes of a container (ps(1) columns; --format json: a JSON array of pids)')
      .addOption(
        new Option('-f, --format <format>', 'table or json').choices(['table', 'json']).default('table'),
      )
      .argument('<id>', 'container id', id)
      .argument('[ps-options...]', 'options for ps(1)', [])
      .passThroughOptions()
      .action(async (cid: string, psArgs: string[], f: { format: string }, cmd: Command) => {
        const pids = await containerPids(g(cmd).root, cid);
        if (f.format === 'json') {
          out(JSON.stringify(pids) + '\n');
          return done(0);
        }
        const ps = spawnSync('ps', psArgs.length > 0 ? psArgs : ['-ef'], { encoding: 'utf8' });
        if (ps.status !== 0)
          throw new CapsuleError(`ps ${psArgs.join(' ')} failed: ${ps.stderr.trim() || ps.error?.message}`);
        const lines = ps.stdout.split('\n');
        const header = lines[0] ?? '';
        const col = header.trim().split(/\s+/).indexOf('PID');
        if (col < 0) throw new CapsuleError('ps output has no PID column: give ps options that print one');
        const want = new Set(pids.map(String));
        out(
          [header, ...lines.slice(1).filter((l) => want.has(l.trim().split(/\s+/)[col] ?? ''))].join('\n') +
            '\n',
        );
        done(0);
      }),
  );
  add(
    new Command('features')
      .description('what capsule supports, as a runtime-spec features document')
      .action(() => {
        out(JSON.stringify(features(version()), null, 4) + '\n');
        done(0);
      }),
  );
  for (const [verb, frozen] of [
    ['pause', true],
    ['resume', false],
  ] as const) {
    add(
      new Command(verb)
        .description(frozen ? 'freeze every process of the container' : 'thaw a paused container')
        .argument('<id>', 'container id', id)
        .action(async (cid: string, _f: unknown, cmd: Command) => {
          await pauseContainer(g(cmd).root, cid, frozen);
          done(0);
        }),
    );
  }
  add(
    new Command('update')
      .description("change a container's resource limits")
      .option('-r, --resources <file>', "linux.resources JSON ('-': stdin)")
      .option('--memory <bytes>', 'memory limit (512m, 1g)', parseBytes('--memory'))
      .option('--memory-swap <bytes>', 'memory+swap limit', parseBytes('--memory-swap'))
      .option('--memory-reservation <bytes>', 'soft memory limit', parseBytes('--memory-reservation'))
      .option('--pids-limit <n>', 'maximum number of tasks', int('--pids-limit'))
      .option('--cpu-quota <us>', 'CFS quota in µs per period', int('--cpu-quota'))
      .option('--cpu-period <us>', 'CFS period in µs', int('--cpu-period'))
      .option('--cpu-shares <n>', 'relative CPU weight', int('--cpu-shares'))
      .option('--cpuset-cpus <list>', 'CPUs to run on (0-3,5)')
      .option('--cpuset-mems <list>', 'memory nodes to use')
      .argument('<id>', 'container id', id)
      .action(async (cid: string, f: Record<string, unknown>, cmd: Command) => {
        const r = updateResources({ ...f, r: f.resources });
        await updateContainer(g(cmd).root, cid, r);
        done(0);
      }),
  );
  for (const verb of ['checkpoint', 'restore', 'events']) {
    add(
      new Command(verb)
        .description(`not supported by capsule`)
        .allowUnknownOption()
        .argument('[args...]')
        .action(() => {
          throw new CapsuleError(`${verb} is not supported by capsule`);
        }),
    );
  }
  return cli;
}

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) =>
    r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 3))).join('') + '\n';
  return [head, ...rows].map(fmt).join('');
}

/**
 * Run the OCI command line on `args` (the words after the program name); never throws,
 * resolves with the exit status. Errors: one line on stderr (and --log), status 1.
 */
export async function ociMain(name: string, args: string[]): Promise<number> {
  const lf = logFlags(args);
  const log = new OciLog(name, lf.log, lf.logFormat, lf.debug);
  let code = 0;
  try {
    log.line('debug', `${name} ${args.join(' ')}`);
    await ociProgram(
      name,
      (c) => (code = c),
      () => log,
    ).parseAsync(args, { from: 'user' });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (
        e.code === 'commander.helpDisplayed' ||
        e.code === 'commander.version' ||
        e.code === 'commander.help'
      )
        return 0;
      log.line('error', e.message.replace(/^error: /, ''));
      return EXIT_OCI_FAILED;
    }
    if (CapsuleError.is(e)) {
      log.line('error', e.message);
      return EXIT_OCI_FAILED;
    }
    const x = e as Error;
    log.line('error', `internal error: ${x?.message ?? String(e)}`);
    if (lf.debug) err(`${x?.stack}\n`);
    return EXIT_OCI_FAILED;
  }
}

/** The `capsule-runc` executable's main: exits with the command's status once it is done. */
export async function runcMain(argv: string[] = process.argv, name = 'capsule-runc'): Promise<void> {
  const code = await ociMain(name, argv.slice(2));
  /*
   * Exit now: a created container is unref'd in the addon and outlives this process (no
   * parent-death signal in OCI mode); nothing else should hold the event loop.
   */
  process.exit(code);
}
