/* perf_event_open: a software counter on ourselves, allowed to anyone by perf_event_paranoid 2. */
#include <linux/perf_event.h>

#include "escape.h"

int main(void) {
  struct perf_event_attr a;
  memset(&a, 0, sizeof a);
  a.size = sizeof a;
  a.type = PERF_TYPE_SOFTWARE;
  a.config = PERF_COUNT_SW_CPU_CLOCK;
  a.exclude_kernel = 1;
  long fd = syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
  if (fd >= 0) escaped("perf_event_open = %ld", fd);
  contained("perf_event_open: %s", err());
}
