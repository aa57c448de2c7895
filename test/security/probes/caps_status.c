/*
 * caps_status: what the kernel says about this process (proc(5)): any
 * capability in any set, no_new_privs off, or no seccomp filter is a way up.
 */
#include "escape.h"

static const char *field(const char *status, const char *key, char *out) {
  const char *p = strstr(status, key);
  out[0] = 0;
  if (p) sscanf(p + strlen(key), " %63s", out);
  return out;
}

int main(void) {
  char st[8192], v[6][64];
  if (slurp("/proc/self/status", st, sizeof st) < 0) contained("cannot read /proc/self/status: %s", err());
  const char *keys[] = {"CapPrm:", "CapEff:", "CapBnd:", "CapAmb:", "CapInh:"};
  for (int i = 0; i < 5; i++)
    if (strcmp(field(st, keys[i], v[i]), "0000000000000000") != 0) escaped("%s %s", keys[i], v[i]);
  if (strcmp(field(st, "NoNewPrivs:", v[5]), "1") != 0) escaped("NoNewPrivs: %s", v[5]);
  if (strcmp(field(st, "Seccomp:", v[5]), "2") != 0) escaped("Seccomp: %s (no filter)", v[5]);
  contained("no capabilities, NoNewPrivs 1, Seccomp 2 (filter)");
}
