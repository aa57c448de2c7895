/* The floor every sandbox is compared to: vfork + execve + waitpid of one program, N times.
 * Prints one line per run: milliseconds. Usage: forkexec N PROGRAM */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  int n = atoi(argv[1]);
  char *args[] = {argv[2], NULL};
  for (int i = 0; i < n; i++) {
    double s = now();
    pid_t p = vfork();
    if (p == 0) {
      execv(argv[2], args);
      _exit(127);
    }
    waitpid(p, NULL, 0);
    printf("%.4f\n", now() - s);
  }
  return 0;
}
