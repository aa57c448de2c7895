/*
 * The child's process-level setup: its tie to capsule, its signals, its
 * session and its hostname.
 */
#include <linux/prctl.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>

#include "config.h"
#include "sys.h"

/*
 * set_pdeathsig + check_parent, as one step that can be repeated. prctl(2):
 * the setting is "cleared upon changes to ... effective user ID, effective
 * group ID", so set_uid disarms it and child_identity calls this again after
 * the drop (bubblewrap re-arms it after switching user for the same reason).
 */
void child_arm_pdeathsig(const struct child_config *cfg, int parent_pidfd) {
  /*
   * set_pdeathsig: SIGKILL us when the thread that cloned us dies
   * (PR_SET_PDEATHSIG(2const)). capsule clones from a libuv pool thread, which
   * lives as long as the Node process. capsule-init keeps this across its
   * execve (it is not set-user-ID), and when PID 1 of a PID namespace dies the
   * kernel kills every other process in it (pid_namespaces(7)): so nothing of
   * the sandbox outlives capsule.
   */
  long r = SYS5(__NR_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (sys_failed(r)) child_fail(cfg, STEP_set_pdeathsig, r, "PR_SET_PDEATHSIG");
  child_trace(cfg, STEP_set_pdeathsig, -1);

  /*
   * check_parent: the thread that cloned us may have died before the prctl
   * above, in which case no signal will ever come. getppid() cannot tell (it
   * is 0 across a PID namespace), so the parent handed us a pidfd, which
   * polls readable once what it names has exited (pidfd_open(2)). Where the
   * kernel has PIDFD_THREAD (Linux 6.9) it names that thread, the one
   * PR_SET_PDEATHSIG follows; elsewhere the whole process (parent_pidfd).
   */
  struct pollfd pfd = {parent_pidfd, POLLIN, 0};
  r = SYS3(__NR_poll, &pfd, 1, 0);
  if (sys_failed(r)) child_fail(cfg, STEP_check_parent, r, "poll(pidfd)");
  if (pfd.revents & POLLNVAL) child_fail(cfg, STEP_check_parent, -EBADF, "capsule's pidfd");
  if (pfd.revents & POLLIN) SYS1(__NR_exit, 125); /* capsule is gone: nobody to report to */
  child_trace(cfg, STEP_check_parent, -1);
}

void child_signals_and_parent(const struct child_config *cfg) {
  child_arm_pdeathsig(cfg, cfg->fd_sources[CAPSULE_FD_PARENT]);
  child_reset_signals(cfg);
}

void child_reset_signals(const struct child_config *cfg) {
  /*
   * reset_signals: the parent blocked every signal before clone so that no
   * Node handler can run on this shared memory. We have our own copy of the
   * handler table (no CLONE_SIGHAND); put every signal back to SIG_DFL, since
   * execve keeps SIG_IGN and Node ignores SIGPIPE (a program that inherits
   * that never dies of a closed pipe). The mask stays full until capsule-init
   * sets its own.
   */
  struct {
    unsigned long handler, flags, restorer, mask;
  } dfl = {0, 0, 0, 0}; /* SIG_DFL */
  long r;
  for (int sig = 1; sig <= 64; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    r = SYS4(__NR_rt_sigaction, sig, &dfl, 0, 8); /* EINVAL for reserved numbers: nothing to reset */
    (void)r;
  }
  child_trace(cfg, STEP_reset_signals, -1);
}

/*
 * set_hostname: the UTS namespace is ours alone, so this changes nothing on
 * the host (uts_namespaces(7), sethostname(2)).
 *
 * new_session: setsid(2) leaves the sandbox without a controlling terminal,
 * so a program cannot push keystrokes into the caller's shell with TIOCSTI
 * (CVE-2017-5226, bubblewrap's --new-session). It never fails here: we are
 * PID 1 of a new PID namespace, so no process group has our id.
 */
void child_hostname(const struct child_config *cfg) {
  long r = SYS2(__NR_sethostname, cfg->hostname, c_strlen(cfg->hostname));
  if (sys_failed(r)) child_fail(cfg, STEP_set_hostname, r, cfg->hostname);
  child_trace(cfg, STEP_set_hostname, -1);
  r = SYS0(__NR_setsid);
  if (sys_failed(r)) child_fail(cfg, STEP_new_session, r, "setsid");
  child_trace(cfg, STEP_new_session, -1);
}

/* ------------------------------ parent half ------------------------------ */

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL /* <linux/pidfd.h>, Linux 6.9 */
#endif

/*
 * The pidfd check_parent polls. PR_SET_PDEATHSIG fires when the *thread*
 * that cloned the child exits, not the process (PR_SET_PDEATHSIG(2const)), so
 * the check must look at that thread: a process pidfd would not see a thread
 * that died while the process lived on, and the sandbox would then be tied to
 * nothing. pidfd_open(gettid(), PIDFD_THREAD) names exactly that thread and
 * polls readable when it exits (pidfd_open(2)). One per cloning thread (libuv's
 * pool threads live as long as the process), kept until the thread ends. A
 * kernel before 6.9 answers EINVAL: then the process pidfd, which still
 * covers the case that matters most, the whole of capsule dying.
 */
int parent_pidfd(int process_pidfd, bool &thread) {
  struct Cached {
    int fd = -1;
    ~Cached() {
      if (fd >= 0) close(fd);
    }
  };
  static thread_local Cached cached;
  static std::atomic<bool> unsupported{false};
  if (cached.fd < 0 && !unsupported.load(std::memory_order_relaxed)) {
    long fd = syscall(SYS_pidfd_open, static_cast<pid_t>(syscall(SYS_gettid)), PIDFD_THREAD);
    if (fd >= 0) cached.fd = static_cast<int>(fd);
    else if (errno == EINVAL) unsupported.store(true, std::memory_order_relaxed);
  }
  thread = cached.fd >= 0;
  return thread ? cached.fd : process_pidfd;
}
