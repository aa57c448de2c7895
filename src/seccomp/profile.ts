/**
 * Seccomp profiles in the OCI/Docker JSON format (the `linux.seccomp` object
 * of the OCI runtime spec, which runc, crun, podman and Docker read), and their
 * normalized form, which is what native/seccomp.cc compiles and what the
 * cache keys on. capsule's built-in profiles are written in the same format
 * (builtin.ts), so there is one code path.
 *
 * How capsule reads a profile, where it differs from runc:
 * - Only the native ABI is filtered (x86_64, or aarch64). `architectures` is
 *   checked but every other ABI (i386 through int 0x80, x32) is killed: the
 *   classic bypass of a filter that matches syscall numbers of one ABI.
 * - Every kill action (SCMP_ACT_KILL, _KILL_PROCESS, _KILL_THREAD) and
 *   SCMP_ACT_NOTIFY end the whole sandbox with a SECURITY_VIOLATION verdict
 *   naming the call (see verdict.ts for how that cannot be forged).
 * - Docker's own format (moby/profiles seccomp/default.json) is read as
 *   Docker reads it before handing runc the OCI form: `archMap` gives this
 *   machine's architecture and its sub-architectures (the other entries are
 *   not looked at), `includes`/`excludes` by architecture (Go's names,
 *   amd64 and arm64), capability and minimum kernel select rules, `null`
 *   stands for an empty list. The sandbox holds no capability, so a rule
 *   that `includes` capabilities never applies and one that `excludes` them
 *   always does: moby's evaluation with an empty capability set.
 * - Architectures the OCI runtime spec names but this machine is not
 *   (SCMP_ARCH_LOONGARCH64, which libseccomp 2.5.4 does not know) are
 *   accepted and ignored; a name the spec does not have is an error.
 * - As runc does, a call numbered above every call the profile names gets
 *   ENOSYS rather than a default action that refuses (the ENOSYS stub), so
 *   that a libc falls back from a call newer than the profile. Not for
 *   capsule's built-in profiles: `default` answers ENOSYS anyway, `strict`
 *   reports every call it does not name.
 * - execve, write, exit and exit_group must stay allowed: capsule-init needs
 *   them between loading the filter and the program's first instruction.
 *
 * With `oci: true` (config.json's linux.seccomp in the OCI runtime mode,
 * src/oci/spec.ts) the profile means what it means to runc, not to a judge:
 * - the kill actions are the kernel's (SCMP_ACT_KILL and _KILL_THREAD kill the
 *   thread, _KILL_PROCESS the process, as libseccomp defines them), and a call
 *   of another ABI kills the process (SECCOMP_RET_KILL_PROCESS) instead of
 *   being reported as a SECURITY_VIOLATION: no capsule-init is there to judge;
 * - SCMP_ACT_NOTIFY needs a seccomp agent (listenerPath), which capsule does
 *   not support: an error, as is a non-empty listenerPath;
 * - `flags`: SECCOMP_FILTER_FLAG_TSYNC is accepted (capsule-init loads the
 *   filter while it has one thread, so synchronizing threads changes
 *   nothing); SECCOMP_FILTER_FLAG_LOG, _SPEC_ALLOW and _WAIT_KILLABLE_RECV
 *   are errors: the addon loads the filter with no flags;
 * - only the runtime spec's fields are read: Docker's extensions (archMap,
 *   includes/excludes, `name`, errno names) are errors, since includes.caps
 *   would be judged against a capability set the container does not have.
 *   `comment` is accepted and has no effect; any other field the spec does
 *   not define goes to `unknownField` (spec.ts logs and ignores it).
 * Errors then read `config.json: linux.seccomp.FIELD: ...`.
 */
import { readFileSync, statSync } from 'node:fs';
import { arch as cpuArch, constants as osConstants, release } from 'node:os';

import { ConfigError } from '../errors.js';
import type { NativeSeccompAction, NativeSeccompProfile } from '../native.js';

/** A profile as the OCI runtime spec and Docker write it. */
export interface OciSeccompProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  archMap?: { architecture: string; subArchitectures?: string[] }[];
  syscalls?: OciSyscallRule[];
  flags?: string[];
}

