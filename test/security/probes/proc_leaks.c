/*
 * proc_leaks: /proc entries that are the host's whatever the namespace:
 * kernel memory (kcore), the host's timers with their PIDs and command
 * names (timer_list), interrupt counts (interrupts), every key (keys).
 */
#include "escape.h"

int main(void) {
  const char *leaky[] = {"/proc/kcore", "/proc/timer_list", "/proc/interrupts", "/proc/keys", "/proc/sched_debug"};
  char buf[4096];
  for (unsigned i = 0; i < sizeof leaky / sizeof leaky[0]; i++) {
    long n = slurp(leaky[i], buf, sizeof buf);
    if (n > 0) escaped("%s has %ld bytes for us", leaky[i], n);
  }
  contained("kcore, timer_list, interrupts, keys, sched_debug are empty or absent");
}
