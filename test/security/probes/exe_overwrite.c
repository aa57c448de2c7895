/*
 * exe_overwrite PID: CVE-2019-5736. runc's binary was reachable inside the
 * container as /proc/PID/exe of the runc process joining it; the exploit
 * held an O_PATH descriptor to it and, once runc had exec'd away, reopened
 * it for writing and replaced the host's runc. Here: /proc/PID/exe (PID 1 is
 * capsule-init inside) and /proc/self/exe, tried again for WAIT_MS so a
 * target that exits meanwhile is caught writable.
 */
#include <time.h>

#include "escape.h"

int main(int argc, char **argv) {
  const char *pid = arg(argc, argv, 1, "1");
  int wait_ms = atoi(arg(argc, argv, 2, "300"));
  char path[64], fdpath[64];
  snprintf(path, sizeof path, "/proc/%s/exe", pid);
  int fd = open(path, O_WRONLY);
  if (fd >= 0) escaped("%s is open for writing", path);
  const char *direct = err();
  int pathfd = open(path, O_PATH);
  if (pathfd < 0) {
    const char *opath = err();
    if (open("/proc/self/exe", O_WRONLY) >= 0) escaped("/proc/self/exe is open for writing");
    contained("%s: %s, O_PATH: %s, /proc/self/exe: %s", path, direct, opath, err());
  }
  snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", pathfd);
  for (int t = 0; t <= wait_ms; t += 10) {
    fd = open(fdpath, O_WRONLY);
    if (fd >= 0) escaped("reopened %s for writing through its O_PATH descriptor", path);
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  const char *reopen = err();
  if (open("/proc/self/exe", O_WRONLY) >= 0) escaped("/proc/self/exe is open for writing");
  contained("%s: %s, reopened: %s, /proc/self/exe: %s", path, direct, reopen, err());
}
