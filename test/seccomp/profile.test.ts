/**
 * The OCI/Docker profile reader: errors name the field, normalization does
 * what runc does with the same profile, and the built-in profiles compile
 * into filters that check the architecture and the x32 bit.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';

import { ConfigError } from '../../src/errors.js';
import {
  builtinNormalized,
  compileCached,
  filterNote,
  filterText,
  normalizeProfile,
  profileKey,
  type SeccompProfile,
} from '../../src/seccomp/index.js';

const allow = { kind: 'allow', value: 0 };

function rejects(json: unknown, message: RegExp) {
  expect(() => normalizeProfile(json, 'p.json')).toThrow(ConfigError);
  expect(() => normalizeProfile(json, 'p.json')).toThrow(message);
}

describe('errors name the field at fault', () => {
  it('defaultAction', () => {
    rejects({}, /^seccomp profile p\.json: defaultAction: is required$/);
    rejects(
      { defaultAction: 'SCMP_ACT_NOPE' },
      /defaultAction: unknown action "SCMP_ACT_NOPE": expected one of/,
    );
  });
  it('unknown top-level fields (a typo would otherwise be silently ignored)', () => {
    rejects({ defaultAction: 'SCMP_ACT_ALLOW', sycalls: [] }, /sycalls: unknown field/);
  });
  it('syscalls[i]', () => {
    rejects({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: {} }, /syscalls: must be an array/);
    rejects(
      { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ action: 'SCMP_ACT_ERRNO' }] },
      /syscalls\[0\]\.names: is required/,
    );
    rejects(
      {
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [
          { names: ['read'], action: 'SCMP_ACT_LOG' },
          { names: 'x', action: 'SCMP_ACT_ERRNO' },
        ],
      },
      /syscalls\[1\]\.names: must be an array of strings/,
    );
    rejects(
      { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['Read!'], action: 'SCMP_ACT_ERRNO' }] },
      /"Read!" is not a system call name/,
    );
    rejects(
      {
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [{ names: ['read'], action: 'SCMP_ACT_ERRNO', errnoRet: 5000 }],
      },
      /syscalls\[0\]\.errnoRet: must be an errno number from 0 to 4095/,
    );
  });
  it('syscalls[i].args[j]', () => {
    const rule = (arg: object) => ({
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [{ names: ['ioctl'], action: 'SCMP_ACT_ERRNO', args: [arg] }],
    });
    rejects(
      rule({ index: 6, value: 1, op: 'SCMP_CMP_EQ' }),
      /syscalls\[0\]\.args\[0\]\.index: must be 0 to 5, got 6/,
    );
    rejects(
      rule({ index: 1, value: 1, op: 'SCMP_CMP_LIKE' }),
      /syscalls\[0\]\.args\[0\]\.op: unknown op "SCMP_CMP_LIKE"/,
    );
    rejects(
      rule({ index: 1, value: -1, op: 'SCMP_CMP_EQ' }),
      /syscalls\[0\]\.args\[0\]\.value: must be an unsigned 64-bit integer/,
    );
  });
  it('architectures', () => {
    rejects(
      { defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_Z80'] },
      /architectures: unknown architecture "SCMP_ARCH_Z80"/,
    );
    const other = process.arch === 'arm64' ? 'SCMP_ARCH_X86_64' : 'SCMP_ARCH_AARCH64';
    rejects({ defaultAction: 'SCMP_ACT_ALLOW', architectures: [other] }, /does not list this machine's/);
  });
  it('a profile that denies what capsule-init needs after loading it', () => {
    for (const name of ['execve', 'write', 'exit_group']) {
      rejects(
        { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: [name], action: 'SCMP_ACT_KILL' }] },
        new RegExp(`denies ${name}`),
      );
    }
  });
});

describe('normalization, as runc reads the same profile', () => {
  it('kill actions become notify (capsule-init reports and kills); errno defaults to EPERM', () => {
    const p = normalizeProfile(
      {
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [
          { names: ['mount'], action: 'SCMP_ACT_KILL' },
          { names: ['ptrace'], action: 'SCMP_ACT_KILL_THREAD' },
          { names: ['bpf'], action: 'SCMP_ACT_ERRNO' },
        ],
      },
      'p',
    );
    expect(p.rules.map((r) => [r.syscall, r.action])).toEqual([
      ['mount', { kind: 'notify', value: 0 }],
      ['ptrace', { kind: 'notify', value: 0 }],
      ['bpf', { kind: 'errno', value: 1 }],
    ]);
    expect(p.badArchAction).toEqual({ kind: 'notify', value: 0 });
  });

  it("containers/common's errno names: defaultErrno and errno, when the numbers are absent", () => {
    const p = normalizeProfile(
      {
        defaultAction: 'SCMP_ACT_ERRNO',
        defaultErrno: 'ENOSYS',
        syscalls: [{ names: ['mount'], action: 'SCMP_ACT_ERRNO', errno: 'EACCES' }],
      },
      'p',
    );
    expect(p.defaultAction).toEqual({ kind: 'errno', value: 38 });
    expect(p.rules.find((r) => r.syscall === 'mount')?.action).toEqual({ kind: 'errno', value: 13 });
    rejects(
      { defaultAction: 'SCMP_ACT_ERRNO', defaultErrno: 'EWHATEVER' },
      /defaultErrno: must be an errno name such as "EPERM", got "EWHATEVER"/,
    );
  });

  it('several comparisons on one argument become separate rules (ORed), as runc does', () => {
    const p = normalizeProfile(
      {
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [
          {
            names: ['personality'],
            action: 'SCMP_ACT_ERRNO',
            args: [
              { index: 0, value: 8, op: 'SCMP_CMP_EQ' },
              { index: 0, value: 9, op: 'SCMP_CMP_EQ' },
            ],
          },
        ],
      },
      'p',
    );
    expect(p.rules.map((r) => r.args.map((a) => a.value))).toEqual([[8n], [9n]]);
  });

  it('rules that do what the default does are dropped; the calls capsule-init needs are added to allow-lists', () => {
    const p = normalizeProfile(
      { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['mount'], action: 'SCMP_ACT_ERRNO' }] },
      'p',
    );
    expect(p.rules.map((r) => r.syscall).sort()).toEqual(['execve', 'exit', 'exit_group', 'write']);
    expect(p.rules.every((r) => r.action.kind === 'allow')).toBe(true);
  });

  it("Docker's includes/excludes: no capabilities in the sandbox, this architecture, this kernel", () => {
    const native = process.arch === 'arm64' ? 'arm64' : 'amd64';
    const p = normalizeProfile(
      {
        defaultAction: 'SCMP_ACT_ERRNO',
        archMap: [
          {
            architecture: process.arch === 'arm64' ? 'SCMP_ARCH_AARCH64' : 'SCMP_ARCH_X86_64',
            subArchitectures: [],
          },
        ],
        syscalls: [
          { names: ['read'], action: 'SCMP_ACT_ALLOW' },
          { names: ['mount'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_ADMIN'] } },
          { names: ['clone'], action: 'SCMP_ACT_ALLOW', excludes: { caps: ['CAP_SYS_ADMIN'] } },
          { names: ['arch_specific'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['s390x'] } },
          { names: ['native_only'], action: 'SCMP_ACT_ALLOW', includes: { arches: [native] } },
          { names: ['newer'], action: 'SCMP_ACT_ALLOW', includes: { minKernel: '99.0' } },
          { names: ['older'], action: 'SCMP_ACT_ALLOW', includes: { minKernel: '4.8' } },
        ],
      },
      'p',
    );
    const names = p.rules.map((r) => r.syscall);
    expect(names).toEqual(expect.arrayContaining(['read', 'clone', 'native_only', 'older']));
    expect(names).not.toEqual(expect.arrayContaining(['mount']));
    expect(names).not.toContain('arch_specific');
    expect(names).not.toContain('newer');
  });

  it('the cache key ignores the order of rules', () => {
    const a = normalizeProfile(
      { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mount', 'bpf'], action: 'SCMP_ACT_ERRNO' }] },
      'a',
    );
    const b = normalizeProfile(
      {
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [
          { names: ['bpf'], action: 'SCMP_ACT_ERRNO' },
          { names: ['mount'], action: 'SCMP_ACT_ERRNO' },
        ],
      },
      'b',
    );
    expect(profileKey(a)).toBe(profileKey(b));
    expect(compileCached(a, 'a')).toBe(compileCached(b, 'b'));
  });
});

describe('the built-in profiles', () => {
  const names = ['default', 'default-kill', 'strict', 'compile'] as const;

  it('compile, leaving out only calls this architecture or this libseccomp does not have, quietly', () => {
    const spy = vi.spyOn(process, 'emitWarning');
    try {
      for (const n of names) {
        const c = compileCached(builtinNormalized(n)!, n);
        expect(c.instructions).toBeGreaterThan(20);
        expect(c.instructions).toBeLessThan(4096);
        /* i386's names capsule denies; calls newer than libseccomp 2.5.4 (allowed once it knows them) */
        if (process.arch === 'x64')
          expect(c.ignored.sort()).toEqual(n === 'strict' ? [] : ['stime', 'umount', 'vm86', 'vm86old']);
        const newer = ['getxattrat', 'listxattrat', 'mseal', 'removexattrat', 'setxattrat', 'uretprobe'];
        for (const name of c.unknown) expect(newer).toContain(name);
      }
      expect(spy).not.toHaveBeenCalled();
    } finally {
      spy.mockRestore();
    }
  });

  it('check AUDIT_ARCH first and send x32 numbers to the bad-arch action', () => {
    if (process.arch !== 'x64') return;
    for (const n of names) {
      const c = compileCached(builtinNormalized(n)!, n);
      const bpf = readFileSync(`/proc/self/fd/${c.fd}`);
      const insn = (i: number) => ({ code: bpf.readUInt16LE(i * 8), k: bpf.readUInt32LE(i * 8 + 4) });
      /* ld [4] (seccomp_data.arch); jeq AUDIT_ARCH_X86_64 */
      expect(insn(0)).toEqual({ code: 0x20, k: 4 });
      expect(insn(1)).toEqual({ code: 0x15, k: 0xc000003e });
      /* ld [0] (nr); jge __X32_SYSCALL_BIT */
      expect(insn(2)).toEqual({ code: 0x20, k: 0 });
      expect(insn(3)).toEqual({ code: 0x35, k: 0x40000000 });
    }
  });

  it('default: namespaced clone flags, unsafe personality bits and TIOCSTI, compared as the kernel reads them', () => {
    const text = filterText(builtinNormalized('default')!);
    expect(text).toContain('filter for syscall "clone"');
    expect(text).toContain('filter for syscall "personality"');
    /* TIOCSTI, upper 32 bits ignored as the kernel ignores them */
    expect(text).toContain('$a1.hi32 & 0x00000000 == 0');
    expect(text).toContain('$a1.lo32 & 0xffffffff == 21522');
  });

  it('strict is an allow-list whose default kills (through capsule-init, to report)', () => {
    const p: SeccompProfile = builtinNormalized('strict')!;
    expect(p.defaultAction).toEqual({ kind: 'notify', value: 0 });
    /*
     * The two exceptions: clone3 is ENOSYS (libcs fall back to clone), and
     * socket(AF_UNIX) fails with EACCES, for glibc's nscd probe.
     */
    expect(p.rules.filter((r) => r.action.kind !== 'allow')).toEqual([
      { syscall: 'clone3', action: { kind: 'errno', value: 38 }, args: [] },
      {
        syscall: 'socket',
        action: { kind: 'errno', value: 13 },
        args: [{ index: 0, op: 'eq', value: 1n, valueTwo: 0n }],
      },
    ]);
    /* clone: thread flags only, VM|SIGHAND|THREAD required, nothing outside glibc's, musl's and Go's set */
    expect(p.rules.filter((r) => r.syscall === 'clone')).toEqual([
      {
        syscall: 'clone',
        action: allow,
        args: [{ index: 0, op: 'masked_eq', value: 0xfe83f9ffn, valueTwo: 0x10900n }],
      },
    ]);
    expect(p.rules.some((r) => ['fork', 'vfork'].includes(r.syscall))).toBe(false);
    expect(p.rules.find((r) => r.syscall === 'read')?.action).toEqual(allow);
  });
});

