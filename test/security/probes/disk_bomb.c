/* disk_bomb DIR MIB: write MIB MiB into DIR (a tmpfs inside: RAM). ESCAPED when all of it fits. */
#include "escape.h"

int main(int argc, char **argv) {
  const char *dir = arg(argc, argv, 1, "/tmp");
  long mib = atol(arg(argc, argv, 2, "128"));
  char path[4096];
  snprintf(path, sizeof path, "%s/capsule-disk-bomb-%d", dir, getpid());
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) contained("create %s: %s", path, err());
  static char buf[1 << 20];
  memset(buf, 'x', sizeof buf);
  long i = 0;
  for (; i < mib; i++)
    if (write(fd, buf, sizeof buf) != (long)sizeof buf) break;
  int e = errno;
  close(fd);
  unlink(path);
  if (i == mib) escaped("wrote %ld MiB to %s", mib, dir);
  errno = e;
  contained("write failed after %ld MiB: %s", i, err());
}
