/*
 * int80: a 64-bit process can still make i386 system calls with int $0x80
 * (CONFIG_IA32_EMULATION), numbered by the i386 table: unshare is 310 there,
 * not 272. A filter that does not check AUDIT_ARCH matches the wrong calls.
 * libseccomp's arch check sends them to the bad-arch action: the probe dies.
 */
#include <sched.h>

#include "escape.h"

int main(void) {
#if defined(__x86_64__)
  long r;
  __asm__ volatile("int $0x80" : "=a"(r) : "a"(310), "b"(CLONE_NEWUSER) : "memory");
  if (r == 0) escaped("unshare(CLONE_NEWUSER) through int $0x80");
  errno = (int)-r;
  contained("int 0x80 unshare: %s", err());
#else
  contained("no int 0x80 on this architecture");
#endif
}
