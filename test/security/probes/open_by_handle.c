/*
 * open_by_handle: the 2014 "shocker" escape from Docker. A file handle names
 * an inode on a filesystem, not a path, so open_by_handle_at(2) opens files
 * outside the root; it needs CAP_DAC_READ_SEARCH.
 */
#include "escape.h"

int main(void) {
  struct {
    unsigned int handle_bytes;
    int handle_type;
    unsigned char f_handle[128];
  } h = {128, 0, {0}};
  int mnt;
  if (syscall(SYS_name_to_handle_at, AT_FDCWD, "/", &h, &mnt, 0) != 0)
    contained("name_to_handle_at: %s", err());
  int root = open("/", O_RDONLY | O_DIRECTORY);
  long fd = syscall(SYS_open_by_handle_at, root, &h, O_RDONLY);
  if (fd >= 0) escaped("open_by_handle_at opened a file by handle");
  contained("open_by_handle_at: %s", err());
}
