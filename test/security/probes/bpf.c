/* bpf: create a one-element array map (bpf(2)). */
#include <linux/bpf.h>

#include "escape.h"

int main(void) {
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.map_type = BPF_MAP_TYPE_ARRAY;
  a.key_size = 4;
  a.value_size = 4;
  a.max_entries = 1;
  long fd = syscall(SYS_bpf, BPF_MAP_CREATE, &a, sizeof a);
  if (fd >= 0) escaped("bpf(BPF_MAP_CREATE) = %ld", fd);
  contained("bpf: %s", err());
}
