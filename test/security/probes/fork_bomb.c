/*
 * fork_bomb N: start N processes that stay alive. ESCAPED when all N exist at
 * once (nothing limited it); CONTAINED when fork fails first. Bounded, so the
 * outside run proves the probe without harming the host: the children are
 * killed before it exits.
 */
#include <signal.h>
#include <sys/wait.h>

#include "escape.h"

int main(int argc, char **argv) {
  int n = atoi(arg(argc, argv, 1, "200"));
  pid_t *kids = calloc(n, sizeof *kids);
  int made = 0;
  for (; made < n; made++) {
    pid_t p = fork();
    if (p == 0) {
      pause();
      _exit(0);
    }
    if (p < 0) break;
    kids[made] = p;
  }
  int e = errno;
  for (int i = 0; i < made; i++) kill(kids[i], SIGKILL);
  for (int i = 0; i < made; i++) waitpid(kids[i], NULL, 0);
  if (made == n) escaped("%d processes alive at once", n);
  errno = e;
  contained("fork failed after %d processes: %s", made, err());
}
