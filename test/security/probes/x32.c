/*
 * x32: the x32 ABI enters the kernel with the x86_64 AUDIT_ARCH and
 * __X32_SYSCALL_BIT (0x40000000) in the number. A filter that checks only
 * the arch and matches numbers lets unshare | 0x40000000 through. libseccomp
 * sends such numbers to the bad-arch action: the probe dies.
 */
#include <sched.h>

#include "escape.h"

int main(void) {
  long r = syscall(0x40000000 | SYS_unshare, CLONE_NEWUSER);
  if (r == 0) escaped("unshare(CLONE_NEWUSER) through the x32 ABI");
  contained("x32 unshare: %s", err());
}
