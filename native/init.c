/*
 * capsule-init: PID 1 of every sandbox.
 *
 * The first process of a PID namespace has duties no ordinary program
 * expects (pid_namespaces(7)): orphans are reparented to it and stay zombies
 * unless it reaps them, the kernel drops signals it has no handler for (so a
 * plain program as PID 1 ignores SIGTERM), and when it exits every other
 * process in the namespace is killed. capsule-init takes those duties so the
 * program does not have to, in the manner of tini and bubblewrap's PID 1:
 *
 *   1. fork the program (fork_program); the child loads the seccomp filter
 *      (load_seccomp) and execs it (exec);
 *   2. wait with every signal blocked, reading them from a signalfd(2), and
 *      on a pipe from its watcher thread (watch_listener), which waits on the
 *      filter's notification descriptor: SIGCHLD means reap; SIGTERM/SIGINT/
 *      SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2/SIGWINCH are forwarded to the program
 *      when they come from outside the sandbox; a record from the watcher is
 *      a forbidden system call;
 *   3. when the program ends, or calls a forbidden system call, or capsule
 *      sends CAPSULE_SIG_TERMINATE from outside the sandbox, kill whatever is
 *      left, reap it all, and write the program's wait status, its rusage and
 *      the forbidden call to capsule on the status pipe.
 *
 * What it reports rests only on what the kernel says: wait statuses, seccomp
 * notifications, and signals whose siginfo shows they came from outside the
 * PID namespace (from_outside). The program runs as the same uid and can
 * signal PID 1 (kill, tgkill, rt_sigqueueinfo), but it cannot make a signal
 * look as if it came from capsule.
 *
 * It is built without libc (-nostdlib, raw system calls from sys.h): exec of
 * a static glibc binary cost 0.43 ms here against 0.12 ms for one without,
 * and every sandbox pays it once. capsule execs it by descriptor after every
 * privileged step, so it runs as the sandbox's user with no capabilities.
 *
 * argv: { "capsule-init", ["--tty",] program, args... }   envp: the program's.
 * "--tty": stdio is a pty of the sandbox's own (native/tty.cc), which the
 * program takes as its controlling terminal (set_controlling_tty). Programs
 * are absolute paths (src/options.ts), so the word cannot be one.
 *
 * Two more modes serve sessions (src/session.ts), chosen by argv[0], which
 * capsule sets and no program argument can reach (the program is argv[1] on):
 *
 *   "capsule-hold": PID 1 of a session's box with no program. It only reaps
 *      what is reparented to it, and exits (ending the box: the kernel kills
 *      every process of the namespace) on CAPSULE_SIG_TERMINATE from outside.
 *   "capsule-join": one command of a session. It runs outside the box's PID
 *      namespace (child.cc join_box) and forks the program into it, so it is
 *      not PID 1 of anything: it never kill(-1)s, which from here would reach
 *      every host process of the same uid. Whatever the program leaves behind
 *      is killed through the command's own cgroup by capsule (src/session.ts).
 * One more serves runners (src/ahead.ts):
 *
 *   "capsule-prepared": a sandbox made ahead of time, with no program yet. It
 *      waits for its run's argv, environment and stdio on descriptor 0
 *      (receive_run, below), then goes on as "capsule-init".
 * Three more serve the OCI runtime mode (src/oci, native/oci.cc), where an engine
 * (podman, containerd) owns the container's life and capsule only builds it:
 *
 *   "capsule-oci": PID 1 of a container made by `create`. Before anything
 *      runs it looks the program up (PATH from its environment when the name
 *      has no '/', as execvp(3) and runc do), so a missing program fails
 *      create; it tells capsule it is ready (a CAPSULE_READY_MAGIC record on
 *      the status pipe) and waits for CAPSULE_SIG_START from outside (`start`).
 *      Any other signal from outside ends it then, exit code 128 + signal.
 *      Once started it execs the program in place: a container's PID 1 is its
 *      program, as under runc, signalled and waited on by the engine itself.
 *   "capsule-oci-now": the same without the wait (`capsule-runc run`).
 *   "capsule-oci-join": `exec` into a container, as "capsule-join", but every
 *      signal sent to it is forwarded (the engine waits on and signals this
 *      process; the program inside cannot name it, so any sender is outside).
 * In every OCI mode the filter, if any, was loaded before exec_init (native/oci.cc):
 * descriptor 5 is empty; capsule-oci-join's exit code is the program's, the
 * exec's exit code for the engine; and nobody may read the pipes any more
 * once create has returned (writes to them fail with EPIPE, harmlessly).
 * fds: 0-2 stdio, 3 error pipe, 4 status pipe, 5 seccomp program (optional).
 */
#include <asm/poll.h>
#include <asm/siginfo.h>
#include <linux/audit.h>
#include <linux/errno.h>
#include <asm/signal.h>
#include <linux/fcntl.h>
#include <linux/filter.h>
#include <linux/ioctl.h>
#include <asm/ioctls.h>
#include <linux/prctl.h>
#include <linux/resource.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <linux/signalfd.h>
#include <linux/wait.h>

#include "steps.h"
#include "sys.h"

/* The compiler may emit calls to these for struct copies; there is no libc to provide them. */
void *memset(void *d, int c, unsigned long n) {
  unsigned char *p = d;
  while (n--) *p++ = (unsigned char)c;
  return d;
}
void *memcpy(void *d, const void *s, unsigned long n) {
  unsigned char *p = d;
  const unsigned char *q = s;
  while (n--) *p++ = *q++;
  return d;
}

/* The kernel's sigset for rt_sig* calls: 64 signals, one bit each. */
typedef unsigned long ksigset;
#define SIGBIT(sig) (1UL << ((sig)-1))
#define SIGSETSIZE 8

static void report_error(enum capsule_step step, long neg_errno, const char *detail) {
  struct capsule_error_record rec;
  memset(&rec, 0, sizeof rec);
  rec.magic = CAPSULE_ERROR_MAGIC;
  rec.step = step;
  rec.err = (int)-neg_errno;
  for (unsigned i = 0; i + 1 < sizeof rec.detail && detail[i]; i++) rec.detail[i] = detail[i];
  SYS3(__NR_write, CAPSULE_FD_ERROR, &rec, sizeof rec);
}

/*
 * SIGWINCH stays forwarded with a terminal too: capsule then sets the size on
 * the pty's master (TIOCSWINSZ) and the kernel signals the terminal's
 * foreground group itself, so capsule sends none; one a library caller sends
 * by hand reaches the program as before.
 */
static int forwarded(int sig) {
  return sig == SIGTERM || sig == SIGINT || sig == SIGHUP || sig == SIGQUIT || sig == SIGUSR1 ||
         sig == SIGUSR2 || sig == SIGWINCH;
}

/*
 * Did this signal come from outside the sandbox? kill(2) and
 * pidfd_send_signal(2) fill si_code SI_USER and si_pid, the sender's pid as
 * the receiver's PID namespace sees it, and 0 when the sender is not in that
 * namespace (kernel/signal.c, send_signal_locked: "From an ancestor pid
 * namespace?"). capsule is outside; every process of the sandbox is inside,
 * so a kill() from the program arrives with its own pid, a tgkill(2) with
 * SI_TKILL, and rt_sigqueueinfo(2) cannot send SI_USER to another process
 * (it refuses si_code >= 0: EPERM), whatever si_pid it claims.
 */
static int from_outside(const struct signalfd_siginfo *si) {
  return si->ssi_code == SI_USER && si->ssi_pid == 0;
}

/*
 * The same question for a session's command ("capsule-join"), which is not in
 * the box's PID namespace: capsule's signal arrives with capsule's own pid as
 * we see it, which is our parent's (the thread that cloned us belongs to it).
 * The program, inside the box, cannot name us at all: kill(2) and
 * pidfd_open(2) resolve pids in the caller's namespace, where we have none.
 */
static long capsule_pid;
static int from_capsule(const struct signalfd_siginfo *si) {
  return si->ssi_code == SI_USER && (long)si->ssi_pid == capsule_pid;
}

static int same(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return *a == *b;
}

static int starts_with(const char *s, const char *prefix) {
  while (*prefix && *s == *prefix) s++, prefix++;
  return *prefix == 0;
}

/*
 * OCI modes: is this signal one an engine sent? For a container's PID 1 in a
 * PID namespace of its own: from outside it, as from_outside. A container
 * that shares the host's PID namespace has no outside: every kill(2) counts.
 * For "capsule-oci-join": every kill(2), since only processes outside the
 * container can name us at all (see from_capsule).
 */
static int oci_join, oci_pid1;
static int from_engine(const struct signalfd_siginfo *si) {
  if (si->ssi_code != SI_USER) return 0;
  return oci_join || !oci_pid1 || si->ssi_pid == 0;
}

