/* env_leak: the host's environment (tokens, HOME, SSH_AUTH_SOCK) must not reach the program. */
#include "escape.h"

extern char **environ;

int main(void) {
  for (char **e = environ; *e; e++)
    if (strncmp(*e, "PATH=", 5) != 0) escaped("environment has %.40s", *e);
  contained("only PATH in the environment");
}
