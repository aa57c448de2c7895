/* io_uring: its operations do not pass through seccomp, so the ring itself must be out of reach. */
#include <linux/io_uring.h>

#include "escape.h"

int main(void) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  long fd = syscall(SYS_io_uring_setup, 4, &p);
  if (fd >= 0) escaped("io_uring_setup = %ld", fd);
  contained("io_uring_setup: %s", err());
}
