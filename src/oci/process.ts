/**
 * An OCI `process` object (runtime-spec config.md "Process") for `exec`: from `--process
 * FILE` (what containerd writes) or from exec's flags over the container's own process.
 * Only what exec needs: the container's namespaces, mounts and cgroup are joined as they are.
 */
import { CapsuleError } from '../errors.js';
import type { NativeOci } from '../native.js';
import { capabilityNumber } from './caps.js';

/** RLIMIT_* numbers (getrlimit(2), asm-generic/resource.h: the same on x86_64 and aarch64); config.json's and exec's names. */
export const RLIMITS: Record<string, number> = {
  RLIMIT_CPU: 0,
  RLIMIT_FSIZE: 1,
  RLIMIT_DATA: 2,
  RLIMIT_STACK: 3,
  RLIMIT_CORE: 4,
  RLIMIT_RSS: 5,
  RLIMIT_NPROC: 6,
  RLIMIT_NOFILE: 7,
  RLIMIT_MEMLOCK: 8,
  RLIMIT_AS: 9,
  RLIMIT_LOCKS: 10,
  RLIMIT_SIGPENDING: 11,
  RLIMIT_MSGQUEUE: 12,
  RLIMIT_NICE: 13,
  RLIMIT_RTPRIO: 14,
  RLIMIT_RTTIME: 15,
};

/** A capability as exec's --cap and --process name it: `CAP_KILL`, or `kill` as runc's --cap also takes. */
export function execCapability(name: string, field: string): number {
  const upper = name.toUpperCase();
  const n = capabilityNumber(upper.startsWith('CAP_') ? upper : `CAP_${upper}`);
  if (n === undefined) throw new CapsuleError(`${field}: unknown capability ${JSON.stringify(name)}`);
  return n;
}

/** What exec runs, in the addon's terms. */
export interface ExecProcess {
  args: string[];
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  additionalGids: number[];
  umask: number;
  terminal: boolean;
  consoleSize?: { height: number; width: number };
  capabilities: NativeOci['capabilities'];
  noNewPrivileges: boolean;
  rlimits: { resource: number; soft: number; hard: number }[];
}

type Json = Record<string, unknown>;

function caps(list: unknown, field: string): number[] {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw new CapsuleError(`${field} must be an array of capability names`);
  return list.map((c) => execCapability(String(c), field));
}

/** A runtime-spec process object (exec --process FILE) read into an ExecProcess; `where` names it in errors. */
export function parseProcess(p: unknown, where: string): ExecProcess {
  if (typeof p !== 'object' || p === null) throw new CapsuleError(`${where}: a process object is expected`);
  const o = p as Json;
  const args = o.args;
  if (!Array.isArray(args) || args.length === 0 || !args.every((a) => typeof a === 'string')) {
    throw new CapsuleError(`${where}: process.args must be a non-empty array of strings`);
  }
  for (const unsupported of [
    'apparmorProfile',
    'selinuxLabel',
    'ioPriority',
    'scheduler',
    'execCPUAffinity',
  ]) {
    if (o[unsupported] !== undefined && o[unsupported] !== '') {
      throw new CapsuleError(`${where}: process.${unsupported} is not supported by capsule`);
    }
  }
  const user = (o.user ?? {}) as Json;
  const c = (o.capabilities ?? {}) as Json;
  const size = o.consoleSize as { height?: number; width?: number } | undefined;
  const rl = (o.rlimits ?? []) as { type: string; soft: number; hard: number }[];
  return {
    args: args as string[],
    env: Array.isArray(o.env) ? (o.env as string[]) : [],
    cwd: typeof o.cwd === 'string' && o.cwd !== '' ? o.cwd : '/',
    uid: Number(user.uid ?? 0),
    gid: Number(user.gid ?? 0),
    additionalGids: Array.isArray(user.additionalGids) ? (user.additionalGids as number[]).map(Number) : [],
    umask: user.umask === undefined ? -1 : Number(user.umask),
    terminal: o.terminal === true,
    ...(size && size.height !== undefined && size.width !== undefined
      ? { consoleSize: { height: size.height, width: size.width } }
      : {}),
    capabilities: {
      bounding: caps(c.bounding, `${where}: process.capabilities.bounding`),
      effective: caps(c.effective, `${where}: process.capabilities.effective`),
      permitted: caps(c.permitted, `${where}: process.capabilities.permitted`),
      inheritable: caps(c.inheritable, `${where}: process.capabilities.inheritable`),
      ambient: caps(c.ambient, `${where}: process.capabilities.ambient`),
    },
    noNewPrivileges: o.noNewPrivileges === true,
    rlimits: rl.map((r) => {
      const resource = RLIMITS[String(r.type).toUpperCase()];
      if (resource === undefined)
        throw new CapsuleError(`${where}: process.rlimits: unknown type ${JSON.stringify(r.type)}`);
      return { resource, soft: Number(r.soft), hard: Number(r.hard) };
    }),
  };
}

/** exec's flags, runc's names: over the container's own process (its env, caps, user). */
export interface ExecFlags {
  cwd?: string;
  env?: string[];
  user?: string;
  additionalGids?: number[];
  cap?: string[];
  noNewPrivs?: boolean;
  tty?: boolean;
}

export function processFromFlags(base: ExecProcess, args: string[], f: ExecFlags): ExecProcess {
  if (args.length === 0) throw new CapsuleError('exec needs a command (or --process FILE)');
  const p: ExecProcess = { ...base, args, terminal: f.tty === true, capabilities: { ...base.capabilities } };
  delete p.consoleSize;
  if (f.cwd) p.cwd = f.cwd;
  if (f.env?.length) {
    const keys = new Set(f.env.map((e) => e.split('=')[0]));
    p.env = [...base.env.filter((e) => !keys.has(e.split('=')[0])), ...f.env];
  }
  if (f.user) {
    const m = /^(\d+)(?::(\d+))?$/.exec(f.user);
    if (!m) throw new CapsuleError(`--user ${JSON.stringify(f.user)}: give UID[:GID] as numbers`);
    p.uid = Number(m[1]);
    p.gid = m[2] === undefined ? p.gid : Number(m[2]);
  }
  if (f.additionalGids?.length) p.additionalGids = f.additionalGids;
  for (const name of f.cap ?? []) {
    const n = execCapability(name, '--cap');
    for (const set of ['bounding', 'effective', 'permitted', 'inheritable'] as const) {
      if (!p.capabilities[set].includes(n)) p.capabilities[set] = [...p.capabilities[set], n];
    }
  }
  if (f.noNewPrivs) p.noNewPrivileges = true;
  return p;
}
