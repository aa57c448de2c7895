/* root_write PATH: create a file in the rootfs, which is the host's directory. */
#include "escape.h"

int main(int argc, char **argv) {
  const char *path = arg(argc, argv, 1, "/capsule-probe-write");
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd >= 0) {
    unlink(path);
    escaped("created %s", path);
  }
  contained("create %s: %s", path, err());
}
