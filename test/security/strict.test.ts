/**
 * The strict profile against what it is for: judge submissions. A C and a
 * C++ program (static, as judges build them) and a CPython script with the
 * usual imports run to completion; anything beyond computing is a
 * SECURITY_VIOLATION naming the call.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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

const HAS_PYTHON = existsSync('/usr/bin/python3');
let f: Fixture;
let dir: string;

beforeAll(async () => {
  f = await makeFixture(inject('probe'));
  dir = mkdtempSync(join(tmpdir(), 'capsule-strict-'));
  writeFileSync(join(dir, 'sol.c'), C);
  writeFileSync(join(dir, 'sol.cc'), CPP);
  execFileSync('cc', ['-O2', '-static', '-o', join(f.rootfs, 'sol-c'), join(dir, 'sol.c')]);
  execFileSync('c++', ['-O2', '-static', '-o', join(f.rootfs, 'sol-cc'), join(dir, 'sol.cc')]);
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
});
