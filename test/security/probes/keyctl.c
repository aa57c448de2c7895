/*
 * keyctl: the kernel keyring is not namespaced (keyrings(7)); add a key to
 * our own process keyring (harmless: it dies with us).
 */
#include <linux/keyctl.h>

#include "escape.h"

int main(void) {
  long k = syscall(SYS_add_key, "user", "capsule-probe", "x", 1, KEY_SPEC_PROCESS_KEYRING);
  if (k >= 0) escaped("add_key made key %ld", k);
  const char *a = err();
  long r = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0);
  if (r >= 0) escaped("keyctl reached the user keyring %ld", r);
  contained("add_key: %s, keyctl: %s", a, err());
}
