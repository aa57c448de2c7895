/*
 * runtime_reach ROOT DEV:INO...: walk ROOT and look for any of the given
 * files (the host's node binary, capsule's addon, capsule-init, its
 * JavaScript) by device and inode, which a bind mount or a hard link would
 * keep. Reaching one is the CVE-2019-5736 class: a runtime the sandbox can
 * open, it can try to overwrite. /proc and /sys are not walked (their
 * magic links are the exe_overwrite probe's).
 */
#include <ftw.h>
#include <sys/stat.h>

#include "escape.h"

static unsigned long long want_dev[16], want_ino[16];
static int n_want, scanned;

static int visit(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)ftw;
  if (type == FTW_D && (!strcmp(path, "/proc") || !strcmp(path, "/sys"))) return FTW_SKIP_SUBTREE;
  if (type != FTW_F) return FTW_CONTINUE;
  scanned++;
  for (int i = 0; i < n_want; i++)
    if (st->st_dev == want_dev[i] && st->st_ino == want_ino[i])
      escaped("%s is the host's runtime file %llu:%llu", path, want_dev[i], want_ino[i]);
  return FTW_CONTINUE;
}

int main(int argc, char **argv) {
  const char *root = arg(argc, argv, 1, "/");
  for (int i = 2; i < argc && n_want < 16; i++, n_want++)
    sscanf(argv[i], "%llu:%llu", &want_dev[n_want], &want_ino[n_want]);
  nftw(root, visit, 32, FTW_PHYS | FTW_ACTIONRETVAL);
  contained("none of %d runtime files among %d files under %s", n_want, scanned, root);
}
