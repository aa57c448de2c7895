/* suid_helper: installed set-user-ID root by the test; prints the effective uid it got. */
#include <stdio.h>
#include <unistd.h>

int main(void) {
  printf("euid=%d\n", geteuid());
  return 0;
}