/*
 * The program's path, as execvp(3) would find it: a name with a '/' as it
 * is, otherwise the first PATH entry (from the program's environment, or
 * the default runc uses) where it is an executable file. Returns 0, or the
 * error of the last candidate (-ENOENT when there was none), with the path
 * (or the name) in program_path. faccessat(2) checks with the real ids,
 * which are the program's: capsule-init runs as its user.
 */
static char program_path[4096];
static long find_program(const char *name, char **envp) {
  unsigned n = 0;
  int slash = 0;
  for (const char *p = name; *p; p++) slash |= *p == '/';
  if (slash) {
    for (; name[n] && n + 1 < sizeof program_path; n++) program_path[n] = name[n];
    program_path[n] = 0;
    return SYS4(__NR_faccessat, AT_FDCWD, program_path, 1 /* X_OK */, 0);
  }
  const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (char **e = envp; *e; e++)
    if (starts_with(*e, "PATH=")) path = *e + 5;
  long last = -ENOENT;
  for (const char *dir = path;;) {
    const char *end = dir;
    while (*end && *end != ':') end++;
    n = 0;
    for (const char *p = dir; p < end && n + 2 < sizeof program_path; p++) program_path[n++] = *p;
    if (n == 0) program_path[n++] = '.'; /* an empty entry is the working directory (execvp(3)) */
    program_path[n++] = '/';
    for (const char *p = name; *p && n + 1 < sizeof program_path; p++) program_path[n++] = *p;
    program_path[n] = 0;
    struct {
      unsigned long long pad[32];
    } st; /* struct statx is 256 bytes */
    long r = SYS5(__NR_statx, AT_FDCWD, program_path, 0, 1 /* STATX_TYPE */, &st);
    if (!sys_failed(r)) {
      unsigned short mode = *(unsigned short *)((char *)&st + 28); /* stx_mode */
      if ((mode & 0170000) == 0100000) { /* a regular file */
        r = SYS4(__NR_faccessat, AT_FDCWD, program_path, 1 /* X_OK */, 0);
        if (!sys_failed(r)) return 0;
      } else {
        r = -EACCES;
      }
    }
    if (r != -ENOENT && r != -ENOTDIR) last = r;
    if (!*end) break;
    dir = end + 1;
  }
  n = 0;
  for (const char *p = name; *p && n + 1 < sizeof program_path; p++) program_path[n++] = *p;
  program_path[n] = 0;
  return last;
}

/*
 * OCI: become the program. Every signal unblocked, and with a terminal the
 * pty on stdin made our controlling terminal: we lead the session new_session
 * made, with no terminal yet (TIOCSCTTY(2const)). Never returns.
 */
static void exec_in_place(const char *path, char **argv, char **envp, int tty) {
  ksigset none = 0;
  SYS4(__NR_rt_sigprocmask, SIG_SETMASK, &none, 0, SIGSETSIZE);
  if (tty) {
    long r = SYS3(__NR_ioctl, 0, TIOCSCTTY, 0);
    if (sys_failed(r)) {
      report_error(STEP_set_controlling_tty, r, "TIOCSCTTY on stdin");
      for (;;) SYS1(__NR_exit_group, 125);
    }
  }
  long r = SYS3(__NR_execve, path, argv, envp);
  report_error(STEP_exec, r, path);
  for (;;) SYS1(__NR_exit_group, r == -2 /* ENOENT */ ? 127 : 126);
}

/*
 * Was a PID namespace joined by path (linux.namespaces)? Then setns(2) put
 * only our children in it (pid_namespaces(7)): /proc/self/ns/pid and
 * pid_for_children name different namespaces, and the program must be
 * forked to be in the container's. Without a /proc to tell, the program is
 * exec'd in place as usual.
 */
static int pid_ns_joined(void) {
  struct {
    unsigned long long pad[32];
  } a, b; /* struct statx: 256 bytes, stx_ino at byte 32 */
  if (sys_failed(SYS5(__NR_statx, AT_FDCWD, "/proc/self/ns/pid", 0, 0x100 /* STATX_INO */, &a)) ||
      sys_failed(SYS5(__NR_statx, AT_FDCWD, "/proc/self/ns/pid_for_children", 0, 0x100, &b)))
    return 0;
  return a.pad[4] != b.pad[4];
}

/* Signals that end nothing by default (signal(7)): a created container ignores them. */
static int harmless(int sig) {
  return sig == SIGCHLD || sig == SIGWINCH || sig == SIGCONT || sig == SIGURG;
}

/*
 * "capsule-oci": wait for `start`. Returns 0 on CAPSULE_SIG_START from the
 * engine, or the exit code for another signal that ends the container
 * before it ran anything (128 + signal, as a shell reports a killed child).
 */
static int wait_for_start(long sfd) {
  for (;;) {
    struct pollfd p = {(int)sfd, POLLIN, 0};
    if (SYS5(__NR_ppoll, &p, 1, 0, 0, 0) < 0) continue; /* EINTR */
    struct signalfd_siginfo si;
    while (SYS3(__NR_read, sfd, &si, sizeof si) == (long)sizeof si) {
      int sig = (int)si.ssi_signo;
      if (sig == SIGCHLD) {
        while (SYS4(__NR_wait4, -1, 0, WNOHANG, 0) > 0) {
        }
      } else if (!from_engine(&si) || harmless(sig)) {
        /* dropped */
      } else if (sig == CAPSULE_SIG_START) {
        return 0;
      } else {
        return 128 + sig;
      }
    }
  }
}

/*
 * "capsule-hold": PID 1 of a session's box. Reap whatever is reparented to us
 * (orphans of every command), drop every other signal, and end on
 * CAPSULE_SIG_TERMINATE from outside the namespace. SIGKILL from capsule ends
 * us too; from inside it is not delivered to a namespace's init at all.
 */
static int main_hold(void) {
  SYS5(__NR_prctl, PR_SET_DUMPABLE, 0, 0, 0, 0); /* as main_init: no ptrace(2) of PID 1 */
  SYS1(__NR_close, CAPSULE_FD_SECCOMP);          /* no program here: no filter to load */
  SYS1(__NR_close, CAPSULE_FD_ERROR);            /* setup is over: capsule sees the pipe's EOF */
  ksigset all = ~0UL;
  SYS4(__NR_rt_sigprocmask, SIG_SETMASK, &all, 0, SIGSETSIZE);
  long sfd = SYS4(__NR_signalfd4, -1, &all, SIGSETSIZE, O_CLOEXEC);
  if (sys_failed(sfd)) return 125;
  for (;;) {
    struct signalfd_siginfo si;
    long n = SYS3(__NR_read, sfd, &si, sizeof si);
    if (n != (long)sizeof si) continue; /* EINTR */
    if (si.ssi_signo == SIGCHLD) {
      while (SYS4(__NR_wait4, -1, 0, WNOHANG, 0) > 0) {
      }
    } else if (si.ssi_signo == CAPSULE_SIG_TERMINATE && from_outside(&si)) {
      return 0;
    }
  }
}

/*
 * The seccomp program capsule compiled (native/seccomp.cc), read from
 * CAPSULE_FD_SECCOMP: raw struct sock_filter[], at most BPF_MAXINSNS of them.
 * Static, since there is no allocator; 32 KiB of .bss costs nothing until touched.
 */
static struct sock_filter filter[BPF_MAXINSNS];

/*
 * Read the filter with pread(2) at offset 0: the memfd is shared by every
 * sandbox that uses the same profile, so its file offset must not be used.
 * Returns the number of instructions, 0 when no filter was handed over (the
 * slot is closed: EBADF), or -errno.
 */
static long read_filter(void) {
  unsigned long got = 0;
  for (;;) {
    long n = SYS4(__NR_pread64, CAPSULE_FD_SECCOMP, (char *)filter + got, sizeof filter - got, got);
    if (n == -9 /* EBADF */ && got == 0) return 0;
    if (n == -4 /* EINTR */) continue;
    if (sys_failed(n)) return n;
    if (n == 0) break;
    got += (unsigned long)n;
    if (got == sizeof filter) break;
  }
  if (got == 0 || got % sizeof filter[0]) return -22; /* EINVAL: not a BPF program */
  return (long)(got / sizeof filter[0]);
}

