/*
 * syscall_scan: a helper, not a probe. Makes each system call given by number
 * and prints the ones that came back with EPERM or ENOSYS, which is what a
 * seccomp filter answers for a call it refuses:
 *
 *   syscall_scan FIRST-LAST|NR ...    e.g. syscall_scan 0-470
 *
 * prints "NR ERRNAME" per refused call, one a line, in order. Every call gets
 * the arguments -1 (a bad descriptor, a bad pointer, an invalid flag set), so
 * that those the filter lets through fail in the kernel without doing
 * anything, and runs in a child of its own: a call that blocks (pause), ends
 * the process (exit) or forks counts as "reached the kernel", as does a child
 * that does not answer within a second. test/security/seccomp.test.ts
 * compares its output under capsule, under runc and under no filter.
 */
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include "escape.h"

/* 0: reached the kernel (or an answer other than EPERM/ENOSYS); else the errno. */
static int try_call(long nr) {
  int p[2];
  if (pipe(p) < 0) return -1;
  pid_t self = getpid();
  pid_t child = fork();
  if (child < 0) return -1;
  if (child == 0) {
    close(p[0]);
    long r = syscall(nr, -1L, -1L, -1L, -1L, -1L, -1L);
    int e = errno;
    /* A fork-like call returns here twice: only the scanner's own child answers. */
    if (syscall(SYS_getppid) != self) _exit(0);
    int answer = (r == -1 && (e == EPERM || e == ENOSYS)) ? e : 0;
    if (write(p[1], &answer, sizeof answer) != sizeof answer) _exit(1);
    _exit(0);
  }
  close(p[1]);
  int answer = 0;
  struct pollfd pfd = {.fd = p[0], .events = POLLIN};
  if (poll(&pfd, 1, 1000) == 1 && read(p[0], &answer, sizeof answer) != sizeof answer) answer = 0;
  close(p[0]);
  kill(child, SIGKILL);
  while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {
  }
  return answer;
}

int main(int argc, char **argv) {
  /* The calls are made in children; a SIGPIPE or SIGCHLD must not end the scanner. */
  signal(SIGPIPE, SIG_IGN);
  for (int i = 1; i < argc; i++) {
    long first = 0, last = 0;
    if (sscanf(argv[i], "%ld-%ld", &first, &last) != 2) last = first;
    for (long nr = first; nr <= last; nr++) {
      int e = try_call(nr);
      if (e < 0) {
        printf("%ld scanner-failed %s\n", nr, strerror(errno));
        return 1;
      }
      if (e > 0) printf("%ld %s\n", nr, e == EPERM ? "EPERM" : "ENOSYS");
      fflush(stdout);
    }
  }
  return 0;
}
