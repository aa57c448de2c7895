/*
 * The seccomp benchmark's program, static: `syscall-prog` exits at once (the
 * per-run cost of loading a filter); `syscall-prog N` makes N getppid(2)
 * calls, the cheapest system call there is, so the filter's per-call cost is
 * most of what is measured.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 0;
  for (long i = 0; i < n; i++) syscall(SYS_getppid);
  return 0;
}
