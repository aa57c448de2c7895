/*
 * Raw system calls for the child between clone and execve.
 *
 * Why not libc: the child shares the Node process's memory (CLONE_VM) while
 * Node's other threads keep running. A libc call could take a lock another
 * thread holds (malloc, stdio, the dynamic linker's lazy binding) and hang
 * forever, or write errno into the parent thread's TLS. These wrappers are a
 * single instruction each; they return -errno on failure and touch nothing
 * else. See vfork(2) and signal-safety(7) for the rules they follow.
 */
#ifndef CAPSULE_SYS_H
#define CAPSULE_SYS_H

#include <sys/syscall.h>

#if defined(__x86_64__)
static inline long sys6(long n, long a, long b, long c, long d, long e, long f) {
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}
#elif defined(__aarch64__)
static inline long sys6(long n, long a, long b, long c, long d, long e, long f) {
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  register long x4 __asm__("x4") = e;
  register long x5 __asm__("x5") = f;
  __asm__ volatile("svc 0"
                   : "+r"(x0)
                   : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                   : "memory");
  return x0;
}
#else
#error "capsule's child code supports x86_64 and aarch64"
#endif

#define SYS0(n) sys6((n), 0, 0, 0, 0, 0, 0)
#define SYS1(n, a) sys6((n), (long)(a), 0, 0, 0, 0, 0)
#define SYS2(n, a, b) sys6((n), (long)(a), (long)(b), 0, 0, 0, 0)
#define SYS3(n, a, b, c) sys6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define SYS4(n, a, b, c, d) sys6((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define SYS5(n, a, b, c, d, e) sys6((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

/* A failed raw call returns -4095..-1. */
static inline int sys_failed(long r) { return r < 0 && r > -4096; }

/* No libc string functions in the child: the compiler could not inline them. */
static inline unsigned long c_strlen(const char *s) {
  unsigned long n = 0;
  while (s[n]) n++;
  return n;
}

#endif
