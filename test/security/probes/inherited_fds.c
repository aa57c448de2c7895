/* inherited_fds: any descriptor beyond stdio is something of the host's (a socket, a file, a pipe). */
#include <dirent.h>

#include "escape.h"

int main(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) contained("cannot list /proc/self/fd: %s", err());
  struct dirent *de;
  char path[64], target[256];
  while ((de = readdir(d))) {
    int fd = atoi(de->d_name);
    if (de->d_name[0] == '.' || fd <= 2 || fd == dirfd(d)) continue;
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    long n = readlink(path, target, sizeof target - 1);
    target[n < 0 ? 0 : n] = 0;
    escaped("inherited descriptor %d -> %s", fd, target);
  }
  contained("only stdin, stdout and stderr");
}
