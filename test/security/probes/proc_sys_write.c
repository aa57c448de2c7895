/*
 * proc_sys_write: /proc/sys/kernel/core_pattern (a "|program" there runs as
 * host root on the next crash) and /proc/sysrq-trigger (reboot, crash).
 * Uid 0 owns both by permission bits, capabilities or not. Only opened for
 * writing, never written.
 */
#include "escape.h"

int main(void) {
  const char *knobs[] = {"/proc/sys/kernel/core_pattern", "/proc/sysrq-trigger", "/proc/sys/kernel/modprobe"};
  char why[256] = "";
  for (unsigned i = 0; i < sizeof knobs / sizeof knobs[0]; i++) {
    int fd = open(knobs[i], O_WRONLY);
    if (fd >= 0) escaped("%s is open for writing", knobs[i]);
    size_t l = strlen(why);
    snprintf(why + l, sizeof why - l, "%s%s: %s", l ? ", " : "", knobs[i] + 6, err());
  }
  contained("%s", why);
}
