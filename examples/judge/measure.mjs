/**
 * What capsule costs an accepted solution, per language: the wall-clock time of a whole run
 * under capsule (strict, limits, the same rootfs as judge.mjs) against the same program run
 * directly on the host, interleaved, medians of RUNS each after a warm-up. Then, for the JVM
 * and Go, what they reserve (VmPeak, from /proc/self/status inside the sandbox) against the peak
 * memory capsule counts (the cgroup's, what was touched).
 *
 *   node examples/judge/measure.mjs [RUNS]      (as root, after npm run build:ts)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { run } from 'capsule';

import { LANGUAGES, MEMORY_LIMIT_BYTES } from './languages.mjs';

const RUNS = Number(process.argv[2] ?? 21);
const INPUT = '2 3\n';
const here = import.meta.dirname;
const work = mkdtempSync(join(tmpdir(), 'capsule-measure-'));
const rootfs = join(work, 'rootfs');
for (const d of ['proc', 'dev', 'tmp', 'usr', 'etc', 'box']) mkdirSync(join(rootfs, d), { recursive: true });
for (const d of ['bin', 'lib', 'lib64', 'sbin']) symlinkSync(`usr/${d}`, join(rootfs, d));

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const EXT = { c: 'c', cpp: 'cc', python3: 'py', java: 'java', go: 'go', javascript: 'js' };

/** The sandbox path /box/x is `box`/x on the host: the plain run uses host paths. */
const onHost = (argv, box) => argv.map((a) => a.replace(/^\/box/, box));

function sandboxed(lang, box, argv = lang.run) {
  return run({
    rootfs,
    argv,
    cwd: '/box',
    binds: [
      { source: '/usr', target: '/usr' },
      { source: '/etc', target: '/etc' },
      { source: box, target: '/box' },
    ],
    env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8', HOME: '/box' },
    stdin: INPUT,
    seccomp: 'strict',
    cpuTimeLimitMs: 10_000,
    memoryLimitBytes: MEMORY_LIMIT_BYTES,
    pidsLimit: 64,
  });
}

const rows = [];
try {
  for (const [key, lang] of Object.entries(LANGUAGES)) {
    const box = join(work, key);
    mkdirSync(box);
    chmodSync(box, 0o777);
    cpSync(join(here, 'submissions', key, `ac.${EXT[key]}`), join(box, lang.source));
    if (lang.compile) {
      execFileSync(onHost(lang.compile, box)[0], onHost(lang.compile, box).slice(1), {
        cwd: box,
        env: { ...process.env, GOCACHE: join(box, '.cache'), CGO_ENABLED: '0', HOME: box },
      });
    }
    const plain = [];
    const capsule = [];
    for (let i = 0; i < RUNS + 2; i++) {
      const t0 = performance.now();
      const p = spawnSync(onHost(lang.run, box)[0], onHost(lang.run, box).slice(1), {
        input: INPUT,
        cwd: box,
        env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8', HOME: box },
      });
      const t1 = performance.now();
      const r = await sandboxed(lang, box);
      const t2 = performance.now();
      if (p.stdout.toString() !== '5\n' || r.stdout !== '5\n') throw new Error(`${lang.name}: wrong output`);
      if (i >= 2) {
        plain.push(t1 - t0);
        capsule.push(t2 - t1);
      }
    }
    const p50 = median(plain);
    const c50 = median(capsule);
    rows.push({ lang: lang.name, plain: p50, capsule: c50 });
    console.log(
      `${lang.name.padEnd(11)} plain ${p50.toFixed(1).padStart(7)} ms   capsule ${c50.toFixed(1).padStart(7)} ms   +${(c50 - p50).toFixed(1)} ms`,
    );
  }
  /* Reserved against touched: VmPeak inside the sandbox, capsule's peak from the cgroup. */
  const vm = join(work, 'vm');
  mkdirSync(vm);
  chmodSync(vm, 0o777);
  writeFileSync(
    join(vm, 'Main.java'),
    /* java.io, not java.nio.file: loading libnet probes IPv6 with a socket, a violation under strict. */
    'public class Main { public static void main(String[] a) throws Exception { var r = new java.io.BufferedReader(new java.io.FileReader("/proc/self/status")); for (String l; (l = r.readLine()) != null; ) if (l.startsWith("VmPeak")) System.out.println(l); } }\n',
  );
  execFileSync('javac', [
    '-J-XX:-UsePerfData',
    '-d',
    vm,
    join(vm, 'Main.java'),
  ]); /* no /tmp/hsperfdata_root left */
  writeFileSync(
    join(vm, 'main.go'),
    'package main\nimport ("fmt"; "os"; "strings")\nfunc main() { b, _ := os.ReadFile("/proc/self/status"); for _, l := range strings.Split(string(b), "\\n") { if strings.HasPrefix(l, "VmPeak") { fmt.Println(l) } } }\n',
  );
  execFileSync('go', ['build', '-o', join(vm, 'main'), join(vm, 'main.go')], {
    cwd: vm,
    env: { ...process.env, GOCACHE: join(vm, '.cache'), CGO_ENABLED: '0', HOME: vm },
  });
  for (const [name, argv] of [
    ['Java', [...LANGUAGES.java.run.slice(0, -3), '-cp', '/box', 'Main']],
    ['Go', ['/box/main']],
  ]) {
    const r = await sandboxed({}, vm, argv);
    if (r.verdict !== 'OK')
      throw new Error(`${name}: ${r.verdict} ${JSON.stringify(r.violation)} ${r.stderr}`);
    console.log(
      `${name.padEnd(11)} ${r.stdout.trim().replace(/\s+/g, ' ')} reserved; peak memory counted by capsule ${(r.peakMemoryBytes / 2 ** 20).toFixed(1)} MiB (limit ${MEMORY_LIMIT_BYTES / 2 ** 20} MiB)`,
    );
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
