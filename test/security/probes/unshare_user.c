/*
 * unshare_user: a new user namespace gives its creator every capability in
 * it (user_namespaces(7)), and with them mount, raw sockets, and the kernel
 * code behind them: the first step of many container escapes. Tried with
 * unshare(2), then with clone(2), which the filter must catch by its flags.
 */
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>

#include "escape.h"

int main(void) {
  if (unshare(CLONE_NEWUSER) == 0) {
    char buf[4096];
    slurp("/proc/self/status", buf, sizeof buf);
    char *cap = strstr(buf, "CapEff:");
    escaped("unshare(CLONE_NEWUSER): %.*s", cap ? 24 : 2, cap ? cap : "ok");
  }
  const char *u = err();
  long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
  if (pid == 0) _exit(0);
  if (pid > 0) {
    waitpid(pid, NULL, 0);
    escaped("clone(CLONE_NEWUSER) made a child in a new user namespace");
  }
  contained("unshare(CLONE_NEWUSER): %s, clone(CLONE_NEWUSER): %s", u, err());
}
