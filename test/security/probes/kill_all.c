/*
 * kill_all: kill(-1, SIGKILL) signals every process the caller may signal
 * (kill(2)). Outside a PID namespace, that is every process of the same uid
 * on the host; inside, only the sandbox's. The test judges by the host's
 * canary, which runs under the same uid as the probe.
 */
#include <signal.h>

#include "escape.h"

int main(void) {
  int r = kill(-1, SIGKILL);
  if (r != 0) contained("kill(-1): %s", err());
  /* Our own PID namespace may have been emptied; the verdict is the canary's. */
  contained("kill(-1, SIGKILL) sent; the test checks the host's canary");
}
