/**
 * run()'s options: their types, defaults and validation. Everything here runs
 * before clone, so bad input is one clear ConfigError and nothing starts.
 */
import { fstatSync, lstatSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { constants as bufferConstants } from 'node:buffer';
import { isAbsolute, normalize } from 'node:path';

import { ConfigError } from './errors.js';
import type { NativeOptions } from './native.js';
import { type LimitOptions, type Limits, resolveLimits } from './limits.js';
import { resolveSeccomp } from './seccomp/index.js';
import { DEFAULT_HOST_ID_RANGE, type HostIdRange } from './ids.js';
import {
  resolveTerminal,
  type ResolvedTerminal,
  type SandboxTerminal,
  type TerminalOption,
} from './terminal.js';
import { type DeviceOptions, type NvidiaGpu, type ResolvedDevice, resolveDevices } from './devices/index.js';

/** Where one of the program's standard streams comes from or goes to. */
export type StdioOption =
  /** Captured (stdout, stderr) or fed from `stdin`'s string/Buffer. */
  | 'pipe'
  /**
   * The caller's own descriptor (what the CLI uses). A pipe, FIFO or terminal is reopened
   * for the program, so it is blocking whatever Node did with the caller's; a socket is
   * passed as it is (src/stdio.ts). Never a directory or an O_PATH descriptor.
   */
  | 'inherit'
  /** /dev/null. */
  | 'ignore'
  /** A descriptor the caller opened, checked and reopened as 'inherit' is; capsule does not close it. */
  | number;

export interface BindMount {
  /** Host path (file or directory). */
  source: string;
  /**
   * Absolute path inside the sandbox. When the rootfs lacks it, capsule makes it (a
   * directory, or an empty file for a file) in an overlay of the rootfs, never in the host
   * directory (see {@link RunOptions.overlay}); no component of it may be a symlink.
   */
  target: string;
  /** @default true */
  readOnly?: boolean;
}

export interface RunOptions extends LimitOptions, DeviceOptions {
  /** Directory to use as the sandbox's root. Mount points /proc, /dev and /tmp must exist in it. */
  rootfs: string;
  /** The program and its arguments; `argv[0]` is an absolute path inside the rootfs (no PATH search). */
  argv: readonly string[];
  /**
   * The program's whole environment: the host's is never passed.
   * @default { PATH: '/usr/local/bin:/usr/bin:/bin' }
   */
  env?: Readonly<Record<string, string>>;
  /** Working directory inside the sandbox, absolute. @default '/' */
  cwd?: string;
  /** Hostname in the sandbox's UTS namespace. @default 'capsule' */
  hostname?: string;
  /** User id inside the sandbox. @default 65534 (nobody) */
  uid?: number;
  /** Group id inside the sandbox. @default 65534 (nogroup) */
  gid?: number;
  /**
   * Which host user and group the sandbox is, which is whom the kernel charges its
   * per-user limits to (inotify instances, pending signals, message-queue bytes,
   * RLIMIT_NPROC). `'unique'`: each concurrent sandbox leases a host uid and gid of its
   * own from `hostIdRange` for the run, in a user namespace that maps `uid`/`gid` (and
   * nothing else) to it; the program still sees `uid`/`gid`. Host files of any other
   * owner show as nobody (65534) inside, and a writable bind or `writableRoot` must be
   * writable by the leased id (world-writable, say): even `uid: 0` is no host root.
   * `'shared'`: every sandbox is `uid`/`gid` on the host itself, as before capsule had
   * this option: concurrent sandboxes share those limits, and `uid: 0` owns host root's
   * files. See docs/security.md. @default 'unique'
   */
  hostIds?: 'unique' | 'shared';
  /**
   * The host ids `hostIds: 'unique'` leases from: `count` ids from `first`, each used as
   * a uid and as a gid. Reserve them for capsule: no user, file owner, subordinate-id
   * range or other container tool may use them.
   * @default { first: 1879048192 (0x70000000), count: 65536 }
   */
  hostIdRange?: HostIdRange;
  /**
   * Leave the rootfs writable (it is the host directory itself: writes persist). Not with
   * `overlay`; and capsule makes no missing mount point in the host directory, so with it
   * every mount point must exist in the rootfs. @default false
   */
  writableRoot?: boolean;
  /**
   * Make the whole root writable for this run only: the rootfs becomes the lower layer of
   * an overlay (overlayfs(5)) whose upper layer is a fresh tmpfs, so writes land in memory
   * and are thrown away when the sandbox ends; the host directory is never modified. The
   * rootfs's own permissions still apply: the program writes where its uid may (a file
   * owned by root stays root's). The tmpfs is capped at `overlaySizeBytes` and its pages
   * are charged to the sandbox's memory cgroup, so writes count against
   * `memoryLimitBytes`. Not with `writableRoot`. Without this option capsule still puts
   * the root in a small read-only overlay when a mount point (a bind's target, the box,
   * /proc, /dev, /tmp) is missing from the rootfs, to make it there. @default false
   */
  overlay?: boolean;
  /**
   * Size cap of the overlay's tmpfs, in bytes (with `overlay` only); inodes capped as
   * /tmp's. @default 67108864 (64 MiB)
   */
  overlaySizeBytes?: number;
  /**
   * A writable work directory at this absolute path, for this run only: a fresh tmpfs
   * owned by the sandbox's uid and gid (mode 0755), nosuid and nodev but not noexec (a
   * compile step writes its binary there and runs it), what isolate's `--init` box gives
   * judges. Made in an overlay when the rootfs lacks the path. Binds may target paths
   * inside it (their mount points are made in it). Not /, nor under /proc, /dev or /tmp.
   */
  box?: string;
  /** Size cap of the box, in bytes (with `box` only); inodes capped as /tmp's. @default 67108864 (64 MiB) */
  boxSizeBytes?: number;
  /**
   * Size cap of the private /tmp tmpfs, in bytes. Its inode cap follows from it: one inode
   * per 4 KiB, at least 1024 (docs/security.md). @default 67108864 (64 MiB)
   */
  tmpSizeBytes?: number;
  /** Mount /tmp noexec: nothing written there can be run (a judge that compiles into /tmp needs it off). @default false */
  tmpNoexec?: boolean;
  /**
   * Mount sysfs at /sys, read-only, with /sys/firmware and /sys/devices/virtual/powercap
   * masked. It is the host's device tree, so it is off unless asked. The rootfs needs a
   * /sys directory. @default false
   */
  sys?: boolean;
  /** Mount a private devpts at /dev/pts (for programs that open terminals). @default false */
  devPts?: boolean;
  /** Mount a private tmpfs at /dev/shm (POSIX shared memory, NCCL), noexec as Docker's. @default false */
  devShm?: boolean;
  /** Size cap of /dev/shm, in bytes; inodes capped as /tmp's. @default 67108864 (64 MiB) */
  devShmSizeBytes?: number;
  /** Extra host paths to bind into the sandbox. */
  binds?: readonly BindMount[];
  /**
   * The program's standard input: a string or Buffer to feed it, `{ file }` to read a host
   * file (opened by capsule, read by the program directly: nothing is copied through Node),
   * or a stdio choice.
   * @default 'ignore' (/dev/null)
   */
  stdin?: string | Uint8Array | { file: string } | StdioOption;
  /** @default 'pipe' (captured into the result) */
  stdout?: StdioOption;
  /** @default 'pipe' (captured into the result) */
  stderr?: StdioOption;
  /** `'buffer'` returns stdout/stderr as Buffers instead of UTF-8 strings. @default 'utf8' */
  encoding?: 'utf8' | 'buffer';
  /**
   * A pseudo-terminal of the program's own (`capsule run -t`), from a private devpts
   * (implies `devPts`): its stdin, stdout and stderr are the pty, and it leads a session
   * with that pty as controlling terminal, in the foreground, so job control, ^C and ^Z
   * work inside. `{ rows, cols }` sets the first window size. What it writes is the
   * result's `stdout` (and `onOutput('stdout', ...)`), `stderr` stays empty; `stdin` may be
   * a string or Buffer typed in at the start; the handle `onSpawn` receives has
   * `terminal.input` (a Writable, with back-pressure) and `terminal.resize()`. `stdout` and
   * `stderr` must be left as 'pipe'. See src/terminal.ts. @default false
   */
  terminal?: TerminalOption;
  /**
   * Aborting ends the run at any moment. Before the sandbox is cloned (an abort right
   * after the call, or a signal already aborted), run() rejects with the signal's reason
   * (an `AbortError` by default) and nothing is started. Once the clone is under way, the
   * sandbox is killed and run() resolves with `aborted: true` (verdict SIGNALED,
   * mechanism `aborted`) after it was reaped.
   */
  signal?: AbortSignal;
  /**
   * Called once the sandbox is running, with a handle to signal it: `kill('SIGTERM')`
   * reaches the program through capsule-init (which forwards SIGTERM, SIGINT, SIGHUP,
   * SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH); SIGKILL ends the whole sandbox at once. The
   * handle reaches this run's sandbox only (through its pidfd): once the run has ended,
   * `kill` does nothing and returns false, even if the PID now belongs to another process.
   * If the callback throws, the sandbox is killed and run() rejects with that error once
   * the sandbox is gone (the same for `onOutput`).
   */
  onSpawn?: (sandbox: Sandbox) => void;
  /**
   * Called with each chunk of captured output as it arrives (within outputLimitBytes),
   * for streaming it somewhere while it is also kept for the result. Returning `false`
   * says the destination is gone (its reader exited): that stream's pipe is closed, so the
   * program's next write to it fails with EPIPE (SIGPIPE), as in a shell pipeline.
   * Returning a promise pauses reading that stream until it settles (backpressure: the
   * program blocks on its full pipe), and stops it if it resolves to `false`.
   */
  onOutput?: (stream: 'stdout' | 'stderr', chunk: Buffer) => boolean | void | Promise<boolean | void>;
  /**
   * Put the sandbox in a cgroup of its own even when no cgroup limit is asked, for exact
   * CPU time and peak memory of the whole sandbox. Skipped quietly where cgroups are not
   * usable; a cgroup limit (memory, pids, cpus, cpuset, CPU time) still needs them.
   * @default true
   */
  cgroups?: boolean;
  /** The cgroup, under each hierarchy's root, that capsule's own cgroups live in. @default 'capsule' */
  cgroupParent?: string;
  /**
   * Record every step of the sandbox's construction with its arguments and its time, in
   * the result's `explain` (and a SetupError's). Costs a clock read per step when asked,
   * nothing when not. @default false
   */
  explain?: boolean;
  /**
   * The seccomp profile, loaded last before the program's execve (docs/security.md):
   * `'default'` denies what Docker's default profile withholds (mount, unshare, ptrace,
   * bpf, io_uring, keyctl, ...) with EPERM; `'default-kill'` ends the run on those
   * instead, with verdict SECURITY_VIOLATION; `'strict'` allows only what submissions
   * need (C, C++, Python, Go, Java, JavaScript, Rust: threads but no new process) and
   * ends the run with SECURITY_VIOLATION on anything else; `'compile'` is
   * `'default-kill'` with sockets of AF_UNIX only, for compilers (docs/judges.md);
   * `'none'` loads no filter. Calls from another ABI (int 0x80, x32) always end the run.
   * @default 'default'
   */
  seccomp?: 'default' | 'default-kill' | 'strict' | 'compile' | 'none';
  /**
   * Path of a seccomp profile in the OCI/Docker JSON format (`defaultAction`, `syscalls`
   * with `names`, `action`, `args`), used instead of a built-in one. Kill actions end the
   * run with SECURITY_VIOLATION. Compiled once per process and cached.
   */
  seccompProfile?: string;
}

/** A running sandbox, as handed to `onSpawn`. */
export interface Sandbox {
  /** Host PID of the sandbox's PID 1 (capsule-init). */
  readonly pid: number;
  /** Send a signal through this run's pidfd; false once the run's sandbox was reaped. */
  kill(signal: NodeJS.Signals): boolean;
  /** With the `terminal` option: what is typed into the program's terminal, and its window size. */
  readonly terminal?: SandboxTerminal;
}

/** The device nodes every sandbox gets, at the same path and with the same numbers and modes as the host's. */
export const DEFAULT_DEV_NODES = [
  '/dev/null',
  '/dev/zero',
  '/dev/full',
  '/dev/random',
  '/dev/urandom',
  '/dev/tty',
];

/** A character device to create in the sandbox's /dev with mknod(2). */
export interface DevNode {
  path: string;
  major: number;
  minor: number;
  /** Permission bits. */
  mode: number;
}

/** glibc's dev_t encoding (gnu_dev_major/gnu_dev_minor in <sys/sysmacros.h>). */
export function splitDev(rdev: bigint): { major: number; minor: number } {
  return {
    major: Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn)),
    minor: Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn)),
  };
}

