/*
 * ptyhold: a helper, not a probe. Opens a pseudo-terminal pair, prints the
 * slave's path, and holds the master until stdin closes, so the test can give
 * a sandbox a terminal as its stdin.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void) {
  int m = posix_openpt(O_RDWR | O_NOCTTY);
  if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0) return 1;
  printf("%s\n", ptsname(m));
  fflush(stdout);
  char c;
  while (read(0, &c, 1) > 0) {
  }
  return 0;
}
