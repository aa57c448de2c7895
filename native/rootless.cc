/*
 * Rootless capsule: the sandbox without CAP_SYS_ADMIN in the initial user
 * namespace, as bubblewrap (unprivileged mode), podman and nsjail run it.
 *
 * Why it works: clone(2) with CLONE_NEWUSER beside the other CLONE_NEW*
 * flags makes the user namespace first and the others owned by it
 * (user_namespaces(7): "the user namespace is created first"), so the child
 * holds every capability over its own mount, PID, network, IPC and UTS
 * namespaces and can build the sandbox as root does, but only there. What a
 * user namespace never allows (mknod of a device, a write through setgroups
 * once denied, anything over the host's resources) is done another way or
 * not at all; docs/security.md lists the differences.
 *
 * map_user_ids: the child maps its own ids, one each: "UID HOSTUID 1" where
 * HOSTUID is the caller's effective uid (the rule an unprivileged writer
 * must follow: a single line mapping the writer's effective id, written by
 * a process of the namespace or its parent with the creator's euid;
 * user_namespaces(7), "Defining user and group ID mappings"). gid_map needs
 * setgroups denied first (the CVE-2014-8989 fix): the caller's supplementary
 * groups stay with the sandbox, shown as the overflow gid, and cannot be
 * dropped (set_groups is skipped, identity.cc). The parent cannot write the
 * maps: it is suspended in CLONE_VFORK until the child execs.
 *
 * With a subordinate range (/etc/subuid and /etc/subgid grant the caller
 * one, src/rootless.ts): only the setuid newuidmap(1) and newgidmap(1) may
 * write a map of more than the writer's own id, and they take the pid of a
 * process already in the namespace, from outside it. The thread that cloned
 * is suspended (CLONE_VFORK) and the child may make only raw system calls,
 * so a helper thread started before clone does it:
 *
 *   parent, before clone   socketpair(AF_UNIX, SOCK_SEQPACKET), SO_PASSCRED on
 *                          the helper's end; the helper thread blocks in recvmsg
 *   child, map_user_ids    write(socket, "m"): the kernel attaches the child's
 *                          credentials, its pid translated into the receiver's
 *                          PID namespace (unix(7), SO_PASSCRED; the child's own
 *                          getpid() says 1, CLONE_NEWPID); then read(socket) and
 *                          wait, its ids still unmapped
 *   helper                 newuidmap PID ranges... and newgidmap PID ranges...
 *                          at once (posix_spawn, waitpid), then one reply record:
 *                          errno 0, or the errno and what the tool printed
 *   child                  goes on, or fails map_user_ids with that record
 *
 * EOF on either side ends the other: the child dying before it asks (the
 * helper sees EOF once clone has returned and the parent's copy of the
 * child's end is closed), or the helper failing to answer (the child reads
 * 0 bytes and fails the step). newgidmap leaves setgroups allowed when a
 * range comes from /etc/subgid (shadow's CVE-2018-7169 fix denies it only
 * for a map of the caller's own gid alone), so set_groups drops the caller's
 * supplementary groups as with root.
 */
#include "rootless.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <pthread.h>

#include <vector>

#include "config.h"
#include "sys.h"

extern char **environ;

namespace {

/* The helper's answer to the child: fixed size, one SOCK_SEQPACKET record. */
struct map_reply {
  int err; /* 0: both maps written; else an errno, positive */
  char detail[CAPSULE_DETAIL_MAX];
};

}  // namespace

/*
 * The parent's half of a mapping by newuidmap/newgidmap: a thread that
 * waits for the child's request, runs both tools and answers.
 */
struct IdMapHelper {
  int sock[2] = {-1, -1}; /* [0] the helper's, [1] the child's */
  std::vector<std::string> uid_args, gid_args;
  pthread_t thread;
  bool started = false;

  ~IdMapHelper() {
    close_child_end();
    if (started) pthread_join(thread, nullptr);
    if (sock[0] >= 0) close(sock[0]);
  }
  void close_child_end() {
    if (sock[1] >= 0) close(sock[1]);
    sock[1] = -1;
  }

  /* One run of newuidmap or newgidmap: started, then finished (both run at once). */
  struct Tool {
    std::string cmd; /* the command line, for the detail */
    pid_t pid = -1;
    int out = -1; /* its stdout and stderr */
    int err = 0;  /* posix_spawn's errno, or 0 */
  };

  static Tool start_tool(const std::vector<std::string> &args) {
    Tool t;
    for (const std::string &a : args) t.cmd += (t.cmd.empty() ? "" : " ") + a;
    std::vector<char *> argv;
    for (const std::string &a : args) argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) {
      t.err = errno;
      return t;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, out[1], 2);
    t.err = posix_spawn(&t.pid, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    if (t.err != 0) close(out[0]);
    else t.out = out[0];
    return t;
  }