let defaultNodes: DevNode[] | undefined;
/** The host's default nodes, read once; a node the host lacks (no /dev/tty in some containers) is left out. */
function defaultDevNodes(): DevNode[] {
  if (defaultNodes) return defaultNodes;
  defaultNodes = [];
  for (const path of DEFAULT_DEV_NODES) {
    let st;
    try {
      st = statSync(path, { bigint: true });
    } catch {
      continue;
    }
    if (st.isCharacterDevice())
      defaultNodes.push({ path, ...splitDev(st.rdev), mode: Number(st.mode & 0o777n) });
  }
  return defaultNodes;
}

export const DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin';
const MiB = 1024 * 1024;

/**
 * Bytes of stdout and of stderr each that run() keeps when outputLimitBytes is not given
 * (execa's maxBuffer is 100 MB): past it the run ends OUTPUT_LIMIT, so a program that
 * writes without end cannot grow Node's memory without end.
 */
export const DEFAULT_OUTPUT_LIMIT_BYTES = 100 * MiB;

/** Options after validation: every default filled, every path resolved. */
/** The fields the addon takes as they are (src/run.ts nativeOptions copies them). */
type SandboxFields =
  | 'rootfs'
  | 'env'
  | 'cwd'
  | 'hostname'
  | 'uid'
  | 'gid'
  | 'writableRoot'
  | 'tmpSizeBytes'
  | 'devPts'
  | 'devShm'
  | 'tmpNoexec'
  | 'sys'
  | 'devShmSizeBytes'
  | 'devNodes'
  | 'binds'
  | 'seccompFd';

