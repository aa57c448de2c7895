/**
 * capsule's errors in the CLI's words. The library names its options (`memoryLimitBytes`)
 * and counts in bytes and milliseconds; a person at the command line typed
 * `--memory-limit 10` and reads `--memory-limit must be at least 1 MiB, got 10 bytes`.
 *
 * One table maps each library option to its flag and to the unit its numbers are in. A
 * ConfigError carries the option it is about, and its message names it: the option names
 * in a message become flags, whatever the message says (so a validation added to the
 * library later reads right here too), and the numbers about a sized or timed option
 * become human units. A few errors get a hint only the CLI can give (the rootfs path for
 * a missing --cwd, the CPUs this machine has for --cpuset).
 */
import { readFileSync } from 'node:fs';

import { CapsuleError, ConfigError, SetupError } from '../errors.js';

interface Flag {
  /** What the command line calls it. */
  flag: string;
  /** The unit of its numbers in the library's messages. */
  unit?: 'bytes' | 'ms';
  /** Leave the library's word in messages (it reads the same at the command line). */
  keepWord?: boolean;
  /**
   * Also an ordinary word ("the CDI devices"): renamed only where it is the option, at the
   * start of the message or with an index (`devices[0]`).
   */
  plainWord?: boolean;
}

/** Library option → CLI flag: every option `capsule run` sets (test/cli/messages.test.ts checks). */
export const OPTION_FLAGS: Readonly<Record<string, Flag>> = {
  rootfs: { flag: 'ROOTFS', keepWord: true },
  argv: { flag: 'PROG', keepWord: true },
  env: { flag: '--env', keepWord: true },
  cwd: { flag: '--cwd' },
  hostname: { flag: '--hostname', plainWord: true },
  uid: { flag: '--uid', plainWord: true },
  gid: { flag: '--gid', plainWord: true },
  writableRoot: { flag: '--writable-root' },
  overlay: { flag: '--overlay', plainWord: true },
  overlaySizeBytes: { flag: '--overlay-size', unit: 'bytes' },
  box: { flag: '--box' },
  boxSizeBytes: { flag: '--box-size', unit: 'bytes' },
  tmpSizeBytes: { flag: '--tmp-size', unit: 'bytes' },
  devPts: { flag: '--dev-pts' },
  devShm: { flag: '--dev-shm' },
  tmpNoexec: { flag: '--tmp-noexec' },
  sys: { flag: '--sys', keepWord: true },
  binds: { flag: '--bind', plainWord: true },
  seccomp: { flag: '--seccomp', keepWord: true } /* also the word: "seccomp profile" */,
  seccompProfile: { flag: '--seccomp-profile' },
  devices: { flag: '--device', plainWord: true },
  gpus: { flag: '--gpu', plainWord: true },
  gpuLibraries: { flag: '--no-gpu-libs' },
  cdiDevices: { flag: '--cdi-device' },
  cpuTimeLimitMs: { flag: '--cpu-time-limit', unit: 'ms' },
  wallTimeLimitMs: { flag: '--wall-time-limit', unit: 'ms' },
  memoryLimitBytes: { flag: '--memory-limit', unit: 'bytes' },
  pidsLimit: { flag: '--pids-limit' },
  outputLimitBytes: { flag: '--output-limit', unit: 'bytes' },
  cpus: { flag: '--cpus', plainWord: true },
  cpusetCpus: { flag: '--cpuset' },
  fileSizeLimitBytes: { flag: '--file-size-limit', unit: 'bytes' },
  openFilesLimit: { flag: '--open-files-limit' },
  stackLimitBytes: { flag: '--stack-limit', unit: 'bytes' },
  hostIds: { flag: '--host-ids' },
  hostIdRange: { flag: '--host-id-range' },
  terminal: { flag: '--tty', plainWord: true } /* also the word: "a terminal" */,
  /* The CLI hands the program its own stdin (and stdout, stderr without --output-limit). */
  stdin: { flag: 'stdin', keepWord: true },
  stdout: { flag: 'stdout', keepWord: true },
  stderr: { flag: 'stderr', keepWord: true },
};

const UNITS = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 10 → "10 bytes", 1048576 → "1 MiB", 1536 → "1.5 KiB"; not a whole tenth: the exact count too. */
export function humanBytes(n: number): string {
  let i = 0;
  while (i < UNITS.length - 1 && n >= 1024 ** (i + 1)) i++;
  if (i === 0) return `${n} ${n === 1 ? 'byte' : 'bytes'}`;
  const v = n / 1024 ** i;
  const shown = Number.isInteger(v) ? String(v) : v.toFixed(1);
  return Number(shown) * 1024 ** i === n ? `${shown} ${UNITS[i]}` : `${shown} ${UNITS[i]} (${n} bytes)`;
}

