/**
 * Each profile end to end: built from this host, then used under capsule itself (read-only root,
 * private /tmp, user nobody), compiling or running a small program inside. A profile whose host
 * packages are missing is skipped, naming them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmod, mkdtemp, mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { Command } from 'commander';
import { run } from '../../src/index.js';
import { registerRootfsCommands } from '../../src/cli/rootfs.js';
import { buildRootfs } from '../../rootfs-tools/build.js';
import { checkRootfs } from '../../rootfs-tools/check.js';
import { resolveProfiles } from '../../rootfs-tools/profile.js';
import { compile, hasGcc, makeTempDir, removeDir } from './fixtures.js';

const LONG = 180_000;
let tmp: string;
beforeAll(async () => {
  tmp = await makeTempDir();
});
afterAll(async () => removeDir(tmp));

/** Builds a profile's rootfs (hard links: fast, and the same files), or returns why it cannot. */
async function profileRootfs(profile: string): Promise<string | { missing: string }> {
  try {
    await resolveProfiles([profile]);
  } catch (e) {
    return { missing: (e as Error).message };
  }
  const dir = join(tmp, profile);
  await buildRootfs({ dir, profile, hardlink: true });
  return dir;
}

const C_SOURCE =
  '#include <stdio.h>\n#include <math.h>\nint main(void){printf("%d %.1f\\n", 6*7, sqrt(2.25));return 0;}\n';
const CPP_SOURCE =
  '#include <iostream>\n#include <vector>\n#include <numeric>\n#include <string>\n' +
  'int main(){std::vector<int> v{1,2,3,4,5,6}; std::cout << std::to_string(std::accumulate(v.begin(), v.end(), 21)) << std::endl;}\n';

describe('the example from the issue', () => {
  it(
    'rootfs build ./box --bin /bin/sh --bin /usr/bin/python3 --include /usr/lib/python3.11; run print(6*7)',
    { timeout: LONG },
    async (ctx) => {
      if (!existsSync('/usr/lib/python3.11')) return ctx.skip('host has no /usr/lib/python3.11');
      const box = join(tmp, 'issue-box');
      const program = new Command('capsule').exitOverride();
      registerRootfsCommands(program, { stdout: { write: () => true }, stderr: { write: () => true } });
      await program.parseAsync([
        'node',
        'capsule',
        'rootfs',
        'build',
        box,
        '--bin',
        '/bin/sh',
        '--bin',
        '/usr/bin/python3',
        '--include',
        '/usr/lib/python3.11',
        '-q',
      ]);
      const r = await run({ rootfs: box, argv: ['/usr/bin/python3', '-c', 'print(6*7)'] });
      expect(r).toMatchObject({ exitCode: 0, stdout: '42\n', stderr: '' });
    },
  );
});

describe('profiles under capsule', () => {
  it('sh: dash, coreutils, id and whoami as nobody', { timeout: LONG }, async (ctx) => {
    const box = await profileRootfs('sh');
    if (typeof box !== 'string') return ctx.skip(box.missing);
    const r = await run({
      rootfs: box,
      argv: [
        '/bin/sh',
        '-c',
        'echo $((6*7)); id; whoami; printf "a\\nb\\n" | sort -r | tr "\\n" " "; echo x | sed s/x/y/ | grep -c y',
      ],
    });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('42\nuid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\nnobody\nb a 1\n');
    expect(r.exitCode).toBe(0);
  });

  it(
    'python3: the interpreter, the standard library and extension modules',
    { timeout: LONG },
    async (ctx) => {
      const box = await profileRootfs('python3');
      if (typeof box !== 'string') return ctx.skip(box.missing);
      const r = await run({
        rootfs: box,
        argv: [
          '/usr/bin/python3',
          '-c',
          'import json, sqlite3, ssl, decimal, hashlib, zlib; print(6*7, json.dumps([1]))',
        ],
      });
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('42 [1]\n');
      expect((await checkRootfs(box)).problems).toEqual([]);
    },
  );

  it(
    'c: gcc compiles and links (dynamic and -static) inside, and the program runs',
    { timeout: LONG },
    async (ctx) => {
      const box = await profileRootfs('c');
      if (typeof box !== 'string') return ctx.skip(box.missing);
      const r = await run({
        rootfs: box,
        argv: ['/bin/sh', '-c', 'gcc -O2 -Wall -x c -o /tmp/a - -lm && /tmp/a'],
        stdin: C_SOURCE,
      });
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('42 1.5\n');
      const s = await run({
        rootfs: box,
        argv: ['/bin/sh', '-c', 'cat > /tmp/a.c && cc -static -o /tmp/s /tmp/a.c -lm && /tmp/s'],
        stdin: C_SOURCE,
      });
      expect(s.stderr).toBe('');
      expect(s.stdout).toBe('42 1.5\n');
    },
  );

  it('cpp: g++ compiles against libstdc++ inside, and the program runs', { timeout: LONG }, async (ctx) => {
    const box = await profileRootfs('cpp');
    if (typeof box !== 'string') return ctx.skip(box.missing);
    const r = await run({
      rootfs: box,
      argv: ['/bin/sh', '-c', 'g++ -O2 -std=c++17 -x c++ -o /tmp/b - && /tmp/b'],
      stdin: CPP_SOURCE,
    });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('42\n');
  });
});