/** A mount point the rootfs lacks, for capsule to make (parents first). */
export interface MountPoint {
  path: string;
  dir: boolean;
}

export interface ResolvedOptions extends Pick<NativeOptions, SandboxFields> {
  overlay: boolean;
  overlaySizeBytes: number;
  /** '' for none. */
  box: string;
  boxSizeBytes: number;
  mountPoints: MountPoint[];
  hostIds: 'unique' | 'shared';
  hostIdRange: HostIdRange;
  /** As the caller wrote it, for messages. */
  rootfsArg: string;
  /** The program and its arguments (the addon's argv adds capsule-init in front). */
  argv: string[];
  /** Host devices given with `devices` and `gpus`, made after devNodes. */
  devices: ResolvedDevice[];
  /** The GPUs given, in index order ([] without `gpus`). */
  gpus: NvidiaGpu[];
  stdin: string | Uint8Array | { file: string } | StdioOption;
  stdout: StdioOption;
  stderr: StdioOption;
  encoding: 'utf8' | 'buffer';
  /** A terminal of the program's own, with its first window size (0 x 0: unset); null: none. */
  terminal: ResolvedTerminal | null;
  limits: Limits;
  cgroups: boolean;
  cgroupParent: string;
  explain: boolean;
}

function fail(option: string, message: string): never {
  throw new ConfigError(message, option);
}

