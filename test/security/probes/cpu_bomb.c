/* cpu_bomb MS: spin for MS milliseconds of CPU time. ESCAPED when it gets them all. */
#include <time.h>

#include "escape.h"

int main(int argc, char **argv) {
  long ms = atol(arg(argc, argv, 1, "1000"));
  struct timespec t;
  do clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  while (t.tv_sec * 1000 + t.tv_nsec / 1000000 < ms);
  escaped("spun %ld ms of CPU", ms);
}
