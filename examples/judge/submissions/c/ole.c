#include <stdio.h>

int main(void) {
  for (;;) puts("5 5 5 5 5 5 5 5 5 5 5 5 5 5 5 5");
}
