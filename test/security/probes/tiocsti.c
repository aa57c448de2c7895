/*
 * tiocsti: push characters into the terminal on stdin as if typed
 * (CVE-2017-5226 in bubblewrap, CVE-2016-7545 in SELinux's sandbox). When the
 * sandbox shares the caller's terminal, what it types runs in the caller's
 * shell after it exits. The kernel allows it on one's controlling terminal
 * (or with CAP_SYS_ADMIN); capsule's setsid leaves none, and the filter
 * denies the ioctl.
 */
#include <sys/ioctl.h>

#include "escape.h"

int main(void) {
  if (!isatty(0)) contained("stdin is not a terminal");
  char c = '#';
  if (ioctl(0, TIOCSTI, &c) == 0) escaped("TIOCSTI pushed a character into the terminal");
  const char *e = err();
  int tty = open("/dev/tty", O_RDWR);
  if (tty >= 0) escaped("/dev/tty opens: the terminal is our controlling terminal");
  contained("TIOCSTI: %s, /dev/tty: %s", e, err());
}
