/*
 * umount DIR: umount2(2) checks permission before whether DIR is a mount
 * point; EINVAL on a plain directory means it would have unmounted a real one
 * (such as the sandbox's /proc, uncovering the host's masked entries).
 */
#include <sys/mount.h>

#include "escape.h"

int main(int argc, char **argv) {
  const char *dir = arg(argc, argv, 1, "/etc");
  if (umount2(dir, MNT_DETACH) == 0) escaped("unmounted %s", dir);
  if (errno == EINVAL) escaped("umount2(%s) got past the permission check (EINVAL: not a mount point)", dir);
  contained("umount2: %s", err());
}
