/**
 * Sessions at the command line: `capsule create`, `exec`, `cp`, `ps`, `rm`.
 *
 * A box must outlive `capsule create`, and a sandbox dies with the process that made it
 * (PR_SET_PDEATHSIG). So `create` starts a small detached holder (`capsule
 * __session-holder NAME`, hidden), as conmon does for podman: it makes the box with the
 * library's create(), records it, and waits; `capsule rm` sends it SIGTERM and it destroys
 * the box. `exec` and `cp` do not go through the holder: they attach to the box directly
 * (pidfd_open(2) of its PID 1, checked against the start time recorded with it) and join
 * it as box.exec() does, so the program's stdio is the caller's own.
 *
 * State: sessionsDir()/NAME/ (mode 0700: /run/capsule/sessions for root; without root,
 * $XDG_RUNTIME_DIR/capsule/sessions, or ~/.cache/capsule/sessions when that is unset):
 * options.json (the box's options), and
 * state.json once the box is up ({ holderPid, holderStart, pid, startTime, rootfs,
 * created }), holder.log (the holder's stderr). A name is taken by mkdir(2) of its
 * directory, which is atomic: two `create --name x` at once, one wins, the other is told.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { homedir } from 'node:os';
import { join } from 'node:path';

import { Command, InvalidArgumentError, Option } from 'commander';

import { CapsuleError, ConfigError } from '../errors.js';
import { resolveOptions, type RunOptions } from '../options.js';
import { rootlessMode } from '../rootless.js';
import { attach, type Box, create, processStartTime, type SessionOptions } from '../session.js';
import { parseBytes, parseDurationMs } from '../units.js';
import { selfCommand } from './self.js';
import { forward, stderr, stdout, write } from './streams.js';
import { parseEnv, type RunFlags, runOptionsFromFlags, sandboxFlags, unit } from './run.js';

/** Root's session records. */
export const SESSIONS_DIR = '/run/capsule/sessions';

/**
 * Where session records live: root's in SESSIONS_DIR; a user's (rootless, src/rootless.ts) in
 * its own runtime directory, $XDG_RUNTIME_DIR/capsule/sessions (systemd makes it per user, mode
 * 0700, emptied at logout, as podman keeps its rootless state there), or
 * ~/.cache/capsule/sessions when XDG_RUNTIME_DIR is unset or not absolute.
 */
export function sessionsDir(env: NodeJS.ProcessEnv = process.env): string {
  if (!rootlessMode()) return SESSIONS_DIR;
  const runtime = env.XDG_RUNTIME_DIR;
  if (runtime && runtime.startsWith('/')) return join(runtime, 'capsule/sessions');
  return join(env.HOME && env.HOME.startsWith('/') ? env.HOME : homedir(), '.cache/capsule/sessions');
}
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const HOLDER = '__session-holder';

interface SessionState {
  name: string;
  rootfs: string;
  holderPid: number;
  holderStart: string;
  pid: number;
  startTime: string;
  created: string;
}

function parseName(value: string): string {
  if (!NAME.test(value))
    throw new InvalidArgumentError(
      `a session name is 1 to 64 letters, digits, '_', '.' or '-', not starting with a punctuation mark; got ${JSON.stringify(value)}`,
    );
  return value;
}

function dirOf(name: string): string {
  return join(sessionsDir(), name);
}

function readState(name: string): SessionState | null {
  try {
    return JSON.parse(readFileSync(join(dirOf(name), 'state.json'), 'utf8')) as SessionState;
  } catch {
    return null;
  }
}

function readOptions(name: string): SessionOptions {
  return JSON.parse(readFileSync(join(dirOf(name), 'options.json'), 'utf8')) as SessionOptions;
}

/** Is `pid` still the process that started at `start`? */
function sameProcess(pid: number, start: string): boolean {
  try {
    return processStartTime(pid) === start;
  } catch {
    return false;
  }
}

