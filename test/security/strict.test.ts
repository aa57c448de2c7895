/**
 * The strict profile against what it is for: judge submissions. A C and a
 * C++ program (static, as judges build them), a CPython script with the
 * usual imports, a C program with threads, a Go binary, a JVM and node run
 * to completion; anything beyond computing (a socket, a new process) is a
 * SECURITY_VIOLATION naming the call.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { buildRootfs } from '../../rootfs-tools/index.js';
import { run } from '../../src/index.js';
import { cleanup, type Fixture, makeFixture } from './fixtures.js';

const C = `#include <stdio.h>
#include <stdlib.h>
int main(void) {
  long a, s = 0;
  while (scanf("%ld", &a) == 1) s += a;
  char *p = malloc(64 << 20);
  for (int i = 0; i < (64 << 20); i += 4096) p[i] = 1;
  printf("%ld\\n", s);
  return 0;
}
`;

const CPP = `#include <bits/stdc++.h>
int main() {
  std::ios::sync_with_stdio(false);
  long n;
  std::vector<long> v;
  while (std::cin >> n) v.push_back(n);
  std::sort(v.begin(), v.end());
  std::map<long, int> m;
  for (long x : v) m[x]++;
  std::cout << v.size() << ' ' << m.size() << ' ' << v.back() << std::endl;
  return 0;
}
`;

const PY = `import sys, math, json, collections, itertools, functools, heapq, bisect, re, decimal, fractions, random
data = list(map(int, sys.stdin.read().split()))
print(sum(data), math.gcd(*data), json.dumps(collections.Counter(data).most_common(1)))
`;

const THREADS = `#include <pthread.h>
#include <stdio.h>
static long part[4];
static void *work(void *arg) {
  long i = (long)arg;
  for (long k = 0; k < 1000000; k++) part[i] += k % 7;
  return NULL;
}
int main(void) {
  pthread_t t[4];
  for (long i = 0; i < 4; i++) pthread_create(&t[i], NULL, work, (void *)i);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  printf("%ld\\n", part[0] + part[1] + part[2] + part[3]);
  return 0;
}
`;

const OPENMP = `#include <omp.h>
#include <stdio.h>
int main(void) {
  long s = 0;
#pragma omp parallel for reduction(+ : s) num_threads(4)
  for (long i = 0; i < 1000000; i++) s += i % 3;
  printf("%ld\\n", s);
  return 0;
}
`;

/* Threads until pthread_create fails; each sleeps. */
const THREAD_BOMB = `#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static void *idle(void *arg) { sleep(1000); return arg; }
int main(void) {
  int n = 0;
  pthread_t t;
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setstacksize(&a, 65536);
  while (n < 100000 && pthread_create(&t, &a, idle, NULL) == 0) n++;
  printf("%d\\n", n);
  return 0;
}
`;

const GO = `package main

import (
	"fmt"
	"sync"
)

func main() {
	var wg sync.WaitGroup
	sums := make([]int, 8)
	for i := range sums {
		wg.Add(1)
		go func(i int) { defer wg.Done(); for k := 0; k < 100000; k++ { sums[i] += k % 3 } }(i)
	}
	wg.Wait()
	t := 0
	for _, s := range sums {
		t += s
	}
	fmt.Println(t)
}
`;

const JAVA = `public class Main {
  public static void main(String[] a) throws Exception {
    Thread t = new Thread(() -> System.out.println("java thread ok"));
    t.start();
    t.join();
  }
}
`;

const HAS_PYTHON = existsSync('/usr/bin/python3');
const HAS_GO = existsSync('/usr/bin/go');
const HAS_JAVA = existsSync('/usr/bin/javac');
const HAS_NODE = existsSync('/usr/bin/node');
let f: Fixture;
let dir: string;
let hostRoot: string;

