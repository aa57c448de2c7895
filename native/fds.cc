/*
 * arrange_fds and close_fds: the child keeps exactly the descriptors the
 * sandbox is meant to have.
 *
 *   0, 1, 2   the program's stdio, as the caller chose it (with a terminal: its pty slave)
 *   3         the error pipe: capsule-init's and the program's exec errors
 *   4         the status pipe: capsule-init's report of how the program ended
 *   5         the seccomp program, when one is asked for
 *   6         capsule-init itself, close-on-exec: gone once exec_init succeeds
 *   7         capsule's pidfd, close-on-exec, for the last check_parent
 *
 * Everything else the Node process had open (its epoll, its sockets, files a
 * library opened without O_CLOEXEC) is closed, so no host object leaks in.
 */
#include <fcntl.h>
#include <linux/close_range.h>

#include "config.h"
#include "sys.h"

void child_fds(const struct child_config *cfg, int tty_fd) {
  int src[CAPSULE_FD_FIRST_FREE];
  for (int slot = 0; slot < CAPSULE_FD_FIRST_FREE; slot++) src[slot] = cfg->fd_sources[slot];
  /* With a terminal, the pty slave is stdin, stdout and stderr alike, as login(1) and docker -t give it. */
  if (tty_fd >= 0) src[0] = src[1] = src[2] = tty_fd;

  /*
   * A source may sit on another slot's number (stdio passed through is 0..2
   * already, and dup3 onto slot 1 would close a source living at 1). First
   * lift every low source above the slots; F_DUPFD picks a free number, so it
   * never clobbers anything (fcntl(2)).
   */
  for (int slot = 0; slot < CAPSULE_FD_FIRST_FREE; slot++) {
    if (src[slot] < 0 || src[slot] >= CAPSULE_FD_FIRST_FREE) continue;
    long r = SYS3(__NR_fcntl, src[slot], F_DUPFD_CLOEXEC, CAPSULE_FD_FIRST_FREE);
    if (sys_failed(r)) child_fail(cfg, STEP_arrange_fds, r, "fcntl(F_DUPFD)");
    for (int other = slot + 1; other < CAPSULE_FD_FIRST_FREE; other++)
      if (src[other] == src[slot]) src[other] = static_cast<int>(r);
    src[slot] = static_cast<int>(r);
  }
  /* Then place each one; dup3 without O_CLOEXEC leaves it open across exec (dup(2)). */
  for (int slot = 0; slot < CAPSULE_FD_FIRST_FREE; slot++) {
    if (src[slot] < 0) continue;
    int flags = slot == CAPSULE_FD_INIT_EXE || slot == CAPSULE_FD_PARENT ? O_CLOEXEC : 0;
    long r = SYS3(__NR_dup3, src[slot], slot, flags);
    if (sys_failed(r)) child_fail(cfg, STEP_arrange_fds, r, "dup3");
  }
  child_trace(cfg, STEP_arrange_fds, -1);
  /*
   * close_fds: close_range(2) in one call; the slots we left empty are closed
   * too, so a program finds nothing at 5 unless a filter was handed there.
   */
  for (int slot = 0; slot < CAPSULE_FD_FIRST_FREE; slot++) {
    if (src[slot] >= 0) continue;
    SYS1(__NR_close, slot); /* EBADF when it was not open: fine */
  }
  long r = SYS3(__NR_close_range, CAPSULE_FD_FIRST_FREE, ~0U, 0);
  if (sys_failed(r)) child_fail(cfg, STEP_close_fds, r, "close_range");
  child_trace(cfg, STEP_close_fds, -1);
}
