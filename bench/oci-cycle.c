/*
 * bench/oci.ts's timer: N times `RUNTIME... create --bundle B --pid-file P ID`, `start ID`,
 * wait for the container's process to exit, `delete ID`, one line of milliseconds per run
 * (total create start wait delete). It is a child subreaper (prctl(2) PR_SET_CHILD_SUBREAPER),
 * so the container's first process, which the runtime's create leaves behind when it exits,
 * is re-parented to it and waitpid(2) both sees the exit at once and reaps it: on this machine
 * PID 1 reaps orphans only now and then, and a zombie left in a v1 cgroup keeps the runtime's
 * delete from removing that cgroup. A runtime that keeps a process of its own as the
 * container's parent is waited for by polling /proc/PID/stat instead.
 *
 *   oci-cycle N WARM BUNDLE PIDFILE IDPREFIX RUNTIME [GLOBAL-FLAGS...]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Run the runtime with its global flags and `sub...`; exit on failure, naming the step. */
static void run(char **global, int nglobal, const char *const *sub) {
  char *argv[64];
  int n = 0;
  for (int i = 0; i < nglobal && n < 50; i++) argv[n++] = global[i];
  for (int i = 0; sub[i] && n < 63; i++) argv[n++] = (char *)sub[i];
  argv[n] = NULL;
  pid_t pid = fork();
  if (pid < 0) {
    perror("oci-cycle: fork");
    exit(1);
  }
  if (pid == 0) {
    execvp(argv[0], argv);
    fprintf(stderr, "oci-cycle: exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) {
      perror("oci-cycle: waitpid");
      exit(1);
    }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "oci-cycle: %s %s failed (status %d)\n", argv[0], sub[0], st);
    exit(1);
  }
}

static pid_t read_pid(const char *file) {
  FILE *f = fopen(file, "r");
  long pid = 0;
  if (!f || fscanf(f, "%ld", &pid) != 1 || pid <= 0) {
    fprintf(stderr, "oci-cycle: no pid in the pid file %s\n", file);
    exit(1);
  }
  fclose(f);
  return (pid_t)pid;
}

/* The container's process has exited: reaped as our child, or gone or a zombie elsewhere. */
static void wait_exit(pid_t pid) {
  int st;
  if (waitpid(pid, &st, 0) == pid) return;
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  for (;;) {
    FILE *f = fopen(path, "r");
    if (!f) return;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = 0;
    char *p = strrchr(buf, ')');
    if (!p || p[2] == 'Z' || p[2] == 'X') return;
    usleep(100);
  }
}

int main(int argc, char **argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: oci-cycle N WARM BUNDLE PIDFILE IDPREFIX RUNTIME [GLOBAL-FLAGS...]\n");
    return 2;
  }
  int n = atoi(argv[1]), warm = atoi(argv[2]);
  const char *bundle = argv[3], *pidfile = argv[4], *prefix = argv[5];
  char **global = argv + 6;
  int nglobal = argc - 6;
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
    perror("oci-cycle: prctl(PR_SET_CHILD_SUBREAPER)");
    return 1;
  }
  for (int i = 0; i < warm + n; i++) {
    char id[128];
    snprintf(id, sizeof id, "%s-%d", prefix, i);
    unlink(pidfile);
    double t0 = now_ms();
    run(global, nglobal, (const char *const[]){"create", "--bundle", bundle, "--pid-file", pidfile, id, NULL});
    double t1 = now_ms();
    pid_t pid = read_pid(pidfile);
    run(global, nglobal, (const char *const[]){"start", id, NULL});
    double t2 = now_ms();
    wait_exit(pid);
    double t3 = now_ms();
    run(global, nglobal, (const char *const[]){"delete", id, NULL});
    double t4 = now_ms();
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    if (i >= warm) printf("%.4f %.4f %.4f %.4f %.4f\n", t4 - t0, t1 - t0, t2 - t1, t3 - t2, t4 - t3);
  }
  return 0;
}
