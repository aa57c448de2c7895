/**
 * Filters compiled at build time (src/seccomp/precompiled.ts): each one is byte for byte
 * what compiling the same profile gives now, and anything that is not exactly that
 * profile, this libseccomp and this architecture compiles as before.
 */
import {
  closeSync,
  ftruncateSync,
  mkdirSync,
  mkdtempSync,
  readSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { native, packageRoot, setPackageRoot } from '../../src/native.js';
import {
  BUILTIN_PROFILES,
  builtinNormalized,
  normalizeProfile,
  profileKey,
  type SeccompProfile,
} from '../../src/seccomp/index.js';
import { forgetPrecompiled, keyDigest, precompiledFilter } from '../../src/seccomp/precompiled.js';

function program(fd: number, instructions: number): Buffer {
  const b = Buffer.alloc(instructions * 8);
  expect(readSync(fd, b, 0, b.length, 0)).toBe(b.length);
  return b;
}

describe('precompiled built-in filters', () => {
  for (const name of BUILTIN_PROFILES) {
    const p = builtinNormalized(name);
    if (!p) continue;
    it(`${name}: the build's program is what libseccomp compiles from the source profile now`, () => {
      const pre = precompiledFilter(p, profileKey(p));
      /* null here: dist/ is older than src/seccomp/builtin.ts, or was built without the addon. */
      expect(pre, 'run `npm run build:ts`: dist/seccomp does not match the built-in profiles').not.toBeNull();
      const fresh = native().compileSeccomp({ ...p, pfc: false });
      try {
        expect(pre!.instructions).toBe(fresh.instructions);
        expect(pre!.unknown).toEqual(fresh.unknown);
        expect(pre!.ignored).toEqual(fresh.ignored);
        expect(program(pre!.fd, pre!.instructions).equals(program(fresh.fd, fresh.instructions))).toBe(true);
      } finally {
        closeSync(pre!.fd);
        closeSync(fresh.fd);
      }
    });
  }

  it('a profile that differs by one rule finds nothing', () => {
    const p = builtinNormalized('default')!;
    const changed: SeccompProfile = { ...p, rules: p.rules.filter((r) => r.syscall !== 'getpid') };
    expect(precompiledFilter(changed, profileKey(changed))).toBeNull();
    const other = normalizeProfile({ defaultAction: 'SCMP_ACT_ALLOW' }, 'p.json');
    expect(precompiledFilter(other, profileKey(other))).toBeNull();
  });

  it('an entry is used only when its key file is the whole key, its libseccomp this one, its size whole', () => {
    const real = packageRoot();
    const root = mkdtempSync(join(tmpdir(), 'capsule-precompiled-'));
    const dir = join(root, 'dist', 'seccomp');
    mkdirSync(dir, { recursive: true });
    const profile = (action: string) => normalizeProfile({ defaultAction: action }, 'p.json');
    const key = profileKey(profile('SCMP_ACT_LOG'));
    const write = (keyText: string, libseccomp: string, bytes: number) => {
      writeFileSync(join(dir, 'x.key'), keyText);
      writeFileSync(
        join(dir, 'x.bpf'),
        Buffer.alloc(bytes, 0x06),
      ); /* BPF_RET, 0: only its bytes matter here */
      const filters = {
        [keyDigest(key)]: { bpf: 'x.bpf', key: 'x.key', instructions: 2, ignored: [], unknown: [] },
      };
      writeFileSync(
        join(dir, 'manifest.json'),
        JSON.stringify({ format: 1, libseccomp, arch: process.arch, filters }),
      );
      forgetPrecompiled();
    };
    try {
      setPackageRoot(root);
      const version = native().libseccompVersion;
      /* The digest matches, the key file does not: as a collision would. */
      write(`${key} `, version, 16);
      expect(precompiledFilter(profile('SCMP_ACT_LOG'), key)).toBeNull();
      write(key, '0.0.1', 16);
      expect(precompiledFilter(profile('SCMP_ACT_LOG'), key)).toBeNull();
      write(key, version, 15);
      expect(precompiledFilter(profile('SCMP_ACT_LOG'), key)).toBeNull();
      write(key, version, 16);
      const hit = precompiledFilter(profile('SCMP_ACT_LOG'), key);
      expect(hit?.instructions).toBe(2);
      closeSync(hit!.fd);
    } finally {
      setPackageRoot(real);
      forgetPrecompiled();
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('the sealed memfd cannot be written, grown or shrunk', () => {
    const fd = native().sealFilter(Buffer.alloc(16));
    try {
      expect(() => native().sealFilter(Buffer.alloc(12))).toThrow(/not 1 to 4096 instructions/);
      expect(() => native().sealFilter(Buffer.alloc(0))).toThrow(/not 1 to 4096 instructions/);
      expect(() => writeSync(fd, Buffer.alloc(8), 0, 8, 0)).toThrow(/EPERM/);
      expect(() => ftruncateSync(fd, 0)).toThrow(/EPERM/);
    } finally {
      closeSync(fd);
    }
  });
});
