/* hostname NAME: sethostname(2); the sandbox has its own UTS namespace and no CAP_SYS_ADMIN. */
#include "escape.h"

int main(int argc, char **argv) {
  const char *name = arg(argc, argv, 1, "capsule-pwned");
  if (sethostname(name, strlen(name)) == 0) escaped("sethostname(%s)", name);
  contained("sethostname: %s", err());
}