export interface OciSyscallRule {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: { index: number; value: number | bigint; valueTwo?: number | bigint; op: string }[];
  comment?: string;
  includes?: { arches?: string[]; caps?: string[]; minKernel?: string };
  excludes?: { arches?: string[]; caps?: string[]; minKernel?: string };
}

/** The normalized profile: one rule per system call, actions resolved, what the addon compiles. */
export type SeccompProfile = Omit<NativeSeccompProfile, 'pfc'>;

const EPERM = 1;
const ENOSYS = 38;

export const ACTIONS: Record<string, NativeSeccompAction['kind']> = {
  SCMP_ACT_ALLOW: 'allow',
  SCMP_ACT_ERRNO: 'errno',
  SCMP_ACT_LOG: 'log',
  SCMP_ACT_TRACE: 'trace',
  SCMP_ACT_TRAP: 'trap',
  /* capsule-init kills the sandbox and reports the call (seccomp_unotify(2)). */
  SCMP_ACT_KILL: 'notify',
  SCMP_ACT_KILL_PROCESS: 'notify',
  SCMP_ACT_KILL_THREAD: 'notify',
  SCMP_ACT_NOTIFY: 'notify',
};

export const OPS: Record<string, string> = {
  SCMP_CMP_NE: 'ne',
  SCMP_CMP_LT: 'lt',
  SCMP_CMP_LE: 'le',
  SCMP_CMP_EQ: 'eq',
  SCMP_CMP_GE: 'ge',
  SCMP_CMP_GT: 'gt',
  SCMP_CMP_MASKED_EQ: 'masked_eq',
};

/**
 * libseccomp's names, and the name Docker's `includes.arches` uses for this
 * machine (moby's goToNative of GOARCH: amd64, arm64), per Node arch.
 */
const NATIVE: Record<string, { scmp: string; docker: string }> = {
  x64: { scmp: 'SCMP_ARCH_X86_64', docker: 'amd64' },
  arm64: { scmp: 'SCMP_ARCH_AARCH64', docker: 'arm64' },
};

/* The architectures of the OCI runtime spec (config-linux.md, seccomp). */
export const KNOWN_ARCHES = new Set([
  'SCMP_ARCH_X86',
  'SCMP_ARCH_X86_64',
  'SCMP_ARCH_X32',
  'SCMP_ARCH_ARM',
  'SCMP_ARCH_AARCH64',
  'SCMP_ARCH_MIPS',
  'SCMP_ARCH_MIPS64',
  'SCMP_ARCH_MIPS64N32',
  'SCMP_ARCH_MIPSEL',
  'SCMP_ARCH_MIPSEL64',
  'SCMP_ARCH_MIPSEL64N32',
  'SCMP_ARCH_PPC',
  'SCMP_ARCH_PPC64',
  'SCMP_ARCH_PPC64LE',
  'SCMP_ARCH_S390',
  'SCMP_ARCH_S390X',
  'SCMP_ARCH_PARISC',
  'SCMP_ARCH_PARISC64',
  'SCMP_ARCH_RISCV64',
  'SCMP_ARCH_LOONGARCH64',
  'SCMP_ARCH_M68K',
  'SCMP_ARCH_SH',
  'SCMP_ARCH_SHEB',
]);

/** The calls capsule-init makes after loading the filter: execve, and on failure write and exit. */
export const REQUIRED_SYSCALLS = ['execve', 'write', 'exit', 'exit_group'];

function kernelVersion(): number[] {
  return release()
    .split(/[.-]/)
    .slice(0, 2)
    .map((n) => Number(n) || 0);
}

function kernelAtLeast(v: string): boolean {
  const want = v.split('.').map((n) => Number(n) || 0);
  const have = kernelVersion();
  for (let i = 0; i < 2; i++) {
    if ((have[i] ?? 0) !== (want[i] ?? 0)) return (have[i] ?? 0) > (want[i] ?? 0);
  }
  return true;
}

