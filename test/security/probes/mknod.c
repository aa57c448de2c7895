/* mknod DIR: make a /dev/mem node (1,1) of our own (CAP_MKNOD), then read kernel memory through it. */
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "escape.h"

int main(int argc, char **argv) {
  char path[4096];
  snprintf(path, sizeof path, "%s/capsule-mem-%d", arg(argc, argv, 1, "/tmp"), getpid());
  if (mknod(path, S_IFCHR | 0600, makedev(1, 1)) == 0) {
    int fd = open(path, O_RDONLY);
    const char *o = fd >= 0 ? "opened" : err();
    unlink(path);
    escaped("mknod %s (1,1): %s", path, o);
  }
  contained("mknod: %s", err());
}