  /*
   * Wait for a tool; 0, or an errno with reply.detail naming the command and
   * the last line it printed (shadow's tools print why they refused: the
   * range not granted, the write that failed and its errno).
   */
  static int finish_tool(Tool &t, map_reply &reply) {
    if (t.err != 0) {
      snprintf(reply.detail, sizeof reply.detail, "posix_spawn %s", t.cmd.c_str());
      return t.err;
    }
    std::string said;
    char buf[512];
    ssize_t n;
    while ((n = read(t.out, buf, sizeof buf)) != 0) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;
      if (said.size() < 4096) said.append(buf, static_cast<size_t>(n));
    }
    close(t.out);
    int status = 0;
    while (waitpid(t.pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    while (!said.empty() && (said.back() == '\n' || said.back() == ' ')) said.pop_back();
    const size_t nl = said.rfind('\n');
    if (nl != std::string::npos) said = said.substr(nl + 1);
    if (WIFSIGNALED(status))
      snprintf(reply.detail, sizeof reply.detail, "%s: killed by signal %d", t.cmd.c_str(), WTERMSIG(status));
    else
      snprintf(reply.detail, sizeof reply.detail, "%s: %s", t.cmd.c_str(),
               said.empty() ? "exited non-zero, saying nothing" : said.c_str());
    /* The tools exit 1 for every refusal; EPERM is what the kernel says to a map not granted. */
    return EPERM;
  }

  void serve() {
    char byte;
    char control[CMSG_SPACE(sizeof(struct ucred))];
    struct iovec iov = {&byte, 1};
    struct msghdr msg;
    std::memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n;
    do n = recvmsg(sock[0], &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n <= 0) return; /* EOF: the child never asked (it failed earlier, or clone did) */
    pid_t pid = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
        struct ucred cred;
        std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
        pid = cred.pid;
      }
    map_reply reply;
    std::memset(&reply, 0, sizeof reply);
    if (pid <= 0) {
      reply.err = EPROTO;
      snprintf(reply.detail, sizeof reply.detail, "SCM_CREDENTIALS: the child's pid did not come with its request");
    } else {
      /* The pid goes in after the tool's name: newuidmap PID INSIDE OUTSIDE COUNT ... (newuidmap(1)). */
      std::vector<std::string> u = uid_args, g = gid_args;
      u.insert(u.begin() + 1, std::to_string(pid));
      g.insert(g.begin() + 1, std::to_string(pid));
      /* Both at once: neither map depends on the other, and each tool is a setuid exec. */
      Tool tu = start_tool(u), tg = start_tool(g);
      map_reply other;
      std::memset(&other, 0, sizeof other);
      reply.err = finish_tool(tu, reply);
      const int gerr = finish_tool(tg, other);
      if (reply.err == 0 && gerr != 0) {
        reply.err = gerr;
        std::memcpy(reply.detail, other.detail, sizeof reply.detail);
      }
    }
    while (send(sock[0], &reply, sizeof reply, MSG_NOSIGNAL) < 0 && errno == EINTR) {
    }
  }
};

namespace {

std::vector<std::string> tool_args(const std::string &tool, const std::vector<uint32_t> &ranges) {
  std::vector<std::string> args{tool};
  for (uint32_t v : ranges) args.push_back(std::to_string(v));
  return args;
}

}  // namespace

bool rootless_prepare(const SandboxOptions &opts, Plan &plan, int &err, std::string &what) {
  child_config &c = plan.cfg;
  c.rootless = 1;
  c.map_socket = -1;
  /*
   * A command of a rootless session joins the box's user namespace, whose maps
   * were written when the box was made (child.cc, join_box): nothing to map.
   * `rootless` then only tells set_groups whether setgroups is denied there
   * (identity.cc): it is with one id mapped; with a range (idMap given, as
   * src/session.ts does when the box's /proc/PID/setgroups says "allow") it
   * is not, and the caller's groups are dropped as in the box.
   */
  if (opts.join_pidfd >= 0) {
    c.rootless = opts.newuidmap.empty() ? 1 : 0;
    return true;
  }
  if (opts.newuidmap.empty()) {
    char buf[64];
    snprintf(buf, sizeof buf, "%u %u 1\n", opts.uid, static_cast<unsigned>(geteuid()));
    plan.uid_map = buf;
    snprintf(buf, sizeof buf, "%u %u 1\n", opts.gid, static_cast<unsigned>(getegid()));
    plan.gid_map = buf;
    c.uid_map = plan.uid_map.c_str();
    c.gid_map = plan.gid_map.c_str();
    return true;
  }
  auto h = std::make_shared<IdMapHelper>();
  h->uid_args = tool_args(opts.newuidmap, opts.uid_ranges);
  h->gid_args = tool_args(opts.newgidmap, opts.gid_ranges);
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, h->sock) != 0) {
    err = errno;
    what = "socketpair for newuidmap's helper";
    return false;
  }
  /* SO_PASSCRED before the child can send: its credentials come with its request (unix(7)). */
  const int on = 1;
  if (setsockopt(h->sock[0], SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0) {
    err = errno;
    what = "setsockopt(SO_PASSCRED) for newuidmap's helper";
    return false;
  }
  /* Every signal blocked in the helper: Node's handlers run on Node's threads (the thread inherits the mask). */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  const int e = pthread_create(
      &h->thread, nullptr,
      [](void *p) -> void * {
        static_cast<IdMapHelper *>(p)->serve();
        return nullptr;
      },
      h.get());
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (e != 0) {
    err = e;
    what = "pthread_create: a thread to run newuidmap";
    return false;
  }
  h->started = true;
  c.map_socket = h->sock[1];
  plan.id_mapper = std::move(h);
  return true;
}