/* The kernel's own meaning of each action, for the OCI runtime mode (libseccomp: SCMP_ACT_KILL is SCMP_ACT_KILL_THREAD). */
const KERNEL_ACTIONS: Record<string, NativeSeccompAction['kind']> = {
  ...ACTIONS,
  SCMP_ACT_KILL: 'kill_thread',
  SCMP_ACT_KILL_THREAD: 'kill_thread',
  SCMP_ACT_KILL_PROCESS: 'kill_process',
};

/** seccomp(2) flags a config.json may ask for, and whether capsule can honour them (see the file comment). */
const OCI_FLAGS: Record<string, boolean> = {
  SECCOMP_FILTER_FLAG_TSYNC: true,
  SECCOMP_FILTER_FLAG_LOG: false,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW: false,
  SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: false,
};

/** Checks the JSON's shape, naming the field at fault: `syscalls[3].args[0].op`. */
class Reader {
  constructor(
    private readonly source: string,
    private readonly oci = false,
  ) {}

  fail(field: string, message: string): never {
    if (this.oci) {
      const where = field === 'the profile' ? 'linux.seccomp' : `linux.seccomp.${field}`;
      throw new ConfigError(`${this.source}: ${where}: ${message}`, 'linux.seccomp');
    }
    throw new ConfigError(`seccomp profile ${this.source}: ${field}: ${message}`, 'seccompProfile');
  }

  /** In the OCI runtime mode, a field only Docker's format has. */
  notOci(field: string, v: unknown) {
    if (this.oci && v !== undefined)
      this.fail(field, "is Docker's extension, not a field of the OCI runtime spec's linux.seccomp");
  }

  object(field: string, v: unknown): Record<string, unknown> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(field, 'must be an object');
    return v as Record<string, unknown>;
  }

  strings(field: string, v: unknown): string[] {
    if (!Array.isArray(v) || v.some((s) => typeof s !== 'string'))
      this.fail(field, 'must be an array of strings');
    return v as string[];
  }

  /** A list that may be absent or `null` (Go writes a nil slice as null): empty then. */
  optionalStrings(field: string, v: unknown): string[] {
    return v === undefined || v === null ? [] : this.strings(field, v);
  }

  optionalArray(field: string, v: unknown): unknown[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) this.fail(field, 'must be an array');
    return v;
  }

  errno(field: string, v: unknown): number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 4095)
      this.fail(field, `must be an errno number from 0 to 4095, got ${JSON.stringify(v)}`);
    return v;
  }

  /** An errno by name (`"EPERM"`), as containers/common writes `errno` and `defaultErrno`. */
  errnoName(field: string, v: unknown): number {
    const n = typeof v === 'string' ? (osConstants.errno as Record<string, number>)[v] : undefined;
    if (n === undefined) this.fail(field, `must be an errno name such as "EPERM", got ${JSON.stringify(v)}`);
    return n;
  }

  u64(field: string, v: unknown): bigint {
    if (typeof v === 'bigint' && v >= 0n && v < 2n ** 64n) return v;
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
    return this.fail(field, `must be an unsigned 64-bit integer, got ${JSON.stringify(String(v))}`);
  }

  action(field: string, name: unknown, errnoRet: number): NativeSeccompAction {
    const actions = this.oci ? KERNEL_ACTIONS : ACTIONS;
    if (typeof name !== 'string' || !(name in actions)) {
      this.fail(
        field,
        `unknown action ${JSON.stringify(name)}: expected one of ${Object.keys(actions).join(', ')}`,
      );
    }
    if (this.oci && name === 'SCMP_ACT_NOTIFY') {
      this.fail(
        field,
        'SCMP_ACT_NOTIFY hands the call to a seccomp agent (linux.seccomp.listenerPath), which capsule does not support: use SCMP_ACT_ERRNO or a kill action',
      );
    }
    const kind = actions[name]!;
    return { kind, value: kind === 'errno' || kind === 'trace' ? errnoRet : 0 };
  }
}

function sameAction(a: NativeSeccompAction, b: NativeSeccompAction) {
  return a.kind === b.kind && a.value === b.value;
}

