/* setuid_root: become uid 0 (setuid(2) needs CAP_SETUID). */
#include "escape.h"

int main(void) {
  if (setuid(0) == 0 && getuid() == 0 && geteuid() == 0) escaped("setuid(0): now root");
  contained("setuid(0): %s (uid %d)", err(), getuid());
}