void rootless_after_clone(Plan &plan) {
  if (!plan.id_mapper) return;
  plan.id_mapper->close_child_end();
  plan.id_mapper.reset(); /* joins the thread: it has answered, or seen EOF */
}

namespace {

/* open(2), write(2), close(2) of a /proc file, raw (sys.h); 0 or -errno. */
long write_proc(const char *path, const char *data, unsigned long len) {
  long fd = SYS4(__NR_openat, AT_FDCWD, path, O_WRONLY | O_CLOEXEC, 0);
  if (sys_failed(fd)) return fd;
  long r = SYS3(__NR_write, fd, data, len);
  SYS1(__NR_close, fd);
  return sys_failed(r) ? r : 0;
}

/* Ask the helper for the maps and wait for them (the protocol in the header); returns only when they are written. */
void ask_for_maps(const struct child_config *cfg) {
  long r = SYS3(__NR_write, cfg->map_socket, "m", 1);
  if (sys_failed(r)) child_fail(cfg, STEP_map_user_ids, r, "write to newuidmap's helper");
  map_reply reply;
  do r = SYS3(__NR_read, cfg->map_socket, &reply, sizeof reply);
  while (r == -EINTR);
  if (sys_failed(r)) child_fail(cfg, STEP_map_user_ids, r, "read from newuidmap's helper");
  if (r != static_cast<long>(sizeof reply))
    child_fail(cfg, STEP_map_user_ids, -EPIPE, "newuidmap's helper ended without an answer");
  reply.detail[CAPSULE_DETAIL_MAX - 1] = 0;
  if (reply.err != 0) child_fail(cfg, STEP_map_user_ids, -reply.err, reply.detail);
  SYS1(__NR_close, cfg->map_socket);
}

}  // namespace

void child_map_user_ids(const struct child_config *cfg) {
  if (!cfg->rootless) return;
  if (cfg->map_socket >= 0) {
    ask_for_maps(cfg);
    child_trace(cfg, STEP_map_user_ids, -1);
    return;
  }
  /* Order matters: gid_map is refused until setgroups is denied (user_namespaces(7)). */
  long r = write_proc("/proc/self/setgroups", "deny", 4);
  if (sys_failed(r)) child_fail(cfg, STEP_map_user_ids, r, "/proc/self/setgroups");
  r = write_proc("/proc/self/gid_map", cfg->gid_map, c_strlen(cfg->gid_map));
  if (sys_failed(r)) child_fail(cfg, STEP_map_user_ids, r, "/proc/self/gid_map");
  r = write_proc("/proc/self/uid_map", cfg->uid_map, c_strlen(cfg->uid_map));
  if (sys_failed(r)) child_fail(cfg, STEP_map_user_ids, r, "/proc/self/uid_map");
  child_trace(cfg, STEP_map_user_ids, -1);
}

/*
 * chownInBox: fchown(2) of a file the caller made in a rootless box (copyIn),
 * to the box's uid and gid as the box sees them. From the caller's user
 * namespace fchown may only give a file to the caller itself (CAP_CHOWN is
 * needed otherwise, and the caller has none there); inside the box's user
 * namespace, which the caller owns, it holds CAP_CHOWN, and both the file's
 * owner and the new one are mapped there (capable_wrt_inode_uidgid,
 * capabilities(7)). A thread cannot enter a user namespace (setns(2): EINVAL
 * for a multithreaded process), so a forked child does it: setns, fchown on
 * the descriptor it inherited, _exit with the errno. Between fork and _exit
 * it makes only raw system calls. The caller's own credentials never change.
 */
int rootless_chown_in_box(int pidfd, int fd, uint32_t uid, uint32_t gid, const char *&what) {
  const pid_t pid = fork();
  if (pid < 0) {
    what = "fork";
    return errno;
  }
  if (pid == 0) {
    long r = SYS2(__NR_setns, pidfd, CLONE_NEWUSER);
    if (sys_failed(r)) SYS1(__NR_exit_group, 100 + static_cast<int>(-r) % 100);
    r = SYS3(__NR_fchown, fd, uid, gid);
    SYS1(__NR_exit_group, sys_failed(r) ? static_cast<int>(-r) % 100 : 0);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status)) {
    what = "the chown helper was killed";
    return EINTR;
  }
  const int code = WEXITSTATUS(status);
  if (code == 0) return 0;
  what = code >= 100 ? "setns(CLONE_NEWUSER) into the box's user namespace" : "fchown";
  return code % 100;
}