describe('names libseccomp does not know', () => {
  const profileWith = (action: string, name: string) =>
    normalizeProfile(
      {
        defaultAction: 'SCMP_ACT_ERRNO',
        syscalls: [
          { names: ['read', 'write', 'exit_group', 'execve'], action: 'SCMP_ACT_ALLOW' },
          { names: [name], action },
        ],
      },
      'p.json',
    );

  it('in a rule that denies: a ConfigError naming the call, since the rule would deny nothing', () => {
    for (const action of ['SCMP_ACT_KILL', 'SCMP_ACT_ERRNO', 'SCMP_ACT_LOG']) {
      const p = normalizeProfile(
        { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['capsule_no_such_call'], action }] },
        'p.json',
      );
      expect(() => compileCached(p, 'p.json')).toThrow(ConfigError);
      expect(() => compileCached(p, 'p.json')).toThrow(
        /seccomp profile p\.json cannot be compiled: "capsule_no_such_call" is a system call name this libseccomp does not know, in a rule that denies it/,
      );
    }
  });

  it('in a rule that allows: left out, with one CapsuleWarning per profile', () => {
    const warnings: Error[] = [];
    const listen = (w: Error) => warnings.push(w);
    process.on('warning', listen);
    const spy = vi.spyOn(process, 'emitWarning');
    try {
      const p = profileWith('SCMP_ACT_ALLOW', 'capsule_future_call');
      const c = compileCached(p, 'p.json');
      compileCached(profileWith('SCMP_ACT_ALLOW', 'capsule_future_call'), 'p.json');
      expect(c.unknown).toEqual(['capsule_future_call']);
      expect(c.ignored).toEqual([]);
      expect(spy).toHaveBeenCalledTimes(1);
      expect(spy.mock.calls[0]![0]).toBe(
        'seccomp profile p.json: allows capsule_future_call, which this libseccomp does not know: left out, so the default action answers them (as Docker and runc do)',
      );
      expect(spy.mock.calls[0]![1]).toMatchObject({ type: 'CapsuleWarning' });
      expect(filterNote(c.fd)).toContain('capsule_future_call');
    } finally {
      spy.mockRestore();
      process.off('warning', listen);
    }
  });

  it("a call of another architecture is no warning: this one does not have it (i386's stime)", () => {
    const spy = vi.spyOn(process, 'emitWarning');
    try {
      const c = compileCached(profileWith('SCMP_ACT_KILL', 'stime'), 'p.json');
      if (process.arch === 'x64') expect(c.ignored).toEqual(['stime']);
      expect(c.unknown).toEqual([]);
      expect(spy).not.toHaveBeenCalled();
    } finally {
      spy.mockRestore();
    }
  });
});

