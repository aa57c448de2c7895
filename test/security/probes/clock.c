/*
 * clock: the clock is not namespaced. settimeofday(NULL, NULL) checks
 * CAP_SYS_TIME and then changes nothing; adjtimex with an absurd tick is
 * refused with EINVAL only after the same check.
 */
#include <sys/timex.h>

#include "escape.h"

int main(void) {
  if (syscall(SYS_settimeofday, NULL, NULL) == 0) escaped("settimeofday was allowed");
  const char *s = err();
  struct timex t;
  memset(&t, 0, sizeof t);
  t.modes = ADJ_TICK;
  t.tick = 1;
  if (syscall(SYS_adjtimex, &t) >= 0 || errno == EINVAL) escaped("adjtimex(ADJ_TICK) got past the permission check");
  contained("settimeofday: %s, adjtimex: %s", s, err());
}
