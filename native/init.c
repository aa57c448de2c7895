/*
 * capsule-init: PID 1 of every sandbox.
 *
 * The first process of a PID namespace has duties no ordinary program
 * expects (pid_namespaces(7)): orphans are reparented to it and stay zombies
 * unless it reaps them, the kernel drops signals it has no handler for (so a
 * plain program as PID 1 ignores SIGTERM), and when it exits every other
 * process in the namespace is killed. capsule-init takes those duties so the
 * program does not have to, in the manner of tini and bubblewrap's PID 1:
 *
 *   1. fork the program (fork_program); the child loads the seccomp filter
 *      (load_seccomp, issue 3) and execs it (exec);
 *   2. wait with every signal blocked, via sigwaitinfo(2): SIGCHLD means
 *      reap, SIGTERM/SIGINT/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 are forwarded;
 *   3. when the program ends, or capsule sends CAPSULE_SIG_TERMINATE, kill
 *      whatever is left, reap it all, and write the program's wait status
 *      and its rusage to capsule on the status pipe.
 *
 * capsule execs this file by descriptor after every privileged step: it runs
 * as the sandbox's user with no capabilities. It is a normal, statically
 * linked program; the raw-syscall rules of the launch do not apply here.
 *
 * argv: { "capsule-init", program, args... }   envp: the program's.
 * fds: 0-2 stdio, 3 error pipe, 4 status pipe, 5 seccomp program (optional).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "steps.h"

static void report_error(enum capsule_step step, int err, const char *detail) {
  struct capsule_error_record rec;
  memset(&rec, 0, sizeof rec);
  rec.magic = CAPSULE_ERROR_MAGIC;
  rec.step = step;
  rec.err = err;
  strncpy(rec.detail, detail, sizeof rec.detail - 1);
  ssize_t n = write(CAPSULE_FD_ERROR, &rec, sizeof rec);
  (void)n;
}

static int forwarded(int sig) {
  return sig == SIGTERM || sig == SIGINT || sig == SIGHUP || sig == SIGQUIT || sig == SIGUSR1 ||
         sig == SIGUSR2 || sig == SIGWINCH;
}

/* The child half: becomes the program. Never returns. */
static void run_program(char **argv, char **envp) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  execve(argv[0], argv, envp);
  int err = errno;
  report_error(STEP_exec, err, argv[0]);
  _exit(err == ENOENT ? 127 : 126);
}

int main(int argc, char **argv, char **envp) {
  if (argc < 2) return 125;
  /* The pipes are for capsule-init alone: the program must not inherit them. */
  fcntl(CAPSULE_FD_ERROR, F_SETFD, FD_CLOEXEC);
  fcntl(CAPSULE_FD_STATUS, F_SETFD, FD_CLOEXEC);
  fcntl(CAPSULE_FD_SECCOMP, F_SETFD, FD_CLOEXEC);

  /* Every signal stays blocked (as the launch left it) so that sigwaitinfo sees them all. */
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, NULL);

  pid_t program = fork();
  if (program < 0) {
    report_error(STEP_fork_program, errno, argv[1]);
    return 125;
  }
  if (program == 0) run_program(argv + 1, envp);

  /* The error pipe now belongs to the program's exec: closing ours lets capsule see its EOF. */
  close(CAPSULE_FD_ERROR);

  int status = 0;
  for (;;) {
    siginfo_t si;
    int sig = sigwaitinfo(&all, &si);
    if (sig < 0) continue; /* EINTR */
    if (sig == SIGCHLD) {
      int st, done = 0;
      pid_t p;
      while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
        if (p == program) {
          status = st;
          done = 1;
        }
      }
      if (done) break;
    } else if (sig == CAPSULE_SIG_TERMINATE) {
      status = SIGKILL; /* as if killed: the caller knows why, it sent this */
      break;
    } else if (forwarded(sig)) {
      kill(program, sig);
    }
  }

  /*
   * The program is gone: end everything it left behind (kill(2) with -1 from
   * PID 1 reaches every other process of the namespace) and reap it all, so
   * their CPU time is counted in the rusage capsule reads from us.
   */
  kill(-1, SIGKILL);
  while (waitpid(-1, NULL, 0) > 0 || errno == EINTR) {
  }

  struct rusage ru;
  getrusage(RUSAGE_CHILDREN, &ru);
  struct capsule_init_report report = {
      CAPSULE_REPORT_MAGIC,
      status,
      (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
      (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec,
      ru.ru_maxrss,
  };
  ssize_t n = write(CAPSULE_FD_STATUS, &report, sizeof report);
  (void)n;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}
