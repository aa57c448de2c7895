/*
 * A terminal of the program's own: `capsule run -t`, the `terminal` option.
 *
 * The program gets a pseudo-terminal from the sandbox's private devpts
 * instance (mount_dev_pts, newinstance: pts(4)), never the caller's terminal.
 * Whatever it does to its terminal (stty -echo, raw mode, TIOCSTI, a hang-up)
 * happens to that pty; capsule reads the master and writes to the caller's
 * terminal as plain bytes, and the caller's settings are capsule's alone
 * (src/terminal.ts). This is the shape of ssh's and docker's -t.
 *
 *   child, privileged:  open_pty         ptmx of the private devpts, unlocked, the peer opened from it
 *                       send_pty_master  the master to capsule over a socketpair made before clone
 *   capsule-init:       set_controlling_tty  setsid + TIOCSCTTY in the forked program (init.c)
 *
 * Why by descriptor all the way: the master is opened from the devpts mount's
 * own descriptor (saved by mount_dev_pts), and the slave with TIOCGPTPEER
 * from the master (ioctl_tty(2), Linux 4.13): no path is looked up, so no
 * name anywhere can be swapped to hand capsule another terminal (the race
 * TIOCGPTPEER was added for, CVE-2017-2616's class in container runtimes).
 * The master travels back as SCM_RIGHTS (unix(7)) on a socketpair made before
 * clone: no host path, nothing the program can reach (the child's end is
 * closed by close_fds before capsule-init runs).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>

#include "config.h"
#include "sys.h"

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

int child_open_pty(const struct child_config *cfg) {
  if (cfg->tty_socket < 0) return -1;
  const int pts = cfg->mount_fds[MOUNT_FD_PTS];
  if (pts < 0) child_fail(cfg, STEP_open_pty, -ENODEV, "/dev/pts (a terminal needs devPts)");
  /*
   * open_pty: "ptmx" in the devpts we mounted a moment ago, which no other
   * process has seen. RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV:
   * the name must be that instance's own node (openat2(2)). O_NOCTTY: this
   * privileged child must not take the terminal as its own.
   */
  struct open_how how = {O_RDWR | O_NOCTTY | O_CLOEXEC, 0,
                         RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV};
  long master = SYS4(__NR_openat2, pts, "ptmx", &how, sizeof how);
  if (sys_failed(master)) child_fail(cfg, STEP_open_pty, master, "/dev/pts/ptmx");
  /* Unlock the slave (TIOCSPTLCK with 0, what unlockpt(3) does), or opening it fails with EIO. */
  int unlock = 0;
  long r = SYS3(__NR_ioctl, master, TIOCSPTLCK, &unlock);
  if (sys_failed(r)) child_fail(cfg, STEP_open_pty, r, "TIOCSPTLCK");
  /* The slave, from the master itself: no /dev/pts/N looked up by name (ioctl_tty(2), TIOCGPTPEER). */
  long slave = SYS3(__NR_ioctl, master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (sys_failed(slave)) child_fail(cfg, STEP_open_pty, slave, "TIOCGPTPEER");
  /*
   * The slave's node belongs to the program's user, as login(1) and sshd
   * make it (the devpts instance made it ours, root's, mode 0620): then
   * ttyname(3), `tty`, mesg and programs that reopen their terminal by name
   * work after the identity drop. Host ids, since we are still in the
   * initial user namespace (set_userns comes later).
   */
  r = SYS3(__NR_fchown, slave, cfg->tty_uid, cfg->tty_gid);
  if (sys_failed(r)) child_fail(cfg, STEP_open_pty, r, "fchown of the pty slave");
  if (cfg->tty_rows || cfg->tty_cols) {
    struct winsize ws = {cfg->tty_rows, cfg->tty_cols, 0, 0};
    r = SYS3(__NR_ioctl, master, TIOCSWINSZ, &ws);
    if (sys_failed(r)) child_fail(cfg, STEP_open_pty, r, "TIOCSWINSZ");
  }
  child_trace(cfg, STEP_open_pty, -1);

  /*
   * send_pty_master: one SCM_RIGHTS message with one byte (a message needs
   * data to carry the control part, unix(7)). The socket is SOCK_SEQPACKET
   * and its buffer empty, so this never blocks. Our copy of the master is
   * close-on-exec: gone at exec_init, the sandbox never holds it.
   */
  char byte = 't';
  struct iovec iov = {&byte, 1};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } control;
  char *p = control.buf;
  for (unsigned long i = 0; i < sizeof control.buf; i++) p[i] = 0; /* no memset: see sys.h */
  struct msghdr msg;
  char *m = reinterpret_cast<char *>(&msg);
  for (unsigned long i = 0; i < sizeof msg; i++) m[i] = 0;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  int fd = static_cast<int>(master);
  char *dst = reinterpret_cast<char *>(CMSG_DATA(c));
  const char *src = reinterpret_cast<const char *>(&fd);
  for (unsigned long i = 0; i < sizeof fd; i++) dst[i] = src[i];
  r = SYS3(__NR_sendmsg, cfg->tty_socket, &msg, MSG_NOSIGNAL);
  if (sys_failed(r)) child_fail(cfg, STEP_send_pty_master, r, "sendmsg(SCM_RIGHTS)");
  SYS1(__NR_close, master);
  child_trace(cfg, STEP_send_pty_master, -1);
  return static_cast<int>(slave);
}

/* ------------------------------ parent half ------------------------------ */

#include <unistd.h>

#include <cstring>

#include "tty.h"

bool tty_socketpair(int fds[2], int &err) {
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) == 0) return true;
  err = errno;
  return false;
}

int tty_receive_master(int sock, int &err) {
  char byte;
  struct iovec iov = {&byte, 1};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } control;
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;
  /* The child sent it before it exec'd capsule-init, which clone returning waited for: never blocks. */
  ssize_t n;
  do n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    err = errno;
    return -1;
  }
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (n != 1 || !c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
      c->cmsg_len != CMSG_LEN(sizeof(int)) || (msg.msg_flags & MSG_CTRUNC)) {
    err = EPROTO;
    return -1;
  }
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

bool tty_set_window_size(int fd, unsigned rows, unsigned cols, int &err) {
  struct winsize ws = {};
  ws.ws_row = static_cast<unsigned short>(rows);
  ws.ws_col = static_cast<unsigned short>(cols);
  if (ioctl(fd, TIOCSWINSZ, &ws) == 0) return true;
  err = errno;
  return false;
}

bool tty_window_size(int fd, unsigned &rows, unsigned &cols, int &err) {
  struct winsize ws = {};
  if (ioctl(fd, TIOCGWINSZ, &ws) != 0) {
    err = errno;
    return false;
  }
  rows = ws.ws_row;
  cols = ws.ws_col;
  return true;
}

bool tty_make_raw(int fd, struct termios &saved, int &err) {
  if (tcgetattr(fd, &saved) != 0) {
    err = errno;
    return false;
  }
  struct termios raw = saved;
  cfmakeraw(&raw);
  if (tcsetattr(fd, TCSANOW, &raw) == 0) return true;
  err = errno;
  return false;
}

bool tty_restore_mode(int fd, const struct termios &saved, int &err) {
  /* TCSADRAIN: what capsule wrote in raw mode reaches the screen before the settings change. */
  int r;
  do r = tcsetattr(fd, TCSADRAIN, &saved);
  while (r != 0 && errno == EINTR);
  if (r == 0) return true;
  err = errno;
  return false;
}
