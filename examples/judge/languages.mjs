/**
 * The languages this judge offers: how to compile a submission (under the
 * `compile` seccomp profile, in a writable /box) and how to run it (under
 * `strict`, with /box read-only). Paths are inside the sandbox, whose /usr
 * and /etc are the host's, read-only.
 *
 * Limits per language: CPU time counts every thread of the sandbox (a JVM's
 * JIT and GC threads too), memory counts what is touched, not what is
 * reserved (the JVM's -Xmx1g heap and Go's arenas are reservations), and
 * pids counts threads.
 */
export const LANGUAGES = {
  c: {
    name: 'C',
    source: 'main.c',
    compile: ['/usr/bin/gcc', '-O2', '-std=gnu17', '-static', '-o', '/box/main', '/box/main.c', '-lm'],
    run: ['/box/main'],
    cpuTimeLimitMs: 1000,
  },
  cpp: {
    name: 'C++',
    source: 'main.cc',
    compile: ['/usr/bin/g++', '-O2', '-std=gnu++17', '-static', '-o', '/box/main', '/box/main.cc'],
    run: ['/box/main'],
    cpuTimeLimitMs: 1000,
  },
  python3: {
    name: 'Python 3',
    source: 'main.py',
    /* No compile step: a syntax error is a runtime error, as on most judges. */
    compile: null,
    run: ['/usr/bin/python3', '-S', '/box/main.py'],
    cpuTimeLimitMs: 2000,
  },
  java: {
    name: 'Java',
    source: 'Main.java',
    compile: ['/usr/bin/javac', '-encoding', 'UTF-8', '-d', '/box', '/box/Main.java'],
    run: ['/usr/bin/java', '-Xmx1g', '-Xss64m', '-XX:+UseSerialGC', '-cp', '/box', 'Main'],
    cpuTimeLimitMs: 2000,
  },
  go: {
    name: 'Go',
    source: 'main.go',
    compile: ['/usr/bin/go', 'build', '-o', '/box/main', '/box/main.go'],
    run: ['/box/main'],
    cpuTimeLimitMs: 1000,
  },
  javascript: {
    name: 'JavaScript',
    source: 'main.js',
    compile: null,
    run: ['/usr/bin/node', '/box/main.js'],
    cpuTimeLimitMs: 2000,
  },
};

/** The same for every language: the problem's limits. */
export const MEMORY_LIMIT_BYTES = 256 * 1024 * 1024;
export const OUTPUT_LIMIT_BYTES = 64 * 1024;
