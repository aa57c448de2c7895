/* dev_access: open a disk, kernel memory or the kernel log through /dev. */
#include <dirent.h>
#include <sys/stat.h>

#include "escape.h"

int main(void) {
  const char *named[] = {"/dev/mem", "/dev/kmem", "/dev/port", "/dev/kmsg", "/dev/console"};
  for (unsigned i = 0; i < sizeof named / sizeof named[0]; i++) {
    int fd = open(named[i], O_RDONLY | O_NONBLOCK | O_NOCTTY);
    if (fd >= 0) escaped("opened %s", named[i]);
  }
  DIR *d = opendir("/dev");
  struct dirent *de;
  char path[512];
  int n = 0;
  while (d && (de = readdir(d))) {
    struct stat st;
    snprintf(path, sizeof path, "/dev/%s", de->d_name);
    if (stat(path, &st) != 0) continue;
    n++;
    if (S_ISBLK(st.st_mode) && open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY) >= 0) escaped("opened block device %s", path);
  }
  contained("no memory, port, log or block device among %d entries of /dev", n);
}
