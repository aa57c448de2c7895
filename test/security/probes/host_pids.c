/*
 * host_pids CANARY_PID PREFIX SUFFIX: can the sandbox see the host's
 * processes? A process of the host (the canary) carries PREFIX SUFFIX, joined,
 * in its argv; look for it at its host PID and anywhere in /proc. The marker
 * comes in two halves so that no argv in the sandbox holds it whole.
 */
#include <dirent.h>
#include <signal.h>

#include "escape.h"

int main(int argc, char **argv) {
  const char *pid = arg(argc, argv, 1, "1");
  char marker[256], path[512], buf[4096];
  snprintf(marker, sizeof marker, "%s%s", arg(argc, argv, 2, "capsule-canary-"), arg(argc, argv, 3, ""));
  DIR *d = opendir("/proc");
  struct dirent *de;
  int seen = 0;
  while (d && (de = readdir(d))) {
    if (de->d_name[0] < '0' || de->d_name[0] > '9') continue;
    seen++;
    snprintf(path, sizeof path, "/proc/%s/cmdline", de->d_name);
    long n = slurp(path, buf, sizeof buf);
    for (long i = 0; i < n; i++)
      if (!buf[i]) buf[i] = ' ';
    if (n > 0 && strstr(buf, marker)) escaped("the host's canary is visible as PID %s", de->d_name);
  }
  if (kill(atoi(pid), 0) == 0 && atoi(pid) > 2) escaped("kill(%s, 0) reached a host PID", pid);
  contained("%d processes visible, none of them the host's", seen);
}
