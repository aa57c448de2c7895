/*
 * modules: loading and removing kernel modules, and kexec. The permission
 * check comes first (CAP_SYS_MODULE, CAP_SYS_BOOT), so invalid arguments
 * tell it apart without loading anything: EBADF, ENOENT or EINVAL mean the
 * call was allowed.
 */
#include "escape.h"

int main(void) {
  if (syscall(SYS_finit_module, -1, "", 0) == 0 || errno == EBADF)
    escaped("finit_module got past the permission check (%s)", err());
  const char *f = err();
  if (syscall(SYS_delete_module, "capsule_no_such_module", O_NONBLOCK) == 0 || errno == ENOENT)
    escaped("delete_module got past the permission check (%s)", err());
  const char *d = err();
  /* KEXEC_SEGMENT_MAX is 16: 1000 segments fail with EINVAL after the CAP_SYS_BOOT check. */
  if (syscall(SYS_kexec_load, 0, 1000, NULL, 0) == 0 || errno == EINVAL)
    escaped("kexec_load got past the permission check (%s)", err());
  contained("finit_module: %s, delete_module: %s, kexec_load: %s", f, d, err());
}