describe.skipIf(!hasGcc)('fixture programs under capsule', () => {
  let fixtures: string;
  beforeAll(async () => {
    // Not under /tmp: the sandbox mounts its own /tmp over the rootfs's, which would hide it.
    fixtures = await mkdtemp('/var/tmp/capsule-rootfs-test-');
  });
  afterAll(async () => removeDir(fixtures));

  it(
    'a GPU-style program dlopen()s the driver library through the rootfs ld.so cache',
    { timeout: LONG },
    async () => {
      await chmod(fixtures, 0o755);
      const driver = join(fixtures, 'driver');
      await mkdir(driver);
      await compile(join(driver, 'libcuda.so.535.104.05'), 'int cuInit(unsigned f){return (int)f;}', [
        '-shared',
        '-fPIC',
        '-Wl,-soname,libcuda.so.1',
      ]);
      await symlink('libcuda.so.535.104.05', join(driver, 'libcuda.so.1'));
      const server = await compile(
        join(fixtures, 'server'),
        '#include <dlfcn.h>\n#include <stdio.h>\nint main(void){void*h=dlopen("libcuda.so.1",RTLD_NOW);' +
          'if(!h){puts(dlerror());return 1;} int(*f)(unsigned)=(int(*)(unsigned))dlsym(h,"cuInit");' +
          'printf("cuInit=%d\\n", f(0));return 0;}',
        ['-ldl'],
      );
      const box = join(tmp, 'gpu');
      await buildRootfs({ dir: box, programs: [server], gpu: true, gpuRoots: [driver] });
      const r = await run({ rootfs: box, argv: [server] });
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('cuInit=0\n');
      // The same program in a rootfs built without --include-gpu-libs: the failure it fixes.
      await buildRootfs({ dir: join(tmp, 'gpu-none'), programs: [server] });
      const without = await run({ rootfs: join(tmp, 'gpu-none'), argv: [server] });
      expect(without.exitCode).toBe(1);
      expect(without.stdout).toContain('libcuda.so.1: cannot open shared object file');
    },
  );

  it(
    'runs without LD_LIBRARY_PATH (the loader expands $ORIGIN from /proc/self/exe)',
    { timeout: LONG },
    async () => {
      await mkdir(join(fixtures, 'lib'));
      await mkdir(join(fixtures, 'bin'));
      const lib = await compile(join(fixtures, 'lib', 'libfix.so.7'), 'int fix(void){return 42;}', [
        '-shared',
        '-fPIC',
        '-Wl,-soname,libfix.so.7',
      ]);
      const prog = await compile(
        join(fixtures, 'bin', 'prog'),
        '#include <stdio.h>\nint fix(void); int main(void){printf("%d\\n", fix());return 0;}',
        ['-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib', lib],
      );
      await chmod(fixtures, 0o755);
      const box = join(tmp, 'origin');
      await buildRootfs({ dir: box, programs: [prog] });
      const r = await run({ rootfs: box, argv: [prog] });
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('42\n');
    },
  );
});
