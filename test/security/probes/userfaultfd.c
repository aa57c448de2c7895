/* userfaultfd: UFFD_USER_MODE_ONLY is open to unprivileged users; kernel exploits use it to win races. */
#include <linux/userfaultfd.h>

#include "escape.h"

int main(void) {
  long fd = syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
  if (fd >= 0) escaped("userfaultfd = %ld", fd);
  contained("userfaultfd: %s", err());
}