function checkInteger(option: string, value: number | undefined, fallback: number, min: number, max: number) {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    fail(option, `${option} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

function checkStdio(option: string, value: unknown, fallback: StdioOption): StdioOption {
  if (value === undefined) return fallback;
  if (value === 'pipe' || value === 'inherit' || value === 'ignore') return value;
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0) {
    try {
      fstatSync(value);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'an error';
      fail(
        option,
        `${option}: ${value} is not an open descriptor (fstat: ${code}): pass a descriptor this process has open`,
      );
    }
    return value;
  }
  return fail(
    option,
    `${option} must be 'pipe', 'inherit', 'ignore' or a file descriptor, got ${String(value)}`,
  );
}

/** An absolute, normalized path inside the sandbox, without `..`. */
function sandboxPath(option: string, value: string): string {
  if (typeof value !== 'string' || !isAbsolute(value)) {
    fail(option, `${option} must be an absolute path inside the sandbox, got ${JSON.stringify(value)}`);
  }
  if (value.split('/').includes('..')) fail(option, `${option} must not contain '..': ${value}`);
  /* The kernel reads C strings: "/tmp\0x" would silently become "/tmp". */
  if (value.includes('\0'))
    fail(option, `${option} must not contain a NUL byte, got ${JSON.stringify(value)}`);
  const clean = normalize(value);
  return clean.length > 1 ? clean.replace(/\/$/, '') : clean;
}

/**
 * A mount point inside the rootfs: no component of its path may be a symlink (a link could
 * point the mount anywhere, and the addon refuses one on the way anyway: openat2 with
 * RESOLVE_NO_SYMLINKS, native/mounts.cc), so it is refused here first, with the option's
 * name. The components the rootfs lacks are returned, for capsule to make in an overlay
 * of the root (make_mount_point); with `writableRoot` the root is the host directory
 * itself, which capsule never writes into, so a missing one is an error. This check is
 * for the message and the plan only: the addon looks each path up again, once, by
 * descriptor, and that lookup is the one that counts (a name swapped after this check
 * fails the run there).
 */
function checkMountPoint(
  ctx: { rootfs: string; rootfsArg: string; writableRoot: boolean },
  inside: string,
  kind: 'dir' | 'file',
  why: string,
  option = 'rootfs',
): MountPoint[] {
  const { rootfs, rootfsArg } = ctx;
  const parts = inside.split('/').filter(Boolean);
  let st;
  for (let i = 1; i <= parts.length; i++) {
    const prefix = '/' + parts.slice(0, i).join('/');
    try {
      st = lstatSync(rootfs + prefix);
    } catch {
      if (ctx.writableRoot) {
        const make = kind === 'dir' ? `mkdir -p ${rootfsArg}${inside}` : `touch ${rootfsArg}${inside}`;
        fail(
          option,
          `${rootfsArg} has no ${inside} (${why}), and with writableRoot capsule makes no mount point ` +
            `in the host directory: ${make}, or leave writableRoot off (capsule then makes it in a tmpfs layered over the rootfs)`,
        );
      }
      return parts.slice(i - 1).map((_, j) => ({
        path: '/' + parts.slice(0, i + j).join('/'),
        dir: i + j < parts.length || kind === 'dir',
      }));
    }
    if (st.isSymbolicLink())
      fail(
        option,
        `${rootfsArg}${prefix} is a symlink; ${why} needs a real ${kind === 'dir' ? 'directory' : 'file'} at ${inside}, with no symlink on the way`,
      );
    if (i < parts.length && !st.isDirectory())
      fail(option, `${rootfsArg}${prefix} is not a directory, so ${inside} cannot be made under it (${why})`);
  }
  if (kind === 'dir' && !st?.isDirectory()) fail(option, `${rootfsArg}${inside} is not a directory (${why})`);
  if (kind === 'file' && st?.isDirectory())
    fail(option, `${rootfsArg}${inside} is a directory; a file is bound onto it (${why})`);
  return [];
}

/** `inside` is `dir` or lies under it. */
function under(inside: string, dir: string): boolean {
  return inside === dir || inside.startsWith(dir + '/');
}

/**
 * Every option run() takes. Checked by the compiler against RunOptions both ways, so an
 * option added there must be added here; a key not in it is a ConfigError, not ignored
 * (`cpuTimeLimit: 100` without its unit would otherwise run with no limit at all).
 */
const KNOWN_OPTIONS = {
  rootfs: true,
  argv: true,
  env: true,
  cwd: true,
  hostname: true,
  uid: true,
  gid: true,
  writableRoot: true,
  overlay: true,
  overlaySizeBytes: true,
  box: true,
  boxSizeBytes: true,
  tmpSizeBytes: true,
  tmpNoexec: true,
  sys: true,
  devPts: true,
  devShm: true,
  devShmSizeBytes: true,
  binds: true,
  stdin: true,
  stdout: true,
  stderr: true,
  encoding: true,
  terminal: true,
  signal: true,
  onSpawn: true,
  onOutput: true,
  cgroups: true,
  cgroupParent: true,
  explain: true,
  seccomp: true,
  seccompProfile: true,
  cpuTimeLimitMs: true,
  wallTimeLimitMs: true,
  memoryLimitBytes: true,
  pidsLimit: true,
  outputLimitBytes: true,
  cpus: true,
  cpusetCpus: true,
  fileSizeLimitBytes: true,
  openFilesLimit: true,
  stackLimitBytes: true,
  devices: true,
  gpus: true,
  gpuLibraries: true,
  gpuDiscovery: true,
  cdiDevices: true,
  cdiSpecDirs: true,
  hostIds: true,
  hostIdRange: true,
} as const satisfies Record<keyof RunOptions, true>;

/** Levenshtein distance, case-insensitive: how far a misspelt option is from a known one. */
function distance(a: string, b: string): number {
  a = a.toLowerCase();
  b = b.toLowerCase();
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}

function checkKnownKeys(o: object): void {
  for (const key of Object.keys(o)) {
    if (Object.hasOwn(KNOWN_OPTIONS, key)) continue;
    let best = '';
    let bestDistance = Infinity;
    for (const known of Object.keys(KNOWN_OPTIONS)) {
      const d = known.toLowerCase().startsWith(key.toLowerCase()) ? 1 : distance(key, known);
      if (d < bestDistance) [best, bestDistance] = [known, d];
    }
    /* A suggestion only when it is close: a third of the name at most. */
    const hint = bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? `: did you mean ${best}?` : '';
    fail(key, `unknown option ${key}${hint} (every option is listed in RunOptions, src/options.ts)`);
  }
}

/**
 * MAX_ARG_STRLEN (include/uapi/linux/binfmts.h): execve(2) refuses, with E2BIG, any single
 * argument or environment string longer than 32 pages, its NUL included.
 */
const MAX_ARG_STRLEN = 32 * 4096;

function checkExecString(option: string, what: string, value: string): void {
  const bytes = Buffer.byteLength(value) + 1;
  if (bytes > MAX_ARG_STRLEN) {
    fail(
      option,
      `${what} is ${bytes - 1} bytes; execve(2) takes at most ${MAX_ARG_STRLEN - 1} bytes per argument or ` +
        `environment string (MAX_ARG_STRLEN, 128 KiB with its NUL): pass large data through stdin or a bind-mounted file`,
    );
  }
}

/**
 * The kernel's PID_MAX_LIMIT on 64-bit (include/linux/threads.h): pids.max refuses more with
 * EINVAL. At least 2: capsule-init is PID 1 of the sandbox and the program is a second process.
 */
const PIDS_MAX = 4 * 1024 * 1024;

/** The CPUs the kernel has online, from /sys/devices/system/cpu/online ("0-1,4"); null if unreadable. */
function onlineCpus(): { list: string; ids: Set<number> } | null {
  let list: string;
  try {
    list = readFileSync('/sys/devices/system/cpu/online', 'utf8').trim();
  } catch {
    return null;
  }
  const ids = new Set<number>();
  for (const part of list.split(',')) {
    const [a, b] = part.split('-').map(Number);
    for (let i = a!; i <= (b ?? a!); i++) ids.add(i);
  }
  return { list, ids };
}

/** Limits that are well-formed but that this kernel or machine cannot honour. */
function checkLimitsFit(l: Limits): void {
  if (l.pidsLimit !== null && (l.pidsLimit < 2 || l.pidsLimit > PIDS_MAX)) {
    fail(
      'pidsLimit',
      `pidsLimit must be an integer from 2 to ${PIDS_MAX} (the kernel's PID_MAX_LIMIT), got ${l.pidsLimit}: ` +
        'capsule-init and the program are two processes of the sandbox already',
    );
  }
  if (l.cpus === null && l.cpusetCpus === null) return;
  const online = onlineCpus();
  if (online === null) return;
  if (l.cpus !== null && l.cpus > online.ids.size) {
    fail(
      'cpus',
      `cpus must be from 0.01 to ${online.ids.size} (the CPUs this machine has online: ${online.list}), got ${l.cpus}`,
    );
  }
  if (l.cpusetCpus !== null) {
    for (const part of l.cpusetCpus.split(',')) {
      const [a, b] = part.split('-').map(Number);
      if (b !== undefined && b < a!)
        fail('cpusetCpus', `cpusetCpus range ${part} runs backwards: write it low-high`);
      for (let i = a!; i <= (b ?? a!); i++) {
        if (!online.ids.has(i)) {
          fail(
            'cpusetCpus',
            `cpusetCpus names CPU ${i}, which this machine does not have online: choose from ${online.list}`,
          );
        }
      }
    }
  }
}

