/* reboot: reboot(2) checks CAP_SYS_BOOT before its magic numbers; bad magic returns EINVAL if allowed. */
#include "escape.h"

int main(void) {
  if (syscall(SYS_reboot, 0, 0, 0, NULL) == 0 || errno == EINVAL)
    escaped("reboot(2) got past the permission check (%s)", err());
  contained("reboot: %s", err());
}