/** A run with the host's /usr and /etc read-only and `sol` at /sol, under strict. */
function inHost(argv: string[], sol: string) {
  return run({
    rootfs: hostRoot,
    argv,
    binds: [
      { source: '/usr', target: '/usr' },
      { source: '/etc', target: '/etc' },
      { source: sol, target: '/sol' },
    ],
    env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' },
    seccomp: 'strict',
    memoryLimitBytes: 1024 * 1024 * 1024,
  });
}

beforeAll(async () => {
  f = await makeFixture(inject('probe'));
  dir = mkdtempSync(join(tmpdir(), 'capsule-strict-'));
  writeFileSync(join(dir, 'sol.c'), C);
  writeFileSync(join(dir, 'sol.cc'), CPP);
  execFileSync('cc', ['-O2', '-static', '-o', join(f.rootfs, 'sol-c'), join(dir, 'sol.c')]);
  execFileSync('c++', ['-O2', '-static', '-o', join(f.rootfs, 'sol-cc'), join(dir, 'sol.cc')]);
  writeFileSync(join(dir, 'threads.c'), THREADS);
  execFileSync('cc', ['-O2', '-static', '-pthread', '-o', join(f.rootfs, 'threads'), join(dir, 'threads.c')]);
  writeFileSync(join(dir, 'bomb.c'), THREAD_BOMB);
  execFileSync('cc', ['-O2', '-static', '-pthread', '-o', join(f.rootfs, 'bomb'), join(dir, 'bomb.c')]);
  writeFileSync(join(dir, 'omp.c'), OPENMP);
  execFileSync('cc', ['-O2', '-static', '-fopenmp', '-o', join(f.rootfs, 'omp'), join(dir, 'omp.c')], {
    stdio: 'ignore' /* ld warns that libgomp.a uses dlopen */,
  });
  if (HAS_GO) {
    writeFileSync(join(dir, 'main.go'), GO);
    execFileSync('go', ['build', '-o', join(f.rootfs, 'sol-go'), join(dir, 'main.go')], {
      cwd: dir,
      env: { ...process.env, CGO_ENABLED: '0', GOCACHE: join(dir, 'gocache'), GOPATH: join(dir, 'gopath') },
    });
  }
  if (HAS_JAVA) {
    mkdirSync(join(dir, 'java'));
    writeFileSync(join(dir, 'java', 'Main.java'), JAVA);
    /* -XX:-UsePerfData: the JVM under javac would leave /tmp/hsperfdata_root behind. */
    execFileSync('javac', ['-J-XX:-UsePerfData', '-d', join(dir, 'java'), join(dir, 'java', 'Main.java')]);
  }
  /* The host's /usr read-only, for the JVM and node (merged /usr: /bin, /lib, /lib64 are links into it). */
  hostRoot = join(dir, 'host-usr-root');
  for (const d of ['proc', 'dev', 'tmp', 'usr', 'etc', 'sol'])
    mkdirSync(join(hostRoot, d), { recursive: true });
  for (const d of ['bin', 'lib', 'lib64', 'sbin']) symlinkSync(`usr/${d}`, join(hostRoot, d));
  if (HAS_PYTHON) {
    await buildRootfs({ dir: join(dir, 'py'), profile: ['python3'], hardlink: true });
    writeFileSync(join(dir, 'py', 'solve.py'), PY);
  }
}, 120_000);
afterAll(async () => {
  await cleanup(f);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('strict runs judge submissions', () => {
  it('C: stdin, malloc, stdout', async () => {
    const r = await run({ rootfs: f.rootfs, argv: ['/sol-c'], stdin: '3 4 5\n', seccomp: 'strict' });
    expect(r.verdict).toBe('OK');
    expect(r.stdout).toBe('12\n');
  });

  it('C++: iostream, containers, exceptions machinery', async () => {
    const r = await run({ rootfs: f.rootfs, argv: ['/sol-cc'], stdin: '3 1 2 3\n', seccomp: 'strict' });
    expect(r.verdict).toBe('OK');
    expect(r.stdout).toBe('4 3 3\n');
  });

  it.skipIf(!HAS_PYTHON)('Python 3: the interpreter and the usual imports', async () => {
    const r = await run({
      rootfs: join(dir, 'py'),
      argv: ['/usr/bin/python3', '/solve.py'],
      stdin: '12 18 6\n',
      seccomp: 'strict',
    });
    expect(r.stderr).toBe('');
    expect(r.verdict).toBe('OK');
    expect(r.stdout).toBe('36 6 [[12, 1]]\n');
  });

  it.skipIf(!HAS_PYTHON)('Python 3: opening a socket is "forbidden syscall: socket"', async () => {
    const r = await run({
      rootfs: join(dir, 'py'),
      argv: ['/usr/bin/python3', '-c', 'import _socket; _socket.socket()'],
      seccomp: 'strict',
    });
    expect(r.verdict).toBe('SECURITY_VIOLATION');
    expect(r.violation?.syscall).toBe('socket');
  });

  it.skipIf(!HAS_PYTHON)('Python 3: os.fork is a violation, os.system too', async () => {
    for (const code of ['import os; os.fork()', 'import os; os.system("true")']) {
      const r = await run({
        rootfs: join(dir, 'py'),
        argv: ['/usr/bin/python3', '-c', code],
        seccomp: 'strict',
      });
      expect(r.verdict).toBe('SECURITY_VIOLATION');
      expect(['clone', 'clone3', 'fork', 'vfork']).toContain(r.violation?.syscall);
    }
  });

  it('C: four pthreads (clone3 is ENOSYS, glibc falls back to clone with CLONE_THREAD)', async () => {
    const r = await run({ rootfs: f.rootfs, argv: ['/threads'], seccomp: 'strict' });
    expect([r.verdict, r.violation, r.stdout]).toEqual(['OK', null, '11999988\n']);
  });

  it('threads count against pidsLimit: a thread bomb stops there (strict no longer stops it alone)', async () => {
    const r = await run({ rootfs: f.rootfs, argv: ['/bomb'], seccomp: 'strict', pidsLimit: 32 });
    expect(r.verdict).toBe('OK');
    expect(r.pidsLimitHit).toBe(true);
    /* 32 less capsule-init, its seccomp watcher and the main thread */
    expect(Number(r.stdout)).toBeGreaterThan(0);
    expect(Number(r.stdout)).toBeLessThanOrEqual(29);
  });

  it('C: OpenMP, libgomp starting its thread pool', async () => {
    const r = await run({ rootfs: f.rootfs, argv: ['/omp'], seccomp: 'strict' });
    expect([r.verdict, r.violation, r.stdout]).toEqual(['OK', null, '999999\n']);
  });

  it.skipIf(!HAS_GO)('Go: a static binary with goroutines on several threads (needs golang-go)', async () => {
    const r = await run({ rootfs: f.rootfs, argv: ['/sol-go'], seccomp: 'strict' });
    expect([r.verdict, r.violation, r.stderr, r.stdout]).toEqual(['OK', null, '', '799992\n']);
  });

  it.skipIf(!HAS_JAVA)(
    'Java: the JVM with its GC and compiler threads, and a thread of the program (needs default-jdk-headless)',
    async () => {
      const r = await inHost(
        ['/usr/bin/java', '-Xss8m', '-XX:-UsePerfData', '-cp', '/sol', 'Main'],
        join(dir, 'java'),
      );
      expect([r.verdict, r.violation, r.stderr, r.stdout]).toEqual(['OK', null, '', 'java thread ok\n']);
    },
    60_000,
  );

  it.skipIf(!HAS_NODE)('JavaScript: node with a worker thread (needs nodejs)', async () => {
    const r = await inHost(
      [
        '/usr/bin/node',
        '-e',
        'const { Worker } = require("node:worker_threads"); new Worker("console.log(\\"node ok\\")", { eval: true })',
      ],
      dir,
    );
    expect([r.verdict, r.violation, r.stderr, r.stdout]).toEqual(['OK', null, '', 'node ok\n']);
  });
});
