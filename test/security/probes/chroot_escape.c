/*
 * chroot_escape SECRET WORKDIR: the classic chroot(2) breakout. chroot into a
 * subdirectory without moving the cwd, and ".." from the cwd is no longer
 * stopped at the root: walk up and chroot(".") at the real root. A sandbox
 * built on chroot alone falls to this; pivot_root plus no CAP_SYS_CHROOT
 * (and the seccomp profile) stops it.
 */
#include <sys/stat.h>

#include "escape.h"

int main(int argc, char **argv) {
  const char *secret = arg(argc, argv, 1, "/nonexistent");
  const char *work = arg(argc, argv, 2, "/tmp");
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/capsule-chroot-%d", work, getpid());
  mkdir(dir, 0700);
  int r = chroot(dir);
  int e = errno;
  rmdir(dir);
  if (r == 0) {
    for (int i = 0; i < 64; i++)
      if (chdir("..") != 0) break;
    if (chroot(".") != 0) contained("chroot(\".\") after the walk: %s", err());
  }
  char buf[256];
  if (slurp(secret, buf, sizeof buf) >= 0) escaped("read %s: %s", secret, buf);
  errno = e;
  contained("chroot: %s; %s unreachable", r == 0 ? "ok" : err(), secret);
}
