/**
 * `capsule rootfs check DIR --run PROG ARGS`: run PROG once in a sandbox on DIR and list the
 * paths it looked for and did not find, from the program's real system calls, not from a guess.
 *
 * The kernel reports them to a tracer: `strace -f` (ptrace(2)) runs this very CLI's
 * `capsule run`, follows it into the sandbox, and records each file call's result. Only the
 * calls of the sandboxed program and its children count, from its execve on (capsule's own
 * set-up, before it, is not the program's). Paths are as the program saw them, inside DIR.
 * rootfs-tools never loads the addon; the sandbox is the library's, through `capsule run`.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { RootfsError } from '../../rootfs-tools/errors.js';
import { selfCommand } from './self.js';

/** The calls that look a path up; a failure with ENOENT or ENOTDIR means "not there". */
const LOOKUPS = [
  'open',
  'openat',
  'openat2',
  'creat',
  'stat',
  'lstat',
  'newfstatat',
  'statx',
  'access',
  'faccessat',
  'faccessat2',
  'readlink',
  'readlinkat',
  'execve',
  'execveat',
  'opendir',
  'chdir',
];
const SPAWNS = ['clone', 'clone3', 'fork', 'vfork'];

export interface NotFound {
  path: string;
  /** The first call that looked for it. */
  syscall: string;
  /** ENOENT, or ENOTDIR (a component of the path is a file). */
  errno: string;
}

/**
 * The paths the traced program looked up and did not find, in the order first looked for, from
 * `strace -f` output (one call per line, the pid first). `programPid` is the first pid, other than
 * the tracer's own first process and capsule-init, whose execve succeeded: the sandboxed program.
 */
export function parseStrace(text: string): { programPid: number | null; notFound: NotFound[] } {
  const pending = new Map<number, string>();
  const tracked = new Set<number>();
  let first: number | null = null;
  let programPid: number | null = null;
  const notFound: NotFound[] = [];
  const seen = new Set<string>();
  for (const raw of text.split('\n')) {
    const m = /^(\d+)\s+(.*)$/.exec(raw);
    if (!m) continue;
    const pid = Number(m[1]);
    let line = m[2] as string;
    first ??= pid;
    /* strace -f splits a call that another process interrupted: "<unfinished ...>", then "<... NAME resumed>". */
    if (line.endsWith('<unfinished ...>')) {
      pending.set(pid, line.slice(0, -'<unfinished ...>'.length));
      continue;
    }
    const resumed = /^<\.\.\. \w+ resumed>(.*)$/.exec(line);
    if (resumed) {
      line = (pending.get(pid) ?? '') + resumed[1];
      pending.delete(pid);
    }
    const call = /^(\w+)\((.*)\)\s+=\s+(-?\d+|\?)(?:\s+(\w+))?/.exec(line);
    if (!call) continue;
    const [, name, args, ret, errno] = call as unknown as [string, string, string, string, string?];
    if (programPid === null) {
      /* capsule-init is executed from a descriptor first (execveat, AT_EMPTY_PATH), then runs the program. */
      const init = args.includes('["capsule-init"');
      if (pid !== first && !init && (name === 'execve' || name === 'execveat') && ret === '0') {
        programPid = pid;
        tracked.add(pid);
      }
      continue;
    }
    if (!tracked.has(pid)) continue;
    if (SPAWNS.includes(name) && /^\d+$/.test(ret) && ret !== '0') tracked.add(Number(ret));
    if (!LOOKUPS.includes(name) || ret !== '-1' || (errno !== 'ENOENT' && errno !== 'ENOTDIR')) continue;
    const path = /"((?:[^"\\]|\\.)*)"/.exec(args)?.[1];
    if (path === undefined || seen.has(path)) continue;
    seen.add(path);
    notFound.push({ path: path.replace(/\\"/g, '"').replace(/\\\\/g, '\\'), syscall: name, errno });
  }
  return { programPid, notFound };
}

const STRACE_DIRS = ['/usr/bin', '/bin', '/usr/local/bin'];

/**
 * Runs `capsule run DIR argv` under strace and returns what the program did not find, with the
 * run's exit status (capsule's: the program's, or capsule's for a verdict).
 */
export async function runAndTrace(
  dir: string,
  argv: string[],
  output: (chunk: Buffer, stream: 'stdout' | 'stderr') => void,
): Promise<{ exitCode: number; notFound: NotFound[] }> {
  const strace = STRACE_DIRS.map((d) => join(d, 'strace')).find((p) => existsSync(p));
  if (!strace) {
    throw new RootfsError(
      'INVALID',
      'rootfs check --run traces the program with strace, which this host does not have: apt-get install strace',
    );
  }
  const self = selfCommand();
  const work = mkdtempSync(join(tmpdir(), 'capsule-check-run-'));
  const log = join(work, 'trace');
  try {
    const child = spawn(
      strace,
      [
        '-f',
        '-qq',
        '-s',
        '4096',
        '-o',
        log,
        '-e',
        `trace=${[...LOOKUPS.filter((c) => c !== 'opendir'), ...SPAWNS].join(',')}`,
        '--',
        ...self,
        'run',
        dir,
        ...argv,
      ],
      { stdio: ['inherit', 'pipe', 'pipe'] },
    );
    child.stdout.on('data', (c: Buffer) => output(c, 'stdout'));
    child.stderr.on('data', (c: Buffer) => output(c, 'stderr'));
    const exitCode = await new Promise<number>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    });
    const { programPid, notFound } = parseStrace(readFileSync(log, 'utf8'));
    if (programPid === null) {
      throw new RootfsError(
        'INVALID',
        `rootfs check --run: ${argv[0]} never started in ${dir} (capsule run exited ${exitCode}; its message is above)`,
      );
    }
    return { exitCode, notFound };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
