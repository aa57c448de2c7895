/*
 * pivot_root: pivot_root(2) checks CAP_SYS_ADMIN before it looks at its
 * paths, so paths that do not exist tell permission apart safely: ENOENT
 * means it was allowed.
 */
#include "escape.h"

int main(void) {
  long r = syscall(SYS_pivot_root, "/capsule-none-new", "/capsule-none-old");
  if (r == 0 || errno == ENOENT) escaped("pivot_root(2) got past the permission check (%s)", r ? err() : "ok");
  contained("pivot_root: %s", err());
}
