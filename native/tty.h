/*
 * The parent half of a sandbox's terminal (tty.cc): the socketpair the
 * child sends the pty's master on, and the window size capsule sets on it.
 */
#ifndef CAPSULE_TTY_H
#define CAPSULE_TTY_H

#include <termios.h>

/* socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC): fds[1] is the child's end. */
bool tty_socketpair(int fds[2], int &err);

/* The master the child sent (close-on-exec), or -1 with err set. Never blocks. */
int tty_receive_master(int sock, int &err);

/* TIOCSWINSZ on the master: the kernel signals SIGWINCH to its foreground group (ioctl_tty(2)). */
bool tty_set_window_size(int fd, unsigned rows, unsigned cols, int &err);

/* TIOCGWINSZ: the window size of the terminal on fd (the caller's, for `capsule run -t`). */
bool tty_window_size(int fd, unsigned &rows, unsigned &cols, int &err);

/*
 * The caller's terminal in raw mode, as cfmakeraw(3) makes it (output
 * processing off too: bytes from the sandbox's pty reach the screen as the
 * program wrote them, as ssh and docker do); `saved` receives the settings to
 * restore with tty_restore_mode.
 */
bool tty_make_raw(int fd, struct termios &saved, int &err);
bool tty_restore_mode(int fd, const struct termios &saved, int &err);

#endif
