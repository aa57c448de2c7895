/*
 * seccomp-load FILE N: the kernel's cost of loading a seccomp filter, alone.
 * FILE holds a raw BPF program (what native/seccomp.cc exports). N times, a
 * fresh child sets no_new_privs and loads it with the flags capsule-init uses
 * (SECCOMP_FILTER_FLAG_NEW_LISTENER), timing only the seccomp(2) call; prints
 * the median in microseconds.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  static struct sock_filter filter[BPF_MAXINSNS];
  int fd = open(argv[1], O_RDONLY);
  long n = fd < 0 ? -1 : read(fd, filter, sizeof filter);
  if (n <= 0 || n % sizeof filter[0]) return 2;
  int runs = atoi(argv[2]);
  double *t = calloc(runs, sizeof *t);
  for (int i = 0; i < runs; i++) {
    int p[2];
    if (pipe(p) != 0) return 1;
    pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
      struct sock_fprog prog = {(unsigned short)(n / sizeof filter[0]), filter};
      double t0 = now_us();
      long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
      double d = r < 0 ? -1 : now_us() - t0;
      if (write(p[1], &d, sizeof d) != sizeof d) _exit(1);
      _exit(0);
    }
    if (read(p[0], &t[i], sizeof t[i]) != sizeof t[i] || t[i] < 0) return 1;
    waitpid(pid, NULL, 0);
    close(p[0]);
    close(p[1]);
  }
  qsort(t, runs, sizeof *t, cmp);
  printf("%.1f\n", t[runs / 2]);
  return 0;
}