/** The session `name`'s state, or a one-line error that says what to do. */
function liveSession(name: string): SessionState {
  const st = readState(name);
  if (st === null) throw new CapsuleError(`no session named ${name} (capsule ps lists them)`);
  if (!sameProcess(st.holderPid, st.holderStart) || !sameProcess(st.pid, st.startTime))
    throw new CapsuleError(`session ${name} has ended: remove it with \`capsule rm ${name}\``);
  return st;
}

/** The options of `capsule create`: run's sandbox flags, without what belongs to one command. */
function sessionOptionsFromFlags(rootfs: string, flags: RunFlags): SessionOptions {
  const o: Partial<RunOptions> = runOptionsFromFlags(rootfs, ['/capsule-hold'], flags);
  for (const k of ['argv', 'stdin', 'stdout', 'stderr', 'encoding', 'explain', 'cgroups'] as const)
    delete o[k];
  /* JSON keeps no undefined: the holder reads back exactly what was given. */
  return JSON.parse(JSON.stringify(o)) as SessionOptions;
}

/** `capsule create`: take the name, start the holder, wait for its word. */
async function createSession(name: string, rootfs: string, flags: RunFlags): Promise<void> {
  const options = sessionOptionsFromFlags(rootfs, flags);
  /* Bad options fail here, as a ConfigError the CLI words with its flags, before any name is taken. */
  resolveOptions({ ...options, argv: ['/capsule-hold'] });
  mkdirSync(sessionsDir(), { recursive: true, mode: 0o700 });
  const dir = dirOf(name);
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    const st = readState(name);
    const stale = st !== null && !sameProcess(st.holderPid, st.holderStart);
    throw new CapsuleError(
      stale
        ? `session ${name} has ended but is still listed: remove it with \`capsule rm ${name}\``
        : `a session named ${name} exists already (capsule rm ${name}, or choose another --name)`,
    );
  }
  try {
    writeFileSync(join(dir, 'options.json'), JSON.stringify(options), { mode: 0o600 });
    const log = openSync(join(dir, 'holder.log'), 'w', 0o600);
    const [file, ...self] = selfCommand();
    const holder = spawn(file, [...self, HOLDER, name], {
      detached: true /* its own session: a Ctrl-C in this terminal does not reach it */,
      stdio: ['ignore', 'pipe', log],
    });
    closeSync(log);
    /* Its first line says how it went: "ready", or "error: MESSAGE" (then it exits). */
    let said = '';
    const code = await new Promise<number | null>((resolve) => {
      holder.stdout!.on('data', (d: Buffer) => {
        said += d.toString();
        if (said.includes('\n')) resolve(null);
      });
      holder.once('exit', (c) => resolve(c));
    });
    holder.unref();
    holder.stdout!.destroy();
    if (said.startsWith('ready')) {
      write(stdout(), `${name}\n`);
      return;
    }
    throw new CapsuleError(
      said.replace(/^error: /, '').trim() || `the session holder exited (${code}) before the box was up`,
    );
  } catch (e) {
    if (readState(name) === null) rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/** The hidden holder: make the box, record it, say "ready", then wait for SIGTERM. */
async function holdSession(name: string): Promise<void> {
  const dir = dirOf(name);
  let box: Box;
  try {
    box = await create(readOptions(name));
  } catch (e) {
    write(stdout(), `error: ${(e as Error).message}\n`);
    rmSync(dir, { recursive: true, force: true });
    process.exitCode = 125;
    return;
  }
  const state: SessionState = {
    name,
    rootfs: readOptions(name).rootfs,
    holderPid: process.pid,
    holderStart: processStartTime(process.pid),
    pid: box.pid,
    startTime: processStartTime(box.pid),
    created: new Date().toISOString(),
  };
  writeFileSync(join(dir, 'state.json'), JSON.stringify(state), { mode: 0o600 });
  write(stdout(), 'ready\n');
  await new Promise<void>((resolve) => {
    const end = () => resolve();
    for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.once(sig, end);
    /* The box's PID 1 can also end on its own (killed from outside): then there is nothing to hold. */
    setInterval(() => box.alive || end(), 1000); /* also what keeps the holder's event loop alive */
  });
  await box.destroy();
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}

/** `capsule exec`: attach, run with the caller's stdio, exit with the program's status. */
async function execSession(name: string, argv: string[], flags: ExecFlags): Promise<void> {
  const st = liveSession(name);
  const box = attach({ pid: st.pid, startTime: st.startTime, options: readOptions(name) });
  const output = flags.outputLimit === undefined ? 'inherit' : 'pipe';
  let killer: ((s: NodeJS.Signals) => boolean) | undefined;
  const onSignal = (sig: NodeJS.Signals) => killer?.(sig);
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const sig of signals) process.on(sig, onSignal);
  try {
    const r = await box.exec(argv, {
      env: flags.env,
      cwd: flags.cwd,
      wallTimeLimitMs: flags.wallTimeLimit,
      cpuTimeLimitMs: flags.cpuTimeLimit,
      outputLimitBytes: flags.outputLimit,
      stdin: 'inherit',
      stdout: output,
      stderr: output,
      encoding: 'buffer',
      onOutput: (stream, chunk) => forward(stream === 'stdout' ? stdout() : stderr(), chunk),
      onSpawn: (sb) => (killer = (sig) => sb.kill(sig)),
    });
    if (r.verdict === 'TIME_LIMIT') write(stderr(), `capsule: ${r.timeLimit} time limit exceeded\n`);
    if (r.verdict === 'OUTPUT_LIMIT') write(stderr(), `capsule: output limit exceeded\n`);
    process.exitCode = r.exitCode ?? 128 + (r.signal ? osConstants.signals[r.signal] : 0);
  } finally {
    for (const sig of signals) process.off(sig, onSignal);
    box.close();
  }
}

