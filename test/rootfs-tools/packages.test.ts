/**
 * Rootfs from Debian packages, end to end: `packages` (--package) and the java, go, node and rust
 * profiles built from this host's dpkg database and used under capsule; `rootfs check` warning
 * about an interpreter without its standard library; `rootfs check --run` listing what a program
 * looked for and did not find. A profile whose packages this host lacks is skipped, naming them.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { buildRootfs } from '../../rootfs-tools/build.js';
import { checkRootfs } from '../../rootfs-tools/check.js';
import { resolveProfiles } from '../../rootfs-tools/profile.js';
import { run } from '../../src/index.js';
import { makeTempDir, removeDir } from './fixtures.js';

const LONG = 180_000;
const cli = join(import.meta.dirname, '../../dist/capsule.mjs');
const HAS_DPKG = existsSync('/var/lib/dpkg/status');
const HAS_PYTHON = existsSync('/usr/bin/python3');
let tmp: string;
beforeAll(async () => {
  tmp = await makeTempDir();
});
afterAll(() => removeDir(tmp));

/** A profile that this host cannot build: the reason, for the skip. */
async function lacking(profile: string): Promise<string | null> {
  try {
    await resolveProfiles([profile]);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

function inBox(rootfs: string, script: string) {
  return run({
    rootfs,
    argv: ['/bin/sh', '-c', script],
    env: { PATH: '/usr/bin:/bin', HOME: '/tmp', LANG: 'C.UTF-8' },
    seccomp: 'compile',
    tmpSizeBytes: 512 * 1024 * 1024,
    memoryLimitBytes: 2 * 1024 * 1024 * 1024,
  });
}

describe.skipIf(!HAS_DPKG || !HAS_PYTHON)('--package python3', () => {
  it(
    'copies the packages python3 depends on, so its standard library is there and it starts',
    async () => {
      const dir = join(tmp, 'py-package');
      const r = await buildRootfs({ dir, packages: ['python3'], hardlink: true });
      const names = r.packages.map((p) => p.name);
      expect(names[0]).toBe('python3');
      expect(names.some((n) => /^libpython3\.\d+-stdlib$/.test(n))).toBe(true);
      expect(existsSync(join(dir, 'usr/share/doc'))).toBe(false);
      const ran = await run({
        rootfs: dir,
        argv: ['/usr/bin/python3', '-c', 'import encodings, json, decimal; print(json.dumps([1]))'],
      });
      expect([ran.verdict, ran.stdout, ran.stderr]).toEqual(['OK', '[1]\n', '']);
      const check = await checkRootfs(dir);
      expect(check.warnings.filter((w) => w.kind === 'runtime')).toEqual([]);
    },
    LONG,
  );

  it('rootfs check warns about python3 built from its ELF closure alone, which does not start', async () => {
    const dir = join(tmp, 'py-bin');
    await buildRootfs({ dir, programs: ['python3'], hardlink: true });
    const check = await checkRootfs(dir);
    expect(check.problems).toEqual([]);
    const runtime = check.warnings.filter((w) => w.kind === 'runtime');
    expect(runtime).toHaveLength(1);
    expect(runtime[0]).toMatchObject({
      file: expect.stringMatching(/^\/usr\/bin\/python3\.\d+$/),
      missing: expect.stringMatching(/^\/usr\/lib\/python3\.\d+\/encodings\/__init__\.py$/),
    });
    const ran = await run({ rootfs: dir, argv: ['/usr/bin/python3', '-c', 'print(1)'] });
    expect(ran.verdict).toBe('RUNTIME_ERROR');
    expect(ran.stderr).toContain("No module named 'encodings'");
  });

  it.skipIf(!existsSync('/usr/bin/strace'))(
    'rootfs check --run lists the paths python3 looked for and did not find, from its real calls (needs strace)',
    async () => {
      const dir = join(tmp, 'py-bin');
      const r = await promisify(execFile)(
        process.execPath,
        [cli, 'rootfs', 'check', dir, '--run', '/usr/bin/python3', '-c', 'print(1)'],
        { encoding: 'utf8' },
      ).catch((e: { stdout: string; stderr: string; code: number }) => e);
      const code = 'code' in r ? r.code : 0;
      expect(code).toBe(1);
      /* its stdlib directory, and the os.py it looks for to find it; not capsule's own set-up */
      expect(r.stdout).toMatch(/^not found: \/usr\/lib\/python3\.\d+ \(newfstatat: ENOENT\)$/m);
      expect(r.stdout).toMatch(/^not found: \/usr\/lib\/python3\.\d+\/os\.py \(newfstatat: ENOENT\)$/m);
      expect(r.stdout).toMatch(
        /\/usr\/bin\/python3 in .*: exited 1; looked for \d+ paths that are not there/,
      );
      expect(r.stderr).toContain("No module named 'encodings'");
    },
    LONG,
  );
});

const JAVA = '/usr/lib/jvm/java-17-openjdk-amd64/bin/java';
describe.skipIf(!existsSync(JAVA))('rootfs check and a JVM', () => {
  it('warns about a JVM built from its ELF closure alone (no lib/modules), which does not start', async () => {
    const dir = join(tmp, 'jvm-bin');
    await buildRootfs({ dir, programs: [JAVA], hardlink: true });
    const check = await checkRootfs(dir);
    expect(check.warnings.filter((w) => w.kind === 'runtime')).toEqual([
      {
        file: JAVA,
        missing: '/usr/lib/jvm/java-17-openjdk-amd64/lib/modules',
        kind: 'runtime',
        hint: expect.stringContaining('--profile java'),
      },
    ]);
    const ran = await run({ rootfs: dir, argv: [JAVA, '-version'] });
    expect(ran.verdict).not.toBe('OK');
  });
});

describe.skipIf(!HAS_DPKG)('profiles from packages', () => {
  const cases: Array<{ profile: string; script: string; out: string }> = [
    {
      profile: 'java',
      script:
        'cd /tmp && printf \'public class Main { public static void main(String[] a) { System.out.println("java ok"); } }\' > Main.java && javac Main.java && java -cp /tmp Main',
      out: 'java ok\n',
    },
    {
      profile: 'go',
      script:
        'cd /tmp && printf \'package main\\nimport "fmt"\\nfunc main() { fmt.Println("go ok") }\\n\' > m.go && GOCACHE=/tmp/c CGO_ENABLED=0 go build -o m m.go && ./m',
      out: 'go ok\n',
    },
    { profile: 'node', script: 'node -e \'console.log("node ok")\'', out: 'node ok\n' },
    {
      profile: 'rust',
      script: 'cd /tmp && echo \'fn main() { println!("rust ok"); }\' > r.rs && rustc -o r r.rs && ./r',
      out: 'rust ok\n',
    },
  ];
  for (const c of cases) {
    it(
      `${c.profile}: built from its packages, compiles or runs under the compile profile`,
      async (ctx) => {
        const why = await lacking(c.profile);
        if (why) return ctx.skip(why);
        const dir = join(tmp, c.profile);
        const built = await buildRootfs({ dir, profile: c.profile, hardlink: true });
        expect(built.packages.length).toBeGreaterThan(1);
        const r = await inBox(dir, c.script);
        expect([r.verdict, r.stdout]).toEqual(['OK', c.out]);
        const check = await checkRootfs(dir);
        expect(check.warnings.filter((w) => w.kind === 'runtime')).toEqual([]);
      },
      LONG,
    );
  }
});