describe("Docker's and the OCI runtime spec's formats, read as Docker and runc read them", () => {
  const docker = JSON.parse(
    readFileSync(join(import.meta.dirname, '../security/profiles/docker-default.json'), 'utf8'),
  ) as { archMap: { architecture: string; subArchitectures: string[] | null }[] };

  it("Docker's default.json: null subArchitectures and SCMP_ARCH_LOONGARCH64 in its archMap", () => {
    expect(
      docker.archMap.find((a) => a.architecture === 'SCMP_ARCH_LOONGARCH64')?.subArchitectures,
    ).toBeNull();
    const p = normalizeProfile(docker, 'default.json');
    expect(p.defaultAction).toEqual({ kind: 'errno', value: 1 });
    /* caps-gated rules do not apply (no capabilities): bpf and mount are left to the default */
    expect(p.rules.some((r) => r.syscall === 'bpf' || r.syscall === 'mount')).toBe(false);
    /* clone3 is ENOSYS without CAP_SYS_ADMIN (an `excludes: caps` rule) */
    expect(p.rules.find((r) => r.syscall === 'clone3')?.action).toEqual({ kind: 'errno', value: 38 });
    /* ptrace is allowed from kernel 4.8 (`includes: minKernel`) */
    expect(p.rules.some((r) => r.syscall === 'ptrace' && r.action.kind === 'allow')).toBe(true);
    /* arch_prctl: `includes: arches: [amd64, x32]` */
    expect(p.rules.some((r) => r.syscall === 'arch_prctl')).toBe(process.arch === 'x64');
    /* Its default is EPERM: runc's ENOSYS stub applies */
    expect(p.enosysAfter.length).toBeGreaterThan(300);
  });

  it('null stands for an empty list wherever Go writes a nil slice', () => {
    const p = normalizeProfile(
      {
        defaultAction: 'SCMP_ACT_ALLOW',
        defaultErrnoRet: null,
        architectures: null,
        archMap: null,
        flags: null,
        syscalls: [
          {
            names: ['mount'],
            action: 'SCMP_ACT_ERRNO',
            errnoRet: null,
            args: null,
            includes: { arches: null, caps: null },
            excludes: null,
          },
        ],
      },
      'p',
    );
    expect(p.rules).toEqual([{ syscall: 'mount', action: { kind: 'errno', value: 1 }, args: [] }]);
    expect(normalizeProfile({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: null }, 'p').rules).toEqual([]);
  });

  it("archMap: only this machine's entry counts; unknown to libseccomp is fine, unknown to the spec is not", () => {
    const archMap = [
      { architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86'] },
      { architecture: 'SCMP_ARCH_AARCH64', subArchitectures: ['SCMP_ARCH_ARM'] },
      { architecture: 'SCMP_ARCH_LOONGARCH64', subArchitectures: null },
    ];
    expect(() => normalizeProfile({ defaultAction: 'SCMP_ACT_ALLOW', archMap }, 'p')).not.toThrow();
    rejects(
      {
        defaultAction: 'SCMP_ACT_ALLOW',
        archMap: [{ architecture: 'SCMP_ARCH_Z80', subArchitectures: null }],
      },
      /archMap\[0\]: unknown architecture "SCMP_ARCH_Z80"/,
    );
    rejects(
      { defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64'], archMap },
      /archMap: give either 'architectures' or 'archMap', not both/,
    );
    const native = process.arch === 'arm64' ? 'SCMP_ARCH_AARCH64' : 'SCMP_ARCH_X86_64';
    expect(() =>
      normalizeProfile(
        { defaultAction: 'SCMP_ACT_ALLOW', architectures: [native, 'SCMP_ARCH_LOONGARCH64'] },
        'p',
      ),
    ).not.toThrow();
  });

  it('name or names, not both; includes.arches in Go names (amd64, arm64), empty lists do not restrict', () => {
    rejects(
      {
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [{ name: 'mount', names: ['mount'], action: 'SCMP_ACT_ERRNO' }],
      },
      /syscalls\[0\]: give either 'name' or 'names', not both/,
    );
    const goArch = process.arch === 'arm64' ? 'arm64' : 'amd64';
    const p = normalizeProfile(
      {
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [
          { names: ['mount'], action: 'SCMP_ACT_ERRNO', includes: { arches: [goArch] } },
          { names: ['umount2'], action: 'SCMP_ACT_ERRNO', includes: { arches: ['x86_64', 'aarch64'] } },
          { names: ['bpf'], action: 'SCMP_ACT_ERRNO', includes: { arches: [], caps: [] } },
          { names: ['ptrace'], action: 'SCMP_ACT_ERRNO', excludes: { caps: ['CAP_SYS_PTRACE'] } },
        ],
      },
      'p',
    );
    expect(p.rules.map((r) => r.syscall)).toEqual(['mount', 'bpf', 'ptrace']);
  });

  it("runc's ENOSYS stub: after the highest call named, unless the default allows or is ENOSYS", () => {
    const rules = [{ names: ['read', 'write', 'exit_group', 'execve'], action: 'SCMP_ACT_ALLOW' }];
    expect(normalizeProfile({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: rules }, 'p').enosysAfter).toEqual([
      'execve',
      'exit_group',
      'read',
      'write',
    ]);
    expect(
      normalizeProfile({ defaultAction: 'SCMP_ACT_KILL', syscalls: rules }, 'p').enosysAfter,
    ).toHaveLength(4);
    const none = [
      { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mount'], action: 'SCMP_ACT_ERRNO' }] },
      { defaultAction: 'SCMP_ACT_LOG', syscalls: rules },
      { defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 38, syscalls: rules },
    ];
    for (const json of none) expect(normalizeProfile(json, 'p').enosysAfter).toEqual([]);
    expect(builtinNormalized('strict')!.enosysAfter).toEqual([]);
    expect(builtinNormalized('default')!.enosysAfter).toEqual([]);
  });
});