/** `NAME:/path` when NAME is a session; null for a host path. */
function boxPath(spec: string): { name: string; path: string } | null {
  const m = /^([A-Za-z0-9][A-Za-z0-9_.-]{0,63}):(\/.*)$/.exec(spec);
  if (!m || readState(m[1]!) === null) return null;
  return { name: m[1]!, path: m[2]! };
}

async function copySession(src: string, dst: string): Promise<void> {
  const from = boxPath(src);
  const to = boxPath(dst);
  if ((from === null) === (to === null))
    throw new ConfigError(
      'capsule cp copies between a session and the host: exactly one of SRC and DST is NAME:/PATH, NAME a session (capsule ps)',
    );
  const side = (from ?? to)!;
  const st = liveSession(side.name);
  const box = attach({ pid: st.pid, startTime: st.startTime, options: readOptions(side.name) });
  try {
    if (from) await box.copyOut(from.path, dst);
    else await box.copyIn(src, to!.path);
  } finally {
    box.close();
  }
}

function listSessions(): void {
  let names: string[] = [];
  try {
    names = readdirSync(sessionsDir()).sort();
  } catch {
    /* none yet */
  }
  const rows = [['NAME', 'PID', 'STATUS', 'CREATED', 'ROOTFS']];
  for (const name of names) {
    const st = readState(name);
    if (st === null) {
      rows.push([name, '-', 'starting', '-', '-']);
      continue;
    }
    const up = sameProcess(st.holderPid, st.holderStart) && sameProcess(st.pid, st.startTime);
    rows.push([name, String(st.pid), up ? 'running' : 'ended', st.created, st.rootfs]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  write(
    stdout(),
    rows
      .map((r) =>
        r
          .map((c, i) => c.padEnd(widths[i]!))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n',
  );
}

async function removeSession(name: string): Promise<void> {
  const dir = dirOf(name);
  const st = readState(name);
  if (st === null) {
    let exists = true;
    try {
      readdirSync(dir);
    } catch {
      exists = false;
    }
    if (!exists) throw new CapsuleError(`no session named ${name} (capsule ps lists them)`);
  }
  if (st !== null && sameProcess(st.holderPid, st.holderStart)) {
    process.kill(st.holderPid, 'SIGTERM');
    /* The holder destroys the box and removes the directory; wait for it to be done. */
    for (let i = 0; i < 200 && sameProcess(st.holderPid, st.holderStart); i++)
      await new Promise((r) => setTimeout(r, 50));
    if (sameProcess(st.holderPid, st.holderStart))
      throw new CapsuleError(`session ${name}: its holder (pid ${st.holderPid}) did not end within 10 s`);
  }
  /* A holder that died took its box with it (PR_SET_PDEATHSIG): only the record is left. */
  rmSync(dir, { recursive: true, force: true });
}

interface ExecFlags {
  env?: Record<string, string>;
  cwd?: string;
  wallTimeLimit?: number;
  cpuTimeLimit?: number;
  outputLimit?: number;
}

/** Add the session commands to the capsule program. */
export function registerSessionCommands(cli: Command): void {
  const add = (cmd: Command, hidden = false) => cli.addCommand(cmd.copyInheritedSettings(cli), { hidden });
  add(
    sandboxFlags(
      new Command('create')
        .summary('start a sandbox that stays up, for capsule exec')
        .description(
          'Start a sandbox (a "box") in ROOTFS that stays up after this command returns, named NAME, ' +
            'with the same options as capsule run. Commands run in it with capsule exec share its ' +
            'filesystem (/tmp), namespaces and limits; capsule rm ends it. Prints NAME.',
        )
        .requiredOption('--name <name>', 'the name to refer to the box by', parseName)
        .argument('<rootfs>', 'directory to use as the sandbox root (needs /proc, /dev, /tmp in it)'),
    ).action(async (rootfs: string, flags: RunFlags & { name: string }) => {
      await createSession(flags.name, rootfs, flags);
    }),
  );
  add(
    new Command('exec')
      .summary('run a program in a box made by capsule create')
      .description(
        "Run PROG in the box NAME, with the box's isolation and limits; stdin, stdout and stderr " +
          "are yours. Exit status: the program's, or 128+N when signal N killed it; 125 when capsule failed.",
      )
      .argument('<name>', 'the box (capsule ps lists them)')
      .argument('<prog>', 'absolute path of the program inside the box')
      .argument('[args...]', 'arguments for PROG, passed untouched')
      .addOption(new Option('-e, --env <KEY=VALUE>', 'set a variable; repeatable').argParser(parseEnv))
      .option('--cwd <dir>', "working directory inside the box (default: the box's --cwd)")
      .addOption(
        new Option('--wall-time-limit <time>', 'wall-clock time of this command, e.g. 5s').argParser(
          unit(parseDurationMs),
        ),
      )
      .addOption(
        new Option('--cpu-time-limit <time>', 'CPU time of this command, e.g. 2s').argParser(
          unit(parseDurationMs),
        ),
      )
      .addOption(
        new Option('--output-limit <size>', 'bytes of stdout and of stderr each, e.g. 1m').argParser(
          unit(parseBytes),
        ),
      )
      .passThroughOptions()
      .action(async (name: string, prog: string, args: string[], flags: ExecFlags) => {
        await execSession(name, [prog, ...args], flags);
      }),
  );
  add(
    new Command('cp')
      .summary('copy a file between a box and the host')
      .description(
        'Copy one file into or out of a box: capsule cp HOSTFILE NAME:/PATH, or capsule cp NAME:/PATH HOSTFILE. ' +
          'The path in the box is resolved inside it, and no symlink on it is followed.',
      )
      .argument('<src>', 'HOSTFILE or NAME:/PATH')
      .argument('<dst>', 'NAME:/PATH or HOSTFILE')
      .action(async (src: string, dst: string) => {
        await copySession(src, dst);
      }),
  );
  add(
    new Command('ps').summary('list the boxes capsule create made').action(() => {
      listSessions();
    }),
  );
  add(
    new Command('rm')
      .summary('end a box and everything in it')
      .argument('<names...>', 'the boxes to remove')
      .action(async (names: string[]) => {
        for (const n of names) await removeSession(n);
      }),
  );
  add(
    new Command(HOLDER).argument('<name>').action(async (name: string) => {
      await holdSession(name);
    }),
    true,
  );
}
