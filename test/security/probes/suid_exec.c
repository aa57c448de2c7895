/*
 * suid_exec HELPER: run a set-user-ID-root program (HELPER prints its
 * effective uid), and check that /tmp, where a program could put its own,
 * is mounted nosuid. no_new_privs and nosuid mounts both ignore the bit.
 */
#include <sys/wait.h>

#include "escape.h"

int main(int argc, char **argv) {
  const char *helper = arg(argc, argv, 1, "/suid_helper");
  int p[2];
  if (pipe(p) != 0) contained("pipe: %s", err());
  pid_t pid = fork();
  if (pid == 0) {
    dup2(p[1], 1);
    execl(helper, helper, (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  char buf[64] = "";
  long n = read(p[0], buf, sizeof buf - 1);
  buf[n < 0 ? 0 : n] = 0;
  waitpid(pid, NULL, 0);
  if (strncmp(buf, "euid=0", 6) == 0 && getuid() != 0) escaped("set-user-ID %s ran as root", helper);
  char mi[16384];
  slurp("/proc/self/mountinfo", mi, sizeof mi);
  for (char *line = strtok(mi, "\n"); line; line = strtok(NULL, "\n")) {
    char mp[256], opts[256];
    if (sscanf(line, "%*s %*s %*s %*s %255s %255s", mp, opts) == 2 && strcmp(mp, "/tmp") == 0 && !strstr(opts, "nosuid"))
      escaped("/tmp is mounted without nosuid (%s)", opts);
  }
  contained("%s ran with %s; /tmp is nosuid", helper, buf[0] ? strtok(buf, "\n") : "nothing");
}