export function resolveOptions(o: RunOptions): ResolvedOptions {
  if (typeof o !== 'object' || o === null) fail('options', 'run() takes an options object');
  checkKnownKeys(o);
  if (typeof o.rootfs !== 'string' || o.rootfs === '')
    fail('rootfs', 'rootfs is required: the directory to run in');
  let rootfs: string;
  try {
    rootfs = realpathSync(o.rootfs);
  } catch {
    fail('rootfs', `rootfs ${o.rootfs} does not exist`);
  }
  if (!statSync(rootfs).isDirectory()) fail('rootfs', `rootfs ${o.rootfs} is not a directory`);
  if (rootfs === '/')
    fail('rootfs', "rootfs cannot be / itself: give a directory that holds the sandbox's files");

  if (!Array.isArray(o.argv) || o.argv.length === 0) fail('argv', 'argv must name the program to run');
  o.argv.forEach((a: unknown, i) => {
    if (typeof a !== 'string' || a.includes('\0')) fail('argv', 'argv must be strings without NUL bytes');
    checkExecString(
      `argv[${i}]`,
      i === 0 ? 'argv[0]' : `argv[${i}] (an argument of ${String(o.argv[0])})`,
      a,
    );
  });
  const program = o.argv[0]!;
  if (!isAbsolute(program)) {
    fail(
      'argv',
      `the program path must be absolute inside the rootfs (no PATH search), got ${JSON.stringify(program)}: try /bin/${program}`,
    );
  }

  const envRecord = o.env ?? { PATH: DEFAULT_PATH };
  const env: string[] = [];
  for (const [k, v] of Object.entries(envRecord)) {
    if (k === '' || k.includes('=') || k.includes('\0') || typeof v !== 'string' || v.includes('\0')) {
      fail(
        'env',
        `env entry ${JSON.stringify(k)} is not a valid variable (no '=' or NUL in names, string values)`,
      );
    }
    checkExecString('env', `env ${k} (for ${o.argv[0]})`, `${k}=${v}`);
    env.push(`${k}=${v}`);
  }

  const hostname = o.hostname ?? 'capsule';
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]{0,62})$/.test(hostname)) {
    fail('hostname', `hostname must be 1-64 letters, digits, '.' or '-', got ${JSON.stringify(hostname)}`);
  }

  const rootfsArg = o.rootfs;
  const writableRoot = o.writableRoot === true;
  const overlay = o.overlay === true;
  if (o.overlay !== undefined && typeof o.overlay !== 'boolean')
    fail('overlay', `overlay must be true or false, got ${JSON.stringify(o.overlay)}`);
  if (overlay && writableRoot) {
    fail(
      'overlay',
      'overlay and writableRoot cannot be used together: writableRoot writes into the host directory, ' +
        'overlay keeps every write in a tmpfs thrown away at the end: choose one',
    );
  }
  if (o.overlaySizeBytes !== undefined && !overlay)
    fail('overlaySizeBytes', 'overlaySizeBytes is the size cap of the overlay: set overlay: true as well');
  if (o.boxSizeBytes !== undefined && o.box === undefined)
    fail('boxSizeBytes', "boxSizeBytes is box's size cap: set box too");
  const ctx = { rootfs, rootfsArg, writableRoot };
  const mountPoints: MountPoint[] = [
    ...checkMountPoint(ctx, '/proc', 'dir', "the sandbox's /proc is mounted there"),
    ...checkMountPoint(ctx, '/dev', 'dir', "the sandbox's /dev is mounted there"),
    ...checkMountPoint(ctx, '/tmp', 'dir', "the sandbox's /tmp is mounted there"),
  ];
  if (o.sys === true)
    mountPoints.push(...checkMountPoint(ctx, '/sys', 'dir', 'sysfs is mounted there (sys: true)'));
  let box = '';
  if (o.box !== undefined) {
    box = sandboxPath('box', o.box);
    if (['/', '/proc', '/dev', '/tmp'].some((d) => under(box, d)))
      fail('box', `box cannot be ${box}: not /, nor under /proc, /dev or /tmp, which capsule mounts`);
    mountPoints.push(...checkMountPoint(ctx, box, 'dir', 'box is mounted there', 'box'));
  }

  const binds = (o.binds ?? []).map((b, i) => {
    const option = `binds[${i}]`;
    if (typeof b !== 'object' || b === null) fail(option, `${option} must be { source, target, readOnly? }`);
    let source: string;
    try {
      source = realpathSync(b.source);
    } catch {
      fail(option, `bind source ${b.source} does not exist on the host`);
    }
    const target = sandboxPath(`${option}.target`, b.target);
    if (['/', '/proc', '/dev', '/tmp'].includes(target))
      fail(option, `cannot bind over ${target}: capsule mounts it`);
    if (target === box) fail(option, `cannot bind over ${target}: box is mounted there`);
    const kind = statSync(source).isDirectory() ? 'dir' : 'file';
    if (box !== '' && under(target, box)) {
      /* The box is a fresh tmpfs: every component under it is made there, after mount_box. */
      const rest = target.slice(box.length + 1).split('/');
      mountPoints.push(
        ...rest.map((_, j) => ({
          path: `${box}/${rest.slice(0, j + 1).join('/')}`,
          dir: j < rest.length - 1 || kind === 'dir',
        })),
      );
    } else {
      mountPoints.push(
        ...checkMountPoint(ctx, target, kind, `bind mount of ${b.source}`, `${option}.target`),
      );
    }
    return { source, target, readOnly: b.readOnly ?? true, option };
  });

  const devices = resolveDevices(o, rootfs, rootfsArg);
  /* CDI's variables join the environment; one the caller set too is an error, not a silent override. */
  for (const e of devices.env) {
    const key = e.slice(0, e.indexOf('='));
    if (o.env !== undefined && key in o.env)
      fail('cdiDevices', `env ${key} is set both by the env option and by a CDI device (${e}): drop one`);
    const at = env.findIndex((v) => v.startsWith(`${key}=`));
    if (at >= 0) env.splice(at, 1); /* the default PATH gives way */
    env.push(e);
  }

  const stdin = o.stdin;
  let resolvedStdin: ResolvedOptions['stdin'];
  if (typeof stdin === 'string' || stdin instanceof Uint8Array) resolvedStdin = stdin;
  else if (typeof stdin === 'object' && stdin !== null) {
    const file = (stdin as { file?: unknown }).file;
    if (typeof file !== 'string') fail('stdin', 'stdin as an object must be { file: path }');
    /*
     * Only the name's shape here: the file is checked on the descriptor run() opens (src/stdio.ts),
     * since a name checked now and opened later can be swapped in between.
     */
    if (file === '' || file.includes('\0')) fail('stdin', 'stdin file must be a path without NUL bytes');
    resolvedStdin = { file };
  } else resolvedStdin = checkStdio('stdin', stdin, 'ignore');

  const terminal = resolveTerminal(o);
  const encoding = o.encoding ?? 'utf8';
  if (encoding !== 'utf8' && encoding !== 'buffer') fail('encoding', `encoding must be 'utf8' or 'buffer'`);

  const cgroupParent = o.cgroupParent ?? 'capsule';
  if (
    typeof cgroupParent !== 'string' ||
    !/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/.test(cgroupParent) ||
    cgroupParent.split('/').includes('..')
  ) {
    fail(
      'cgroupParent',
      `cgroupParent must be a relative cgroup path of letters, digits, '_', '.', '-' and '/', got ${JSON.stringify(cgroupParent)}`,
    );
  }
  for (const fn of ['onSpawn', 'onOutput'] as const) {
    if (o[fn] !== undefined && typeof o[fn] !== 'function') fail(fn, `${fn} must be a function`);
  }

  const limits = resolveLimits(o);
  checkLimitsFit(limits);
  limits.outputLimitBytes ??= DEFAULT_OUTPUT_LIMIT_BYTES;
  /*
   * What is kept must become a string (UTF-8 decodes to at most one UTF-16 unit per byte)
   * or a Buffer: past V8's longest string or Node's largest Buffer that would throw after
   * the program ran.
   */
  const longest = encoding === 'utf8' ? bufferConstants.MAX_STRING_LENGTH : bufferConstants.MAX_LENGTH;
  if (limits.outputLimitBytes > longest) {
    fail(
      'outputLimitBytes',
      `outputLimitBytes must be at most ${longest} with encoding '${encoding}' (the longest ` +
        `${encoding === 'utf8' ? "string V8 makes: use encoding 'buffer' for more" : 'Buffer Node makes'}), got ${limits.outputLimitBytes}`,
    );
  }

  return {
    rootfs,
    rootfsArg,
    argv: [...o.argv],
    env,
    cwd: sandboxPath('cwd', o.cwd ?? '/'),
    hostname,
    uid: checkInteger('uid', o.uid, 65534, 0, 2 ** 32 - 2),
    gid: checkInteger('gid', o.gid, 65534, 0, 2 ** 32 - 2),
    ...resolveHostIds(o),
    writableRoot,
    overlay,
    overlaySizeBytes: checkInteger(
      'overlaySizeBytes',
      o.overlaySizeBytes,
      64 * MiB,
      4096,
      Number.MAX_SAFE_INTEGER,
    ),
    box,
    boxSizeBytes: checkInteger('boxSizeBytes', o.boxSizeBytes, 64 * MiB, 4096, Number.MAX_SAFE_INTEGER),
    /* Two binds into the same missing directory ask for it twice: once is enough. */
    mountPoints: mountPoints.filter((m, i) => mountPoints.findIndex((n) => n.path === m.path) === i),
    tmpSizeBytes: checkInteger('tmpSizeBytes', o.tmpSizeBytes, 64 * MiB, 4096, Number.MAX_SAFE_INTEGER),
    /* A terminal is allocated from the private devpts (native/tty.cc). */
    devPts: o.devPts === true || terminal !== null,
    /* NCCL puts its buffers in /dev/shm between the processes of a multi-GPU job. */
    devShm: o.devShm === true || devices.gpus.length > 1,
    tmpNoexec: o.tmpNoexec === true,
    sys: o.sys === true,
    devShmSizeBytes: checkInteger(
      'devShmSizeBytes',
      o.devShmSizeBytes,
      64 * MiB,
      4096,
      Number.MAX_SAFE_INTEGER,
    ),
    devNodes: defaultDevNodes(),
    devices: devices.devices,
    gpus: devices.gpus,
    binds: [...binds, ...devices.binds],
    stdin: resolvedStdin,
    stdout: checkStdio('stdout', o.stdout, 'pipe'),
    stderr: checkStdio('stderr', o.stderr, 'pipe'),
    encoding,
    terminal,
    limits,
    cgroups: o.cgroups !== false,
    cgroupParent,
    explain: o.explain === true,
    seccompFd: resolveSeccomp(o.seccomp, o.seccompProfile)?.fd ?? -1,
  };
}

function resolveHostIds(o: RunOptions): { hostIds: 'unique' | 'shared'; hostIdRange: HostIdRange } {
  const hostIds = o.hostIds ?? 'unique';
  if (hostIds !== 'unique' && hostIds !== 'shared')
    fail('hostIds', `hostIds must be 'unique' or 'shared', got ${JSON.stringify(hostIds)}`);
  const r = o.hostIdRange ?? DEFAULT_HOST_ID_RANGE;
  if (typeof r !== 'object' || r === null) fail('hostIdRange', 'hostIdRange must be { first, count }');
  /* 0 is root and 2^32-1 is "no id" to the kernel: neither may be leased. */
  const first = checkInteger('hostIdRange.first', r.first, 0, 1, 2 ** 32 - 2);
  const count = checkInteger('hostIdRange.count', r.count, 0, 1, 2 ** 32 - 1 - first);
  return { hostIds, hostIdRange: { first, count } };
}
