/*
 * proc_root_walk SECRET: /proc/PID/root is a magic link to that process's
 * root directory, followed without the caller's own root in the way. If PID 1
 * (or any visible process) had the host's root, its link is a way out.
 */
#include "escape.h"

int main(int argc, char **argv) {
  const char *secret = arg(argc, argv, 1, "/nonexistent");
  const char *roots[] = {"/proc/1/root", "/proc/self/root/../../../..", "/proc/1/cwd/../../../..",
                         "/proc/2/root", "/proc/self/cwd/../../../.."};
  char path[4096], buf[256];
  const char *why = "";
  for (unsigned i = 0; i < sizeof roots / sizeof roots[0]; i++) {
    snprintf(path, sizeof path, "%s%s", roots[i], secret);
    if (slurp(path, buf, sizeof buf) >= 0) escaped("read %s: %s", path, buf);
    if (i == 0) why = err();
  }
  contained("%s via /proc/1/root: %s", secret, why);
}
