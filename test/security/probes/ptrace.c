/*
 * ptrace: attach to the parent (capsule-init inside the sandbox). PTRACE_SEIZE
 * does not stop the tracee, so outside the sandbox this is harmless.
 */
#include <sys/ptrace.h>

#include "escape.h"

int main(void) {
  pid_t target = getppid();
  if (ptrace(PTRACE_SEIZE, target, 0, 0) == 0) {
    ptrace(PTRACE_DETACH, target, 0, 0);
    escaped("PTRACE_SEIZE of PID %d", target);
  }
  contained("ptrace(PTRACE_SEIZE, %d): %s", target, err());
}