/** 0 → "0 ms", 2000 → "2 s", 1500 → "1.5 s", 7200000 → "2 h". */
export function humanMs(n: number): string {
  if (n < 1000) return `${n} ms`;
  if (n % 3_600_000 === 0) return `${n / 3_600_000} h`;
  if (n % 60_000 === 0 && n < 3_600_000) return `${n / 60_000} min`;
  return `${n / 1000} s`;
}

function human(value: string, unit: Flag['unit']): string {
  if (!/^\d+$/.test(value) || unit === undefined) return value;
  return unit === 'bytes' ? humanBytes(Number(value)) : humanMs(Number(value));
}

/** The option's table entry, from a name such as `binds[1].target`. */
function entry(option: string | undefined): Flag | undefined {
  const base = option?.replace(/[[.].*$/, '');
  return base !== undefined && Object.hasOwn(OPTION_FLAGS, base) ? OPTION_FLAGS[base] : undefined;
}

/** Every library option name in `text` becomes its flag (`binds[1].target` → `--bind #2 target`). */
function renameOptions(text: string): string {
  const names = Object.keys(OPTION_FLAGS)
    .filter((k) => !OPTION_FLAGS[k]!.keepWord)
    .sort((a, b) => b.length - a.length);
  const re = new RegExp(`(?<![-\\w./])(${names.join('|')})(?:\\[(\\d+)\\])?(?:\\.(\\w+))?(?!\\w)`, 'g');
  return text.replace(
    re,
    (m: string, name: string, index: string | undefined, field: string | undefined, at: number) => {
      if (OPTION_FLAGS[name]!.plainWord && at !== 0 && index === undefined) return m;
      let s = OPTION_FLAGS[name]!.flag;
      if (index !== undefined) s += ` #${Number(index) + 1}`;
      if (field !== undefined) s += ` ${field}`;
      return s;
    },
  );
}

/** The library's range messages (limits.ts, options.ts), said as the CLI says them. */
function rangeMessage(message: string, f: Flag): string | null {
  const atLeast = /^\S+ must be (?:an integer|a number) >= (\S+), got (\S+)$/.exec(message);
  if (atLeast)
    return `${f.flag} must be at least ${human(atLeast[1]!, f.unit)}, got ${human(atLeast[2]!, f.unit)}`;
  const range = /^\S+ must be an integer from (\d+) to (\d+), got (\S+)$/.exec(message);
  if (range) {
    const [, min, max, got] = range as unknown as [string, string, string, string];
    return Number(max) >= Number.MAX_SAFE_INTEGER
      ? `${f.flag} must be at least ${human(min, f.unit)}, got ${human(got, f.unit)}`
      : `${f.flag} must be from ${human(min, f.unit)} to ${human(max, f.unit)}, got ${human(got, f.unit)}`;
  }
  return null;
}

/** Numbers about a sized or timed option, in its unit: after the flag, "got", "limit", "from", ... */
function humanNumbers(text: string, f: Flag): string {
  if (f.unit === undefined) return text;
  const flag = f.flag.replace(/[-]/g, '\\-');
  const re = new RegExp(
    `((?:${flag}|\\bgot|\\blimit|\\bfrom|\\bto|>=|<=|\\bthan|\\bleast|\\bmost|\\bof) )(\\d+)(?![\\d.\\w])`,
    'g',
  );
  return text.replace(re, (_m, before: string, n: string) => before + human(n, f.unit));
}

function onlineCpus(): string | null {
  try {
    return readFileSync('/sys/devices/system/cpu/online', 'utf8').trim();
  } catch {
    return null;
  }
}

export interface MessageContext {
  /** ROOTFS as given, for hints. */
  rootfs?: string;
}

/** The one line the CLI prints for a capsule error (without the "capsule: " prefix). */
export function cliMessage(e: unknown, ctx: MessageContext = {}): string {
  if (!CapsuleError.is(e)) return String((e as Error)?.message ?? e);
  let message = e.message;
  const option = e instanceof ConfigError ? e.option : undefined;
  const f = entry(option);

  if (e instanceof SetupError && e.step === 'change_dir' && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) {
    const where = ctx.rootfs ? `${ctx.rootfs.replace(/\/+$/, '')}${e.path}` : `ROOTFS${e.path}`;
    return (
      `--cwd ${e.path}: no such directory in the sandbox (chdir: ${e.code}): ` +
      `create it in the rootfs (mkdir -p ${where}), or bind a host directory there with --bind`
    );
  }
  const range = f ? rangeMessage(message, f) : null;
  message = range ?? renameOptions(message);
  if (f && !range) message = humanNumbers(message, f);
  /* The CLI's own stdin is what 'inherit' stands for. */
  message = message.replace(/\b(stdin|stdout|stderr): 'inherit'/g, '$1');

  const cpuset = option === 'cpusetCpus' || (e as { controller?: unknown }).controller === 'cpuset';
  if (cpuset) {
    const online = onlineCpus();
    if (!message.startsWith('--cpuset')) message = `--cpuset: ${message}`;
    if (online) message += `; this machine's CPUs are ${online} (--cpuset takes a list such as 0 or 0-1)`;
  }
  return message;
}