/*
 * The child half: becomes the program. Never returns.
 *
 * load_seccomp is the last step before execve, so the filter judges the
 * program and nothing of capsule's; execve must be allowed by every profile
 * (src/seccomp/ checks). PR_SET_NO_NEW_PRIVS is already set (identity.cc),
 * which is what lets an unprivileged process install a filter (seccomp(2)).
 *
 * SECCOMP_FILTER_FLAG_NEW_LISTENER: a denied call whose action is "kill" is
 * compiled as SECCOMP_RET_USER_NOTIF, and the kernel hands it to the listener
 * instead of running it (seccomp_unotify(2)). This child shares capsule-init's
 * descriptor table (CLONE_FILES), so the listener lands in capsule-init's
 * table at the lowest free number, which capsule-init worked out before
 * forking; execve then unshares the table and closes the listener in the
 * program's copy (it is close-on-exec), so the program never holds it.
 *
 * SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (Linux 5.19): once capsule-init has
 * received a notification, the caller waits killably, so a signal can no
 * longer interrupt the call and let the program go on (seccomp(2)). Older
 * kernels refuse the flag with EINVAL: load without it. Before it is
 * received, a signal still withdraws a notification; watch_listener counts
 * those.
 */
static void run_program(const char *path, char **argv, char **envp, long instructions, int tty) {
  ksigset none = 0;
  SYS4(__NR_rt_sigprocmask, SIG_SETMASK, &none, 0, SIGSETSIZE);
  if (tty) {
    /*
     * set_controlling_tty: the program leads a session of its own (setsid(2):
     * it is no group leader, being a fresh child), and the pty on its stdin
     * becomes that session's controlling terminal (TIOCSCTTY(2const); a
     * session leader without one may take a terminal no session has), with
     * the program's group in the foreground. Then ^C and ^Z typed into the
     * pty signal the foreground job, a shell's job control works, and the
     * hang-up when capsule closes the master reaches the program. It is only
     * ever the sandbox's own pty: capsule-init itself stays in the session
     * new_session made, with no terminal, and without --tty nothing here
     * runs, so TIOCSTI into the caller's terminal stays impossible.
     */
    long r = SYS0(__NR_setsid);
    if (!sys_failed(r)) r = SYS3(__NR_ioctl, 0, TIOCSCTTY, 0);
    if (sys_failed(r)) {
      report_error(STEP_set_controlling_tty, r, "setsid, TIOCSCTTY on stdin");
      for (;;) SYS1(__NR_exit_group, 125);
    }
  }
  if (instructions > 0) {
    struct sock_fprog prog = {(unsigned short)instructions, filter};
    long r = SYS3(__NR_seccomp, SECCOMP_SET_MODE_FILTER,
                  SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, &prog);
    if (r == -EINVAL) r = SYS3(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    if (sys_failed(r)) {
      report_error(STEP_load_seccomp, r, "seccomp(SECCOMP_SET_MODE_FILTER)");
      for (;;) SYS1(__NR_exit_group, 125);
    }
  }
  long r = SYS3(__NR_execve, path, argv, envp);
  report_error(STEP_exec, r, path);
  for (;;) SYS1(__NR_exit_group, r == -2 /* ENOENT */ ? 127 : 126);
}

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP 1UL
#endif
#if defined(__x86_64__)
#define NATIVE_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

/* One forbidden call, from the watcher to the main thread; nr -1: withdrawn before it could be read. */
struct violation {
  unsigned arch;
  int nr;
};
#define WITHDRAWN (-1)

/* Set before the watcher starts and only read after. */
static int listener_fd = -1, watch_pipe[2] = {-1, -1};
static char watcher_stack[16384] __attribute__((aligned(16)));
static long watcher_tid = -1;
/* Set by the main thread before it signals the watcher to end (drain_watcher). */
static volatile int drain_requested;

/*
 * The keeper (keeper_thread below): a thread of capsule-init that loads the filter and forks
 * the program, so that a task the program cannot kill keeps the filter in use. What it shares
 * with the other threads, written once each: its tid; the listener (or the error of loading
 * the filter); keeper_stage 1 once that is known, 2 once the fork returned (the program's
 * pid or the fork's error in keeper_program); the program's pid as clone(2) stores it with
 * CLONE_PARENT_SETTID before the program runs.
 */
static volatile long keeper_tid = -1, keeper_listener = -1, keeper_program;
static int read_violations(long fd, struct violation *out);
static int receive_directly(int listener, struct violation *out);
#define KEEPER_CLONE_FLAGS (CLONE_VFORK | CLONE_FILES | CLONE_PARENT_SETTID | SIGCHLD)
/* A number no system call has (unistd.h stops near 470): the filter's default action judges it. */
#define KEEPER_PARK_NR 1023
static volatile int keeper_stage, program_tid, program_first_seen;
static volatile int keeper_alive; /* 1 until the keeper thread has ended (CLONE_CHILD_CLEARTID) */
static int keeper_wait;            /* how it waits: 1 the park, 2 ppoll(2), 3 a futex (keeper_fits) */
static int keeper_pipe[2] = {-1, -1}; /* the keeper writes a byte once its fork has returned */

/* Let the notified call run: the keeper's own, and the program's mask reset before exec. */
static void let_through(const struct seccomp_notif *n) {
  struct seccomp_notif_resp resp;
  memset(&resp, 0, sizeof resp);
  resp.id = n->id;
  resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
  SYS3(__NR_ioctl, listener_fd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
}

/*
 * Calls the filter judges that are capsule's, not the program's, let through with
 * SECCOMP_USER_NOTIF_FLAG_CONTINUE (seccomp_unotify(2)) instead of reported: every call of the
 * keeper thread (the fork of the program, its wait), which the program cannot make, since no
 * process of the sandbox is that thread; and the program's first notified call when it is the
 * rt_sigprocmask(2) that run_program makes before execve (a profile that forbids it would
 * otherwise fail every run). The program's pid is known before it runs (CLONE_PARENT_SETTID).
 */
static int exempt(const struct seccomp_notif *n) {
  if (keeper_tid > 0 && (long)n->pid == keeper_tid) {
    if (n->data.nr != KEEPER_PARK_NR) let_through(n); /* the park is never answered: the keeper waits in it */
    return 1;
  }
  if (!program_first_seen && program_tid > 0 && (int)n->pid == program_tid) {
    program_first_seen = 1;
    if (n->data.arch == NATIVE_AUDIT_ARCH && n->data.nr == __NR_rt_sigprocmask) {
      let_through(n);
      return 1;
    }
  }
  return 0;
}

/*
 * watch_listener: a thread of capsule-init that always waits in
 * SECCOMP_IOCTL_NOTIF_RECV, and writes each forbidden call to watch_pipe.
 *
 * Why a thread and not poll(2) on the listener: a signal to the calling
 * thread before the notification is received withdraws it; the call returns
 * EINTR and the program goes on (seccomp_unotify(2), NOTES). poll(2) only
 * sees notifications still queued, so a withdrawn one left no trace. The
 * kernel counts every notification it queues, withdrawn or not
 * (notif->requests, kernel/seccomp.c), and each RECV takes one: a RECV
 * that finds its notification gone fails with ENOENT. A waiter that never
 * stops receiving so sees every forbidden call, even one withdrawn before it
 * ran. ENOENT also means "no process uses the filter any more" (the listener
 * then polls POLLHUP): that ends the watch.
 *
 * A thread of PID 1, not a process: the program runs as the same uid and
 * could kill a process, but signals from inside the namespace do not reach
 * its init's threads unless handled (pid_namespaces(7)), and ours are all
 * blocked.
 */
static int watch_listener(void *unused) {
  (void)unused;
  /* CAPSULE_SIG_WAKE alone reaches this thread (drain_watcher); the others keep every signal blocked. */
  ksigset wake = 1UL << (CAPSULE_SIG_WAKE - 1);
  SYS4(__NR_rt_sigprocmask, SIG_UNBLOCK, &wake, 0, SIGSETSIZE);
  for (;;) {
    struct seccomp_notif n;
    memset(&n, 0, sizeof n); /* SECCOMP_IOCTL_NOTIF_RECV requires a zeroed record */
    struct violation v = {0, 0};
    long r = SYS3(__NR_ioctl, listener_fd, SECCOMP_IOCTL_NOTIF_RECV, &n);
    if (r == 0) {
      if (exempt(&n)) continue;
      /* The kernel wrote it, so the program cannot forge it; the caller waits, the call never runs. */
      v.arch = n.data.arch;
      v.nr = n.data.nr;
    } else if (r == -ENOENT) {
      struct pollfd p = {listener_fd, POLLIN, 0};
      struct {
        long sec, nsec;
      } zero = {0, 0};
      SYS5(__NR_ppoll, &p, 1, &zero, 0, 0);
      if (p.revents & POLLHUP) break;
      v.arch = NATIVE_AUDIT_ARCH;
      v.nr = WITHDRAWN;
    } else if (r == -EINTR) {
      /*
       * The RECV was waiting, so no notification was counted and unread: the kernel takes a
       * pending one before it would sleep, signal or not (recv_wait_event in kernel/seccomp.c;
       * a semaphore's down before Linux 6.6). Once the main thread has asked (drain_watcher),
       * and no process of the run is left to queue another, everything has been read.
       */
      if (drain_requested) break;
      continue;
    } else {
      break;
    }
    /* CAPSULE_SIG_WAKE may interrupt a write that waits for room: write it again (PIPE_BUF: all or nothing). */
    while (SYS3(__NR_write, watch_pipe[1], &v, sizeof v) == -EINTR) {
    }
  }
  SYS1(__NR_close, watch_pipe[1]); /* EOF for the main thread: nothing more will come */
  return 0;
}

/*
 * clone(2) a thread on a stack of its own running fn(arg). The new thread starts
 * on its own stack at the instruction after the system call, so it cannot
 * return into C: these few instructions call fn there and exit the thread.
 * ctid: with CLONE_CHILD_CLEARTID, the word the kernel zeroes (and wakes a
 * futex on) when the thread ends; 0 otherwise.
 *   long start_thread(unsigned long flags, void *stack_top, int (*fn)(void *), void *arg, int *ctid)
 */
#if defined(__x86_64__)
__asm__(
    ".text\n.type start_thread,@function\nstart_thread:\n"
    "  mov %r8, %r10\n"  /* child_tid */
    "  mov %rdx, %r8\n"  /* fn: r8 is clone's tls, unused without CLONE_SETTLS */
    "  mov %rcx, %r9\n"  /* arg */
    "  xor %edx, %edx\n" /* parent_tid */
    "  mov $56, %eax\n"   /* __NR_clone */
    "  syscall\n"
    "  test %rax, %rax\n"
    "  jnz 1f\n"
    "  xor %ebp, %ebp\n"
    "  mov %r9, %rdi\n"
    "  call *%r8\n"
    "  mov %rax, %rdi\n"
    "  mov $60, %eax\n" /* __NR_exit: this thread only */
    "  syscall\n"
    "  hlt\n"
    "1: ret\n");
#elif defined(__aarch64__)
__asm__(
    ".text\n.type start_thread,%function\nstart_thread:\n"
    "  mov x10, x2\n"
    "  mov x11, x3\n"
    "  mov x2, #0\n" /* parent_tid */
    "  mov x3, #0\n" /* tls; x4 is child_tid already */
    "  mov x8, #220\n" /* __NR_clone */
    "  svc #0\n"
    "  cbnz x0, 1f\n"
    "  mov x29, #0\n"
    "  mov x0, x11\n"
    "  blr x10\n"
    "  mov x8, #93\n" /* __NR_exit */
    "  svc #0\n"
    "1: ret\n");
#endif
long start_thread(unsigned long flags, void *stack_top, int (*fn)(void *), void *arg, volatile int *ctid);

/*
 * CAPSULE_SIG_WAKE's handler does nothing: a handled signal (neither ignored nor the
 * default) is what makes the watcher's waiting RECV return EINTR. No SA_RESTART, which would
 * restart the RECV instead. x86-64 needs SA_RESTORER, a function that makes rt_sigreturn(2),
 * which libc would give; arm64's kernel returns through the vDSO's own.
 */
static void on_wake(int sig) { (void)sig; }
#if defined(__x86_64__)
__asm__(".text\n.type capsule_restore_rt,@function\ncapsule_restore_rt:\n  mov $15, %eax\n  syscall\n  hlt\n");
void capsule_restore_rt(void);
#endif
struct k_sigaction {
  void (*handler)(int);
  unsigned long flags;
  void (*restorer)(void);
  ksigset mask;
};
#define K_SA_RESTORER 0x04000000UL

static long install_wake_handler(void) {
  struct k_sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.handler = on_wake;
  sa.mask = ~0UL; /* nothing else runs inside the handler */
#if defined(__x86_64__)
  sa.flags = K_SA_RESTORER;
  sa.restorer = capsule_restore_rt;
#endif
  return SYS4(__NR_rt_sigaction, CAPSULE_SIG_WAKE, &sa, 0, SIGSETSIZE);
}

/*
 * Start the watcher on the listener the program's filter made. Returns the
 * read end of its pipe, or -1 when there is no listener or no watcher could
 * start (then no kill action can be enforced: the caller fails the run).
 * *waits_out: the kernel ends a RECV once no process uses the filter
 * (Linux 6.6, the same release as SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP), so at
 * the end the watcher's EOF can be waited for; before 6.6 it cannot.
 */
static long start_watcher(int listener, int *waits_out) {
  *waits_out = 0;
  listener_fd = listener;
  long r = SYS2(__NR_pipe2, watch_pipe, O_CLOEXEC);
  if (sys_failed(r)) return r;
  /* Only the main thread's end is non-blocking: a full pipe makes the watcher wait, never drop a record. */
  SYS3(__NR_fcntl, watch_pipe[0], F_SETFL, O_NONBLOCK);
  /*
   * SYNC_WAKE_UP: the watcher is woken on the calling thread's CPU and runs
   * as it blocks (seccomp_unotify(2)), so a notification is received before
   * the program's other threads get a chance to signal the caller.
   */
  unsigned long long sync = SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP;
  *waits_out = !sys_failed(SYS3(__NR_ioctl, listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, sync));
  long t = install_wake_handler();
  if (!sys_failed(t))
    t = start_thread(CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM,
                     watcher_stack + sizeof watcher_stack, watch_listener, 0, 0);
  if (sys_failed(t)) {
    SYS1(__NR_close, watch_pipe[0]);
    SYS1(__NR_close, watch_pipe[1]);
    return t;
  }
  watcher_tid = t;
  return watch_pipe[0];
}

/*
 * drain_watcher: the end of a run's watch, once no process of the run is left to make another
 * call and the keeper still keeps the filter in use. The watcher reads every notification the
 * kernel counted, each withdrawn one an ENOENT; only when none is left does its RECV wait, and
 * then CAPSULE_SIG_WAKE ends it with EINTR. Sent again every millisecond until the watcher's
 * pipe ends, since a signal that arrives between two RECVs is taken by the handler and leaves
 * nothing pending for the next. Reads what the watcher sends meanwhile.
 */
static void drain_watcher(long watched, struct violation *violation) {
  drain_requested = 1;
  long self = SYS0(__NR_getpid);
  for (int tries = 0; tries < 10000; tries++) {
    SYS3(__NR_tgkill, self, watcher_tid, CAPSULE_SIG_WAKE);
    struct pollfd w = {(int)watched, POLLIN, 0};
    struct {
      long sec, nsec;
    } ms = {0, 1000000};
    long n = SYS5(__NR_ppoll, &w, 1, &ms, 0, 0);
    if (n < 0) continue; /* EINTR */
    read_violations(watched, violation);
    if ((w.revents & (POLLHUP | POLLERR)) && !(w.revents & POLLIN)) return; /* EOF: the watcher has ended */
  }
}

/*
 * The keeper. Why: since Linux 6.10 a task's filter is released when the task exits (before,
 * when it was reaped), and once no task uses a filter, a RECV ends with ENOENT without taking
 * the notifications still counted (recv_wait_event). A program that had a forbidden call
 * withdrawn by a signal and then ended at once could so leave the watcher nothing to count,
 * and get OK. The keeper holds the filter for the whole run: it loads it (so only it and its
 * children have it; capsule-init's other threads do not) and forks the program, which
 * inherits it; then it waits until capsule-init exits. The program cannot end it: it is a
 * thread of the namespace's init, and signals from inside do not reach init's threads
 * (pid_namespaces(7)); every signal is blocked in it anyway.
 *
 * Its own calls pass through the filter: those the profile denies with "kill" reach the
 * listener, where capsule-init lets them through (exempt). capsule-init starts a keeper only
 * when the filter would fail none of its calls (keeper_fits); were its fork to fail anyway
 * (EAGAIN at a pids limit), it ends, and the program is forked as without a keeper. The
 * program's side runs exec_program: the signal mask reset, then execve.
 */
struct keeper_job {
  const char *path;
  char **argv, **envp;
  long instructions;
};
static struct keeper_job keeper_job;
static char keeper_stack[16384] __attribute__((aligned(16)));

static void exec_program(const char *path, char **argv, char **envp) {
  ksigset none = 0;
  SYS4(__NR_rt_sigprocmask, SIG_SETMASK, &none, 0, SIGSETSIZE);
  long r = SYS3(__NR_execve, path, argv, envp);
  report_error(STEP_exec, r, path);
  for (;;) SYS1(__NR_exit_group, r == -2 /* ENOENT */ ? 127 : 126);
}

static int keeper_thread(void *unused) {
  (void)unused;
  keeper_tid = SYS0(__NR_gettid);
  struct sock_fprog prog = {(unsigned short)keeper_job.instructions, filter};
  long r = SYS3(__NR_seccomp, SECCOMP_SET_MODE_FILTER,
                SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, &prog);
  if (r == -EINVAL) r = SYS3(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
  keeper_listener = r;
  __atomic_store_n(&keeper_stage, 1, __ATOMIC_RELEASE);
  SYS3(__NR_write, keeper_pipe[1], "", 1); /* the main thread waits for the listener in poll(2) */
  if (sys_failed(r)) return 0;
  /* fork_program, as the main thread would (CLONE_VFORK, CLONE_FILES), and the pid stored before the program runs. */
  long program = SYS5(__NR_clone, KEEPER_CLONE_FLAGS, 0, &program_tid, 0, 0);
  if (program == 0) exec_program(keeper_job.path, keeper_job.argv, keeper_job.envp);
  keeper_program = program;
  __atomic_store_n(&keeper_stage, 2, __ATOMIC_RELEASE);
  /* Wakes the main thread, which waits in poll(2) for this or a notification to answer. */
  SYS3(__NR_write, keeper_pipe[1], "", 1);
  if (sys_failed(program)) return 0; /* the main thread forks the program itself, once this thread is gone */
  /*
   * Hold the filter until capsule-init's exit_group(2) ends this thread, in the wait
   * keeper_fits chose: a call with no system call behind its number when the profile's
   * default is "kill" (a notification never answered: exempt), else ppoll(2) with nothing to
   * wait for, else a futex nobody wakes, each of them allowed or let through.
   */
  static int never;
  for (;;) {
    if (keeper_wait == 1)
      r = SYS0(KEEPER_PARK_NR);
    else if (keeper_wait == 2)
      r = SYS5(__NR_ppoll, 0, 0, 0, 0, 0);
    else
      r = SYS4(__NR_futex, &never, 128 /* FUTEX_WAIT_PRIVATE */, 0, 0);
    (void)r; /* none of them returns but for a signal, and every one is blocked here */
  }
}

/*
 * The filter's action for one call, worked out here by running its classic BPF program on
 * the seccomp_data the kernel would give it (seccomp(2) "Filter return values"): the keeper
 * is used only when every call it makes would be allowed or notified (then let through),
 * never failed with an errno, trapped or killed, which would fail the run. Returns the
 * action (SECCOMP_RET_ACTION_FULL bits), or 0 (SECCOMP_RET_KILL_THREAD) for an instruction
 * this evaluator does not know.
 */
static unsigned filter_action(long instructions, int nr, const unsigned long long args[6]) {
  struct seccomp_data d;
  memset(&d, 0, sizeof d);
  d.nr = nr;
  d.arch = NATIVE_AUDIT_ARCH;
  for (int i = 0; i < 6; i++) d.args[i] = args[i];
  const unsigned char *bytes = (const unsigned char *)&d;
  unsigned a = 0, x = 0, mem[BPF_MEMWORDS];
  memset(mem, 0, sizeof mem);
  for (long pc = 0; pc < instructions; pc++) {
    const struct sock_filter *f = &filter[pc];
    unsigned k = f->k;
    unsigned src = BPF_SRC(f->code) == BPF_X ? x : k;
    switch (f->code) {
      case BPF_LD | BPF_W | BPF_ABS:
        if (k > sizeof d - 4 || (k & 3)) return 0;
        memcpy(&a, bytes + k, 4);
        continue;
      case BPF_LD | BPF_W | BPF_LEN: a = sizeof d; continue;
      case BPF_LDX | BPF_W | BPF_LEN: x = sizeof d; continue;
      case BPF_LD | BPF_IMM: a = k; continue;
      case BPF_LDX | BPF_IMM: x = k; continue;
      case BPF_LD | BPF_MEM: if (k >= BPF_MEMWORDS) return 0; a = mem[k]; continue;
      case BPF_LDX | BPF_MEM: if (k >= BPF_MEMWORDS) return 0; x = mem[k]; continue;
      case BPF_ST: if (k >= BPF_MEMWORDS) return 0; mem[k] = a; continue;
      case BPF_STX: if (k >= BPF_MEMWORDS) return 0; mem[k] = x; continue;
      case BPF_MISC | BPF_TAX: x = a; continue;
      case BPF_MISC | BPF_TXA: a = x; continue;
      case BPF_RET | BPF_K: return k & SECCOMP_RET_ACTION_FULL;
      case BPF_RET | BPF_A: return a & SECCOMP_RET_ACTION_FULL;
      case BPF_JMP | BPF_JA: pc += k; continue;
      default: break;
    }
    if (BPF_CLASS(f->code) == BPF_ALU) {
      switch (BPF_OP(f->code)) {
        case BPF_ADD: a += src; break;
        case BPF_SUB: a -= src; break;
        case BPF_MUL: a *= src; break;
        case BPF_DIV: if (!src) return 0; a /= src; break;
        case BPF_MOD: if (!src) return 0; a %= src; break;
        case BPF_OR: a |= src; break;
        case BPF_AND: a &= src; break;
        case BPF_XOR: a ^= src; break;
        case BPF_LSH: a = src >= 32 ? 0 : a << src; break;
        case BPF_RSH: a = src >= 32 ? 0 : a >> src; break;
        case BPF_NEG: a = -a; break;
        default: return 0;
      }
      continue;
    }
    if (BPF_CLASS(f->code) == BPF_JMP) {
      int taken;
      switch (BPF_OP(f->code)) {
        case BPF_JEQ: taken = a == src; break;
        case BPF_JGT: taken = a > src; break;
        case BPF_JGE: taken = a >= src; break;
        case BPF_JSET: taken = (a & src) != 0; break;
        default: return 0;
      }
      pc += taken ? f->jt : f->jf;
      continue;
    }
    return 0;
  }
  return 0;
}

/* An action under which a call of capsule's own still works: allowed, or notified and let through. */
static int passes(unsigned action) {
  return action == SECCOMP_RET_ALLOW || action == SECCOMP_RET_USER_NOTIF || action == SECCOMP_RET_LOG;
}

/*
 * Can the keeper do its work under this filter? Its fork of the program, the program's mask
 * reset, the end of its own thread (were the fork to fail), the byte it writes when its fork
 * has returned, and one way to wait for good: the
 * park if the profile's default is "kill" (notified, never answered), else ppoll(2), else a
 * futex, each allowed or notified. Sets keeper_wait. Pointer arguments are given as 0: no
 * profile can tell them.
 */
static int keeper_fits(long instructions) {
  const unsigned long long none[6] = {0, 0, 0, 0, 0, 0};
  /*
   * Only a profile that ends the run on a call of this ABI (a kill action, compiled as a
   * notification) has a verdict to lose: `default` fails denied calls with an errno and
   * notifies only calls of another ABI, and then the program keeps PID 2. Every call number
   * with no arguments is tried, which finds a kill rule by name or a kill default.
   */
  int kills = 0;
  for (int nr = 0; nr < 512 && !kills; nr++) kills = filter_action(instructions, nr, none) == SECCOMP_RET_USER_NOTIF;
  if (!kills) return 0;
  const unsigned long long fork_args[6] = {KEEPER_CLONE_FLAGS, 0, 0, 0, 0, 0};
  const unsigned long long mask_args[6] = {SIG_SETMASK, 0, 0, SIGSETSIZE, 0, 0};
  const unsigned long long futex_args[6] = {0, 128 /* FUTEX_WAIT_PRIVATE */, 0, 0, 0, 0};
  if (!passes(filter_action(instructions, __NR_clone, fork_args))) return 0;
  if (!passes(filter_action(instructions, __NR_rt_sigprocmask, mask_args))) return 0;
  if (!passes(filter_action(instructions, __NR_exit, none))) return 0;
  const unsigned long long write_args[6] = {0, 0, 1, 0, 0, 0};
  if (!passes(filter_action(instructions, __NR_write, write_args))) return 0;
  if (filter_action(instructions, KEEPER_PARK_NR, none) == SECCOMP_RET_USER_NOTIF)
    keeper_wait = 1;
  else if (passes(filter_action(instructions, __NR_ppoll, none)))
    keeper_wait = 2;
  else if (passes(filter_action(instructions, __NR_futex, futex_args)))
    keeper_wait = 3;
  return keeper_wait != 0;
}

/*
 * Without a watcher (no thread could start: a pidsLimit that leaves room for
 * capsule-init and the program only), the main thread receives from the
 * listener itself when it polls readable. A notification was queued then, so
 * ENOENT still means it was withdrawn; one withdrawn before the poll is missed.
 */
static int receive_directly(int listener, struct violation *out) {
  struct seccomp_notif n;
  memset(&n, 0, sizeof n);
  long r = SYS3(__NR_ioctl, listener, SECCOMP_IOCTL_NOTIF_RECV, &n);
  if (r == 0 && exempt(&n)) return 0;
  if (r == 0) {
    out->arch = n.data.arch;
    out->nr = n.data.nr;
    return 1;
  }
  if (r != -ENOENT) return 0;
  out->arch = NATIVE_AUDIT_ARCH;
  out->nr = WITHDRAWN;
  return 1;
}

/* Read what the watcher sent; the first named call wins over a withdrawn one. Returns 1 if any. */
static int read_violations(long fd, struct violation *out) {
  struct violation v;
  int any = 0;
  while (SYS3(__NR_read, fd, &v, sizeof v) == (long)sizeof v) {
    if (out->arch == 0 || (out->nr == WITHDRAWN && v.nr != WITHDRAWN)) *out = v;
    any = 1;
  }
  return any;
}

/*
 * "capsule-prepared": a sandbox made ahead of time (src/ahead.ts). Every step
 * up to exec_init is done; the run it is for has not been asked for yet.
 * receive_run blocks in recvmsg(2) on descriptor 0, the sandbox's end of a
 * SOCK_SEQPACKET socketpair whose other end only capsule holds, for the one
 * message of that run (steps.h, struct capsule_go_header): the program's
 * argv and environment, and its stdin, stdout and stderr as SCM_RIGHTS
 * descriptors (unix(7)). A seqpacket socket delivers the message whole or
 * not at all, so a short read is a protocol error, not a partial run.
 *
 * Nothing untrusted exists yet: the program is forked only after this. The
 * descriptors arrive close-on-exec (MSG_CMSG_CLOEXEC) at the lowest free
 * numbers (5 to 7 here, as 0-4 are taken), are dup3(2)'d onto 0, 1 and 2 (the
 * socket's three copies go with it), and then closed, before read_filter
 * looks at descriptor 5. EOF (capsule closed its end: the sandbox is not
 * wanted) ends capsule-init with nothing run and nothing reported.
 *
 * The strings stay in go_buf, which lives as long as we do; the program's
 * argv and envp are built over it as main_init expects them: argv[0] is our
 * mode, argv[1] the program.
 */
struct go_iovec {
  void *base;
  unsigned long len;
};
struct go_msghdr { /* struct msghdr (socket(7)), as the kernel's ABI lays it out */
  void *name;
  int namelen;
  struct go_iovec *iov;
  unsigned long iovlen;
  void *control;
  unsigned long controllen;
  int flags;
};
struct go_cmsghdr { /* struct cmsghdr (cmsg(3)); the data follows, aligned to a long */
  unsigned long len;
  int level, type;
};
#define GO_SOL_SOCKET 1
#define GO_SCM_RIGHTS 1
#define GO_MSG_TRUNC 0x20
#define GO_MSG_CTRUNC 0x08
#define GO_MSG_CMSG_CLOEXEC 0x40000000

static char go_buf[sizeof(struct capsule_go_header) + CAPSULE_GO_MAX];
/* Each string takes at least its NUL, so there are at most CAPSULE_GO_MAX; plus argv[0] and two NULLs. */
static char *go_ptrs[CAPSULE_GO_MAX + 3];

/* Returns 1 with *argc, *argv and *envp set, 0 on EOF, or -errno. */
static long receive_run(int *argc, char ***argv, char ***envp) {
  struct go_iovec iov = {go_buf, sizeof go_buf};
  union {
    struct go_cmsghdr h;
    char space[sizeof(struct go_cmsghdr) + 4 * sizeof(int)];
  } control;
  struct go_msghdr msg = {0, 0, &iov, 1, &control, sizeof control, 0};
  long n;
  do n = SYS3(__NR_recvmsg, 0, &msg, GO_MSG_CMSG_CLOEXEC);
  while (n == -EINTR);
  if (n == 0) return 0;
  if (sys_failed(n)) return n;
  int fds[3] = {-1, -1, -1}, nfds = 0;
  if (msg.controllen >= sizeof control.h && control.h.level == GO_SOL_SOCKET && control.h.type == GO_SCM_RIGHTS) {
    nfds = (int)((control.h.len - sizeof control.h) / sizeof(int));
    const int *got = (const int *)(void *)(&control.h + 1);
    for (int i = 0; i < nfds && i < 3; i++) fds[i] = got[i];
  }
  const struct capsule_go_header *h = (const struct capsule_go_header *)(void *)go_buf;
  long ok = nfds == 3 && !(msg.flags & (GO_MSG_TRUNC | GO_MSG_CTRUNC)) && n >= (long)sizeof *h &&
            h->magic == CAPSULE_GO_MAGIC && h->bytes == (unsigned long)n - sizeof *h && h->bytes > 0 &&
            go_buf[n - 1] == 0 && h->argc >= 1 && h->argc <= CAPSULE_GO_MAX && h->envc <= CAPSULE_GO_MAX &&
            h->argc + h->envc <= h->bytes;
  /* The strings: exactly argc + envc of them, back to back. */
  unsigned count = 0;
  char **p = go_ptrs + 1;
  for (char *c = go_buf + sizeof *h; ok && c < go_buf + n; c++) {
    if (count == h->argc) *p++ = 0; /* argv's end, envp's start */
    *p++ = c;
    count++;
    while (*c) c++;
  }
  if (ok && count != h->argc + h->envc) ok = 0;
  if (ok && h->envc == 0) *p++ = 0;
  if (ok) *p = 0;
  for (int i = 0; i < 3 && ok; i++) {
    long r = SYS3(__NR_dup3, fds[i], i, 0);
    if (sys_failed(r)) ok = r;
  }
  for (int i = 0; i < nfds && i < 3; i++)
    if (fds[i] >= 0) SYS1(__NR_close, fds[i]);
  if (ok != 1) return ok == 0 ? -EPROTO : ok;
  go_ptrs[0] = "capsule-prepared";
  *argc = (int)h->argc + 1;
  *argv = go_ptrs;
  *envp = go_ptrs + h->argc + 2;
  return 1;
}

/* CLOCK_MONOTONIC in ns, for --explain's timings (the clock Node's hrtime reads). */
static long long now_ns(void) {
  struct {
    long sec, nsec;
  } ts = {0, 0};
  SYS2(__NR_clock_gettime, 1 /* CLOCK_MONOTONIC */, &ts);
  return (long long)ts.sec * 1000000000LL + ts.nsec;
}

static int main_init(int argc, char **argv, char **envp) {
  long long started_ns = now_ns();
  if (argc == 1 && same(argv[0], "capsule-hold")) return main_hold();
  if (argc == 1 && same(argv[0], "capsule-prepared")) {
    /* Not dumpable before the wait, which may be long: see below, and main_hold. */
    SYS5(__NR_prctl, PR_SET_DUMPABLE, 0, 0, 0, 0);
    long r = receive_run(&argc, &argv, &envp);
    if (r == 0) return 0; /* not wanted: nothing ran */
    if (sys_failed(r)) {
      report_error(STEP_receive_run, r, "the run's message on descriptor 0");
      return 125;
    }
    /*
     * Say it was read, before the program exists: if we die before this line, capsule knows
     * the run never began and launches it again instead of reporting a run that did not
     * happen (steps.h CAPSULE_RECEIVED_MAGIC; after it, a death is the run's own end).
     */
    struct capsule_init_report received;
    memset(&received, 0, sizeof received);
    received.magic = CAPSULE_RECEIVED_MAGIC;
    SYS3(__NR_write, CAPSULE_FD_STATUS, &received, sizeof received);
    started_ns = now_ns(); /* the run begins here, not at exec_init */
  }
  const int oci = starts_with(argv[0], "capsule-oci");
  const int oci_wait = same(argv[0], "capsule-oci"); /* before "--tty" shifts argv */
  oci_join = same(argv[0], "capsule-oci-join");
  oci_pid1 = SYS0(__NR_getpid) == 1;
  const int join = same(argv[0], "capsule-join") || oci_join;
  if (join) capsule_pid = SYS0(__NR_getppid);
  int tty = argc >= 2 && same(argv[1], "--tty");
  if (tty) {
    argv++;
    argc--;
  }
  if (argc < 2 && !oci_wait) return 125;
  /* The pipes are for capsule-init alone: the program must not inherit them. */
  SYS3(__NR_fcntl, CAPSULE_FD_ERROR, F_SETFD, FD_CLOEXEC);
  SYS3(__NR_fcntl, CAPSULE_FD_STATUS, F_SETFD, FD_CLOEXEC);
  SYS3(__NR_fcntl, CAPSULE_FD_SECCOMP, F_SETFD, FD_CLOEXEC);

  /*
   * Not dumpable: /proc/1 becomes root's and ptrace(2) of PID 1 needs
   * CAP_SYS_PTRACE, so the program (the same uid) cannot read or write our
   * memory, descriptors or status pipe (proc(5), PR_SET_DUMPABLE(2const)).
   */
  SYS5(__NR_prctl, PR_SET_DUMPABLE, 0, 0, 0, 0);

  long instructions = read_filter();
  if (instructions < 0) {
    report_error(STEP_load_seccomp, instructions, "reading the filter from descriptor 5");
    return 125;
  }

  /* Every signal stays blocked (as the launch left it) and is read from a signalfd. */
  ksigset all = ~0UL;
  SYS4(__NR_rt_sigprocmask, SIG_SETMASK, &all, 0, SIGSETSIZE);
  long sfd = SYS4(__NR_signalfd4, -1, &all, SIGSETSIZE, O_CLOEXEC | O_NONBLOCK);
  if (sys_failed(sfd)) {
    report_error(STEP_fork_program, sfd, "signalfd4");
    return 125;
  }

  /*
   * OCI modes: the program must exist before create returns; then tell
   * capsule the container is ready, and with "capsule-oci" wait for start.
   */
  const char *path = argv[1];
  if (oci && argc < 2) {
    /*
     * config.json without a process: the container is created and waits, but has nothing
     * to start (`start` refuses it, src/oci/container.ts); any signal ends it.
     */
    struct capsule_init_report ready;
    memset(&ready, 0, sizeof ready);
    ready.magic = CAPSULE_READY_MAGIC;
    SYS3(__NR_write, CAPSULE_FD_STATUS, &ready, sizeof ready);
    int code = wait_for_start(sfd);
    return code ? code : 127;
  }
  if (oci) {
    long r = find_program(argv[1], envp);
    if (sys_failed(r)) {
      /* runc's words, which engines match on to answer 127 or 126 (podman's "executable file not found"). */
      static char detail[CAPSULE_DETAIL_MAX];
      const char *parts[] = {"\"", program_path, "\": executable file not found in $PATH"};
      unsigned n = 0;
      for (unsigned i = 0; i < 3; i++)
        for (const char *p = parts[i]; *p && n + 1 < sizeof detail; p++) detail[n++] = *p;
      detail[n] = 0;
      report_error(STEP_exec, r, r == -ENOENT && !starts_with(argv[1], "/") ? detail : program_path);
      return r == -ENOENT ? 127 : 126;
    }
    path = program_path;
    struct capsule_init_report ready;
    memset(&ready, 0, sizeof ready);
    ready.magic = CAPSULE_READY_MAGIC;
    ready.started_ns = started_ns;
    /*
     * A PID namespace joined by path (a pod's, k8s shareProcessNamespace):
     * setns(2) put only our children in it, so the container's process is a
     * child forked now, which waits for start and becomes the program, and
     * we hand it over and exit: its pid goes in the ready record (the
     * container's pid for `create`), and it is reparented to the engine's
     * subreaper, which waits on it as on any container's PID 1, as runc's
     * intermediate process does. The child keeps our blocked mask and reads
     * its own signals from the signalfd it inherits.
     */
    if (!join && pid_ns_joined()) {
      long child = SYS5(__NR_clone, SIGCHLD, 0, 0, 0, 0);
      if (sys_failed(child)) {
        report_error(STEP_fork_program, child, "into the joined PID namespace");
        return 125;
      }
      if (child == 0) {
        if (oci_wait) {
          int code = wait_for_start(sfd);
          if (code) for (;;) SYS1(__NR_exit_group, code);
        }
        exec_in_place(path, argv + 1, envp, tty);
      }
      ready.wait_status = (int)child;
      SYS3(__NR_write, CAPSULE_FD_STATUS, &ready, sizeof ready);
      return 0;
    }
    SYS3(__NR_write, CAPSULE_FD_STATUS, &ready, sizeof ready);
    if (oci_wait) {
      int code = wait_for_start(sfd);
      if (code) return code;
    }
    /*
     * A container's PID 1 is its program, as under runc: the engine signals
     * and waits on it directly, and tools read /proc/1 as the program's. So
     * capsule-init execs it in place (its filter was loaded before exec_init,
     * oci.cc) instead of forking it: nothing is left to report that the
     * program's own exit status does not say. The signalfd is close-on-exec.
     * An exec into a container ("capsule-oci-join") still forks: setns put
     * only our children in its PID namespace.
     */
    if (!join) exec_in_place(path, argv + 1, envp, tty);
  }

  /*
   * The number the filter's listener will get in the child: the lowest free
   * one (open(2)), found by taking it and giving it back. Nothing else opens
   * a descriptor between here and the child's seccomp call.
   */
  long listener = SYS3(__NR_fcntl, CAPSULE_FD_STATUS, F_DUPFD_CLOEXEC, 0);
  if (!sys_failed(listener)) SYS1(__NR_close, listener);

  /*
   * fork_program: clone(2) with CLONE_FILES, so the listener the child
   * creates is ours too, and CLONE_VFORK, so we go on only once the child
   * has exec'd (its table unshared) or failed. Not CLONE_VM: the child has
   * its own copy of our memory, as after fork(2).
   */
  int watcher_ends = 0, direct = 0;
  long watched = -1, program = 0;
  /*
   * With a filter and PID 1's protection (not a session's command, which may be signalled
   * from its box), without a terminal (whose setup run_program does after the fork, where
   * the keeper's filter would judge it): the keeper loads the filter and forks the program.
   */
  int keeper = 0;
  struct violation early = {0, 0}; /* a call denied before the program's exec: its execve, say */
  if (instructions > 0 && !tty && !join && SYS0(__NR_getpid) == 1 && keeper_fits(instructions)) {
    keeper_job.path = path;
    keeper_job.argv = argv + 1;
    keeper_job.envp = envp;
    keeper_job.instructions = instructions;
    keeper_alive = 1;
    long t = SYS2(__NR_pipe2, keeper_pipe, O_CLOEXEC);
    if (!sys_failed(t))
      t = start_thread(CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM |
                              CLONE_CHILD_CLEARTID,
                          keeper_stack + sizeof keeper_stack, keeper_thread, 0, &keeper_alive);
    keeper = !sys_failed(t); /* EAGAIN at the pids limit: the program is forked below, as before */
  }
  if (keeper) {
    /*
     * The waits below poll what the keeper writes (it makes no system call to say so): a
     * timer slack of 1 ns keeps each 10 us sleep 10 us, not the default 50 us more
     * (PR_SET_TIMERSLACK(2const)). For this thread only: the keeper, started before it, and
     * so the program it forks keep the default.
     */
    SYS5(__NR_prctl, PR_SET_TIMERSLACK, 1, 0, 0, 0);
    /* The keeper's byte says the listener is there; a write the profile notifies waits for nobody: poll the flag too. */
    while (__atomic_load_n(&keeper_stage, __ATOMIC_ACQUIRE) < 1) {
      struct pollfd l = {keeper_pipe[0], POLLIN, 0};
      struct {
        long sec, nsec;
      } t = {0, 10000};
      SYS5(__NR_ppoll, &l, 1, &t, 0, 0);
    }
    if (sys_failed(keeper_listener)) {
      report_error(STEP_load_seccomp, keeper_listener, "seccomp(SECCOMP_SET_MODE_FILTER)");
      return 125;
    }
    /*
     * Until the keeper's fork returns (the program has exec'd, or failed to), this thread
     * answers the listener itself: the keeper's calls are let through, the program's mask
     * reset too, and anything else is a violation (an execve the profile denies) that ends
     * the wait. CLONE_VFORK holds the keeper until then, and the error pipe must stay open
     * until the exec (its close-on-exec EOF is how capsule knows the exec happened).
     */
    listener_fd = (int)keeper_listener;
    while (__atomic_load_n(&keeper_stage, __ATOMIC_ACQUIRE) < 2 && early.arch == 0) {
      struct pollfd l[2] = {{listener_fd, POLLIN, 0}, {keeper_pipe[0], POLLIN, 0}};
      if (SYS5(__NR_ppoll, l, 2, 0, 0, 0) <= 0) continue;
      if (l[0].revents & POLLIN) receive_directly(listener_fd, &early);
      if (l[1].revents & POLLIN) {
        char bytes[2];
        SYS3(__NR_read, keeper_pipe[0], bytes, sizeof bytes);
      }
    }
    /* The read end only: the keeper may write to the other until it has, and its number must not be reused first. */
    SYS1(__NR_close, keeper_pipe[0]);
    if (early.arch == 0 && sys_failed(keeper_program)) {
      /*
       * The keeper could not fork (EAGAIN at a pids limit with room for two tasks): it ends,
       * and the program is forked below as before, with a filter of its own. Its exit is
       * answered here if notified, and its pid is free once its thread is gone.
       */
      while (__atomic_load_n(&keeper_alive, __ATOMIC_ACQUIRE)) {
        struct pollfd l = {listener_fd, POLLIN, 0};
        struct {
          long sec, nsec;
        } t = {0, 50000};
        struct violation ignored = {0, 0};
        if (SYS5(__NR_ppoll, &l, 1, &t, 0, 0) > 0 && (l.revents & POLLIN)) receive_directly(listener_fd, &ignored);
      }
      SYS1(__NR_close, listener_fd);
      listener_fd = -1;
      keeper = 0;
      keeper_tid = -1;
    } else {
      program = program_tid;
      watched = start_watcher(listener_fd, &watcher_ends);
      if (sys_failed(watched)) {
        watched = listener_fd;
        direct = 1;
      }
    }
  }
  if (!keeper) {
    /* The listener's number again: a keeper that ended may have taken the one worked out above. */
    listener = SYS3(__NR_fcntl, CAPSULE_FD_STATUS, F_DUPFD_CLOEXEC, 0);
    if (!sys_failed(listener)) SYS1(__NR_close, listener);
    for (int tries = 0;; tries++) {
      program = SYS5(__NR_clone, CLONE_VFORK | CLONE_FILES | SIGCHLD, 0, 0, 0, 0);
      /* A keeper's pid is freed just after its thread is gone: EAGAIN may outlive it by a moment. */
      if (program != -EAGAIN || tries >= 200 || instructions == 0) break;
      struct {
        long sec, nsec;
      } t = {0, 100000};
      SYS2(__NR_nanosleep, &t, 0);
    }
    if (sys_failed(program)) {
      report_error(STEP_fork_program, program, argv[1]);
      return 125;
    }
    if (program == 0) run_program(path, argv + 1, envp, instructions, tty);
    if (instructions == 0 || sys_failed(listener) || sys_failed(SYS3(__NR_fcntl, listener, F_GETFD, 0)))
      listener = -1;
    /* The watcher, or (no thread could start, e.g. EAGAIN at the pids limit) the listener itself. */
    if (listener >= 0) {
      watched = start_watcher((int)listener, &watcher_ends);
      if (sys_failed(watched)) {
        watched = listener;
        direct = 1;
      }
    }
  }
  long long forked_ns = now_ns();

  /* The error pipe now belongs to the program's exec: closing ours lets capsule see its EOF. */
  SYS1(__NR_close, CAPSULE_FD_ERROR);

  int status = 0, done = 0, reaped = 0;
  struct violation violation = early;
  if (early.arch != 0) status = SIGSYS, done = 1; /* as a violation read below would */
  struct pollfd fds[2] = {{(int)sfd, POLLIN, 0}, {(int)watched, POLLIN, 0}};
  while (!done) {
    fds[0].revents = fds[1].revents = 0;
    /* A negative fd is skipped by poll(2): once the watcher is done, it is not watched. */
    long n = SYS5(__NR_ppoll, fds, 2, 0, 0, 0);
    if (n < 0) continue; /* EINTR */
    if (fds[1].revents & POLLIN) {
      if (direct ? receive_directly(fds[1].fd, &violation) : read_violations(fds[1].fd, &violation)) {
        /* As SECCOMP_RET_KILL_PROCESS would have it, but known and reported. */
        status = SIGSYS;
        break;
      }
    }
    if (fds[1].revents & (POLLHUP | POLLERR | POLLNVAL)) fds[1].fd = -1;
    struct signalfd_siginfo si;
    while (!done && SYS3(__NR_read, sfd, &si, sizeof si) == (long)sizeof si) {
      int sig = (int)si.ssi_signo;
      if (sig == SIGCHLD) {
        /* Whoever sent it, reaping with WNOHANG only finds what has really ended. */
        int st;
        long p;
        while ((p = SYS4(__NR_wait4, -1, &st, WNOHANG, 0)) > 0) {
          if (p == program) {
            status = st;
            done = 1;
            reaped = 1;
          }
        }
      } else if (oci ? !from_engine(&si) : join ? !from_capsule(&si) : !from_outside(&si)) {
        /* From inside the sandbox: a control signal capsule did not send. Dropped. */
      } else if (sig == CAPSULE_SIG_TERMINATE) {
        status = SIGKILL; /* as if killed: the caller knows why, it sent this */
        done = 1;
      } else if (oci ? sig != CAPSULE_SIG_START : forwarded(sig)) {
        SYS2(__NR_kill, program, sig);
      }
    }
  }

  /*
   * The program is gone: end everything it left behind (kill(2) with -1 from
   * PID 1 reaches every other process of the namespace, not our own threads)
   * and reap it all, so their CPU time is counted in the rusage below.
   */
  if (!join && SYS0(__NR_getpid) == 1) SYS2(__NR_kill, -1, SIGKILL);
  /*
   * A session's command: only the program, our own child, still unreaped so its
   * pid cannot have been reused. What it started is in the command's cgroup,
   * which capsule empties once we have exited (src/session.ts).
   */
  else if (!reaped) SYS2(__NR_kill, program, SIGKILL);
  long p;
  while ((p = SYS4(__NR_wait4, -1, 0, 0, 0)) > 0 || p == -4 /* EINTR */) {
  }

  /*
   * With the keeper, the filter is still in use: drain_watcher has the watcher read every
   * call the kernel counted, withdrawn ones too, and end; without a watcher thread, what the
   * listener still holds is read here.
   *
   * Without it: nothing uses the filter now, so the watcher's last RECV returns and it
   * closes its pipe (Linux 6.6 and later): wait for that EOF, so that a call
   * withdrawn just before the end is still counted (unless the kernel ended the RECV
   * first: see the keeper). Before 6.6 its RECV may never return: take only what it
   * has sent.
   */
  if (keeper && watched >= 0 && !direct) {
    drain_watcher(watched, &violation);
    if (violation.arch != 0) status = SIGSYS;
  } else if (keeper && direct) {
    for (;;) {
      struct pollfd l = {(int)watched, POLLIN, 0};
      struct {
        long sec, nsec;
      } zero = {0, 0};
      if (SYS5(__NR_ppoll, &l, 1, &zero, 0, 0) <= 0 || !(l.revents & POLLIN)) break;
      receive_directly((int)watched, &violation);
    }
    if (violation.arch != 0) status = SIGSYS;
  } else if (watched >= 0 && !direct) {
    for (;;) {
      read_violations(watched, &violation);
      if (!watcher_ends) break;
      struct pollfd w = {(int)watched, POLLIN, 0};
      long n = SYS5(__NR_ppoll, &w, 1, 0, 0, 0);
      if (n < 0) continue;
      if ((w.revents & POLLIN) == 0) break; /* POLLHUP alone: EOF */
    }
    if (violation.arch != 0) status = SIGSYS;
  }

  /*
   * getrusage(RUSAGE_CHILDREN): the program and every descendant we reaped.
   * Not our own: we began on the Node process's memory (CLONE_VM), so our
   * peak RSS is Node's.
   */
  struct rusage ru;
  memset(&ru, 0, sizeof ru);
  SYS2(__NR_getrusage, RUSAGE_CHILDREN, &ru);
  struct capsule_init_report report = {
      CAPSULE_REPORT_MAGIC,
      status,
      (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
      (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec,
      ru.ru_maxrss,
      violation.arch,
      violation.nr,
      started_ns,
      forked_ns,
  };
  SYS3(__NR_write, CAPSULE_FD_STATUS, &report, sizeof report);
  if ((status & 0x7f) == 0) return (status >> 8) & 0xff;
  return 128 + (status & 0x7f);
}

/* The entry point the kernel jumps to: argc, argv and envp are on the stack (execve(2)). */
__attribute__((used)) static void start_c(long *sp) {
  int argc = (int)sp[0];
  char **argv = (char **)(sp + 1);
  char **envp = argv + argc + 1;
  for (;;) SYS1(__NR_exit_group, main_init(argc, argv, envp));
}

#if defined(__x86_64__)
__asm__(".text\n.global _start\n_start:\n  xor %rbp, %rbp\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call start_c\n  hlt\n");
#elif defined(__aarch64__)
__asm__(".text\n.global _start\n_start:\n  mov x29, #0\n  mov x30, #0\n  mov x0, sp\n  bl start_c\n");
#endif
