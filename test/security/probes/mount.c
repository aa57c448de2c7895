/*
 * mount: mount(2) checks CAP_SYS_ADMIN (may_mount) before it looks up the
 * filesystem type, so a type that does not exist tells permission apart
 * without mounting anything: ENODEV means the call was allowed.
 */
#include <sys/mount.h>

#include "escape.h"

int main(void) {
  if (mount("none", "/", "capsule-no-such-fs", 0, NULL) == 0) escaped("mount succeeded");
  if (errno == ENODEV) escaped("mount(2) got past the permission check (ENODEV for the bogus type)");
  contained("mount: %s", err());
}