/**
 * Validate an OCI/Docker profile and normalize it. `source` names it in
 * errors (a file path, or `the built-in default profile`; with `oci`, the
 * config file: `config.json`). Throws ConfigError.
 */
export function normalizeProfile(
  json: unknown,
  source: string,
  {
    enosysStub = true,
    oci = false,
    unknownField,
  }: {
    enosysStub?: boolean;
    oci?: boolean;
    /**
     * With `oci`: called with a field the runtime spec does not define (`syscalls[2].note`),
     * which is then ignored, as the spec's Extensibility section requires; absent: an error.
     */
    unknownField?: (field: string) => void;
  } = {},
): SeccompProfile {
  const r: Reader = new Reader(source, oci);
  const unknown = (field: string) =>
    oci && unknownField ? unknownField(field) : r.fail(field, 'unknown field');
  const p = r.object('the profile', json);
  const known = new Set([
    'defaultAction',
    'defaultErrnoRet',
    'defaultErrno' /* containers/common's name for it, as a string */,
    'architectures',
    'archMap',
    'syscalls',
    'flags',
    'listenerPath',
    'listenerMetadata',
  ]);
  for (const k of Object.keys(p)) if (!known.has(k)) unknown(k);
  r.notOci('defaultErrno', p.defaultErrno);
  r.notOci('archMap', p.archMap);
  if (oci) {
    if (p.listenerPath !== undefined && p.listenerPath !== '') {
      if (typeof p.listenerPath !== 'string') r.fail('listenerPath', 'must be a string');
      r.fail(
        'listenerPath',
        'seccomp agents (SCMP_ACT_NOTIFY handed to a listener) are not supported by capsule: remove listenerPath and the SCMP_ACT_NOTIFY rules',
      );
    }
    if (p.listenerMetadata !== undefined && p.listenerMetadata !== '')
      r.fail(
        'listenerMetadata',
        'is only for a seccomp agent (listenerPath), which capsule does not support',
      );
  }
  if (p.defaultAction === undefined) r.fail('defaultAction', 'is required');
  const defaultErrno =
    p.defaultErrnoRet !== undefined && p.defaultErrnoRet !== null
      ? r.errno('defaultErrnoRet', p.defaultErrnoRet)
      : p.defaultErrno !== undefined
        ? r.errnoName('defaultErrno', p.defaultErrno)
        : EPERM;
  const defaultAction = r.action('defaultAction', p.defaultAction, defaultErrno);

  const native = NATIVE[cpuArch()];
  if (!native) r.fail('architectures', `capsule filters x86_64 and aarch64 only, not ${cpuArch()}`);
  /*
   * `architectures` (the OCI form) or `archMap` (Docker's), not both, as moby
   * refuses. From an archMap only this machine's entry counts, as moby's
   * setupSeccomp picks it; capsule filters the native ABI only anyway.
   */
  const listed = r.optionalStrings('architectures', p.architectures);
  const archMap = r.optionalArray('archMap', p.archMap);
  if (listed.length > 0 && archMap.length > 0)
    r.fail('archMap', "give either 'architectures' or 'archMap', not both (Docker refuses both too)");
  const arches = new Set<string>(listed);
  archMap.forEach((m: unknown, i: number) => {
    const o = r.object(`archMap[${i}]`, m);
    if (typeof o.architecture !== 'string') r.fail(`archMap[${i}].architecture`, 'must be a string');
    const subs = r.optionalStrings(`archMap[${i}].subArchitectures`, o.subArchitectures);
    for (const a of [o.architecture, ...subs])
      if (!KNOWN_ARCHES.has(a)) r.fail(`archMap[${i}]`, `unknown architecture ${JSON.stringify(a)}`);
    if (o.architecture === native.scmp) for (const a of [o.architecture, ...subs]) arches.add(a);
  });
  for (const a of arches)
    if (!KNOWN_ARCHES.has(a)) r.fail('architectures', `unknown architecture ${JSON.stringify(a)}`);
  if (listed.length > 0 && !arches.has(native.scmp)) {
    r.fail(
      'architectures',
      `does not list this machine's ${native.scmp}: the profile was written for another`,
    );
  }
  const flags = r.optionalStrings('flags', p.flags);
  if (oci) {
    for (const flag of flags) {
      if (!(flag in OCI_FLAGS))
        r.fail(
          'flags',
          `unknown flag ${JSON.stringify(flag)}: expected one of ${Object.keys(OCI_FLAGS).join(', ')}`,
        );
      if (!OCI_FLAGS[flag])
        r.fail(
          'flags',
          `${flag} is not supported: capsule loads the filter without it; remove it from flags`,
        );
    }
  }

  const rules: SeccompProfile['rules'] = [];
  /* Every name of every rule that applies, even one dropped below: what runc's stub counts. */
  const named = new Set<string>();
  const syscalls = r.optionalArray('syscalls', p.syscalls);
  syscalls.forEach((raw: unknown, i: number) => {
    const f = `syscalls[${i}]`;
    const s = r.object(f, raw);
    if (oci) {
      for (const k of Object.keys(s))
        if (k === 'name' || k === 'errno' || k === 'includes' || k === 'excludes')
          r.fail(`${f}.${k}`, "is Docker's extension, not a field of the OCI runtime spec's linux.seccomp");
        else if (!['names', 'action', 'errnoRet', 'args', 'comment'].includes(k)) unknown(`${f}.${k}`);
    }
    const hasNames = s.names !== undefined && s.names !== null;
    const hasName = s.name !== undefined && s.name !== null && s.name !== '';
    if (hasNames && hasName) r.fail(f, "give either 'name' or 'names', not both (Docker refuses both too)");
    if (!hasNames && !hasName) r.fail(`${f}.names`, 'is required');
    const names = hasNames ? s.names : [s.name];
    for (const n of r.strings(`${f}.names`, names))
      if (!/^[a-z0-9_]+$/.test(n)) r.fail(`${f}.names`, `${JSON.stringify(n)} is not a system call name`);
    const errnoRet =
      s.errnoRet !== undefined && s.errnoRet !== null
        ? r.errno(`${f}.errnoRet`, s.errnoRet)
        : s.errno !== undefined
          ? r.errnoName(`${f}.errno`, s.errno)
          : EPERM;
    const action = r.action(`${f}.action`, s.action, errnoRet);
    if (!applies(r, f, s)) return;
    for (const name of names as string[]) named.add(name);
    const args: SeccompProfile['rules'][number]['args'] = [];
    const argList = r.optionalArray(`${f}.args`, s.args);
    argList.forEach((rawArg: unknown, j: number) => {
      const af = `${f}.args[${j}]`;
      const a = r.object(af, rawArg);
      if (oci)
        for (const k of Object.keys(a))
          if (!['index', 'value', 'valueTwo', 'op'].includes(k)) unknown(`${af}.${k}`);
      if (typeof a.index !== 'number' || !Number.isInteger(a.index) || a.index < 0 || a.index > 5)
        r.fail(`${af}.index`, `must be 0 to 5, got ${JSON.stringify(a.index)}`);
      if (typeof a.op !== 'string' || !(a.op in OPS))
        r.fail(
          `${af}.op`,
          `unknown op ${JSON.stringify(a.op)}: expected one of ${Object.keys(OPS).join(', ')}`,
        );
      args.push({
        index: a.index,
        op: OPS[a.op]!,
        value: r.u64(`${af}.value`, a.value),
        valueTwo: a.valueTwo === undefined ? 0n : r.u64(`${af}.valueTwo`, a.valueTwo),
      });
    });
    /* A rule that does what the default does changes nothing (runc skips it too; libseccomp refuses it). */
    if (sameAction(action, defaultAction)) return;
    /*
     * libseccomp takes one comparison per argument in a rule. Where a profile
     * has several on one argument, each becomes a rule of its own, so they are
     * ORed: what runc does with the same profile.
     */
    const indexes = args.map((a) => a.index);
    const split = new Set(indexes).size !== indexes.length;
    for (const name of names as string[]) {
      if (split) for (const a of args) rules.push({ syscall: name, action, args: [a] });
      else rules.push({ syscall: name, action, args });
    }
  });

  /* capsule-init's last calls must work whatever the profile says (see the file comment). */
  for (const name of REQUIRED_SYSCALLS) {
    const denied = rules.findIndex((rule) => rule.syscall === name && rule.action.kind !== 'allow');
    if (denied >= 0) {
      r.fail(
        'syscalls',
        `the profile denies ${name}, which capsule-init needs to start the program (execve) and report its failure (write, exit, exit_group)`,
      );
    }
    const allowed = rules.some((rule) => rule.syscall === name && rule.args.length === 0);
    if (defaultAction.kind !== 'allow' && !allowed)
      rules.push({ syscall: name, action: { kind: 'allow', value: 0 }, args: [] });
  }

  /*
   * runc's ENOSYS stub (see native/seccomp.cc): calls newer than every call
   * the profile names get ENOSYS instead of a default that refuses, so libcs
   * fall back. runc adds it unless the default allows (allow, log, trace);
   * with an ENOSYS default it changes nothing. Docker's profile relies on it:
   * its default is EPERM.
   */
  const stub =
    enosysStub &&
    !['allow', 'log', 'trace'].includes(defaultAction.kind) &&
    !(defaultAction.kind === 'errno' && defaultAction.value === ENOSYS);
  return {
    defaultAction,
    /* Another ABI: capsule-init reports it as a violation; in the OCI mode the kernel kills the process. */
    badArchAction: oci ? { kind: 'kill_process', value: 0 } : { kind: 'notify', value: 0 },
    rules,
    enosysAfter: stub ? [...named].sort() : [],
  };
}

