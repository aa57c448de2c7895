/* The judge benchmark's submission: reads a number, prints its square.
 * `judge-prog burn` spins forever; `judge-prog mem MIB` touches MIB MiB. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "burn"))
    for (volatile unsigned long i = 0;; i++) {
    }
  if (argc > 2 && !strcmp(argv[1], "mem")) {
    size_t size = (size_t)atol(argv[2]) << 20;
    char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (size_t i = 0; p != MAP_FAILED && i < size; i += 4096) p[i] = 1;
    return 0;
  }
  long n;
  if (scanf("%ld", &n) != 1) return 1;
  printf("%ld\n", n * n);
  return 0;
}
