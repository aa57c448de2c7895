/*
 * memory_bomb MIB: allocate and touch MIB MiB, one MiB at a time. ESCAPED when
 * all of it is resident; inside a memory limit the cgroup's OOM killer ends
 * it first (no line printed: the verdict says MEMORY_LIMIT).
 */
#include "escape.h"

int main(int argc, char **argv) {
  long mib = atol(arg(argc, argv, 1, "256"));
  for (long i = 0; i < mib; i++) {
    char *p = malloc(1 << 20);
    if (!p) contained("malloc failed after %ld MiB", i);
    for (int j = 0; j < (1 << 20); j += 4096) p[j] = 1;
  }
  escaped("%ld MiB resident", mib);
}