/**
 * Docker's `includes`/`excludes`, as moby's setupSeccomp evaluates them: a
 * rule is left out when `excludes` names this architecture, a capability
 * the program holds (none) or a kernel at most this one, or when `includes`
 * names architectures without this one, any capability, or a newer kernel.
 * An empty or null list does not restrict.
 */
function applies(r: Reader, f: string, s: Record<string, unknown>): boolean {
  const native = NATIVE[cpuArch()]!;
  const check = (key: 'includes' | 'excludes') => {
    if (s[key] === undefined || s[key] === null) return null;
    const o = r.object(`${f}.${key}`, s[key]);
    const arches = r.optionalStrings(`${f}.${key}.arches`, o.arches);
    const caps = r.optionalStrings(`${f}.${key}.caps`, o.caps);
    const minKernel = o.minKernel ?? undefined;
    if (minKernel !== undefined && (typeof minKernel !== 'string' || !/^\d+\.\d+/.test(minKernel)))
      r.fail(`${f}.${key}.minKernel`, `must be a version like "4.8", got ${JSON.stringify(minKernel)}`);
    return {
      arch: arches.length === 0 ? null : arches.includes(native.docker),
      caps: caps.length === 0 ? null : false /* the sandbox holds none */,
      kernel: minKernel === undefined ? null : kernelAtLeast(minKernel),
    };
  };
  const inc = check('includes');
  const exc = check('excludes');
  if (inc && (inc.arch === false || inc.caps === false || inc.kernel === false)) return false;
  if (exc && (exc.arch === true || exc.kernel === true)) return false;
  return true;
}

/* Profile files by path, kept while their inode, size and mtime stay the same. */
const files = new Map<string, { stamp: string; profile: SeccompProfile }>();

/**
 * Read and normalize a profile file. A file read before and not changed since
 * (same inode, size and mtime) is not read again: runs with the same
 * --seccomp-profile cost one stat(2), not a JSON parse and a normalization.
 */
export function loadProfileFile(path: string): SeccompProfile {
  let stamp = '';
  try {
    const st = statSync(path, { bigint: true });
    stamp = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
  } catch {
    /* reported by the read below */
  }
  const known = files.get(path);
  if (known && known.stamp === stamp) return known.profile;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(
      `cannot read seccomp profile ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      'seccompProfile',
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(
      `seccomp profile ${path} is not valid JSON: ${(e as Error).message}`,
      'seccompProfile',
    );
  }
  const profile = normalizeProfile(json, path);
  files.set(path, { stamp, profile });
  return profile;
}
