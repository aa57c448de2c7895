/*
 * The escape probes' common protocol. Each probe tries one way out of a
 * sandbox and prints one line:
 *
 *   ESCAPED: what it got           the way out worked (or would have)
 *   CONTAINED: what stopped it     with the errno name the kernel returned
 *
 * and exits 0. test/security/escape.test.ts runs every probe inside capsule
 * (expecting CONTAINED, or death by the seccomp filter) and outside it
 * (expecting ESCAPED), so each probe is shown able to fail.
 */
#ifndef CAPSULE_ESCAPE_H
#define CAPSULE_ESCAPE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* the tests compile with -D_GNU_SOURCE: probes include system headers first */
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static inline void report(const char *verdict, const char *fmt, va_list ap) {
  printf("%s: ", verdict);
  vprintf(fmt, ap);
  putchar('\n');
  fflush(stdout);
}

__attribute__((noreturn, format(printf, 1, 2))) static inline void escaped(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  report("ESCAPED", fmt, ap);
  va_end(ap);
  exit(0);
}

__attribute__((noreturn, format(printf, 1, 2))) static inline void contained(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  report("CONTAINED", fmt, ap);
  va_end(ap);
  exit(0);
}

/* errno's symbolic name (EPERM), which is what the tests and a reader want. */
static inline const char *err(void) {
  const char *n = strerrorname_np(errno);
  return n ? n : "E?";
}

static inline const char *arg(int argc, char **argv, int i, const char *fallback) {
  return i < argc ? argv[i] : fallback;
}

/* Read a whole small file into buf; returns bytes read or -1 with errno. */
static inline long slurp(const char *path, char *buf, size_t n) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  long got = 0, r;
  while (got + 1 < (long)n && (r = read(fd, buf + got, n - 1 - got)) > 0) got += r;
  int e = errno;
  close(fd);
  errno = e;
  buf[got < 0 ? 0 : got] = 0;
  return got;
}

#endif
