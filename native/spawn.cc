/*
 * Launching the child: clone(2) with CLONE_VM | CLONE_VFORK.
 *
 * Why not fork: fork copies the page tables of the whole Node process, so its
 * cost grows with the heap (38 ms from a 1 GiB heap, measured for this
 * project, against ~1 ms). With CLONE_VM the child borrows the parent's
 * memory and CLONE_VFORK suspends the calling thread until the child execs or
 * exits, which is also the moment its setup is known to have succeeded.
 * posix_spawn(3) in glibc launches the same way.
 */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h> /* struct clone_args, CLONE_INTO_CGROUP */
#include <sched.h>
#include <signal.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <ctime>

#include "netns_pool.h"
#include "tty.h"
#include "rootless.h"
#include "steps.h"
#include "userns.h"

extern "C" int capsule_child_main(void *arg);

/*
 * clone3(2) with CLONE_INTO_CGROUP, for cgroup v2: the child is born in the
 * sandbox's cgroup, so join_cgroup has nothing to move. A migration takes the
 * cgroup_threadgroup_rwsem for writing, which waits for an RCU grace period
 * when none happened recently: 11.3 ms at p50 for fork + a "0" write against
 * 0.28 ms for clone3 into the cgroup, measured for this project on a cgroup2
 * mount (docs/cgroups.md). glibc 2.36 exports no clone3, and the child starts
 * on its new stack at the instruction after the system call, so it needs
 * these few instructions: call fn(arg) there, then exit with its result.
 *
 *   long capsule_clone3(struct clone_args *args, size_t size, int (*fn)(void *), void *arg)
 */
#if defined(__x86_64__)
__asm__(
    ".text\n.global capsule_clone3\n.type capsule_clone3,@function\ncapsule_clone3:\n"
    "  mov %rdx, %r8\n" /* fn and arg survive the system call in r8, r9 (only rcx, r11 are clobbered) */
    "  mov %rcx, %r9\n"
    "  mov $435, %eax\n" /* __NR_clone3 */
    "  syscall\n"
    "  test %rax, %rax\n"
    "  jnz 1f\n"         /* the parent, or an error: return it */
    "  xor %ebp, %ebp\n" /* the child, on its own stack: no frame to return to */
    "  mov %r9, %rdi\n"
    "  call *%r8\n"
    "  mov %rax, %rdi\n"
    "  mov $60, %eax\n" /* __NR_exit */
    "  syscall\n"
    "  hlt\n"
    "1: ret\n");
#elif defined(__aarch64__)
__asm__(
    ".text\n.global capsule_clone3\n.type capsule_clone3,%function\ncapsule_clone3:\n"
    "  mov x10, x2\n"
    "  mov x11, x3\n"
    "  mov x8, #435\n"
    "  svc #0\n"
    "  cbnz x0, 1f\n"
    "  mov x29, #0\n"
    "  mov x0, x11\n"
    "  blr x10\n"
    "  mov x8, #93\n"
    "  svc #0\n"
    "1: ret\n");
#endif
extern "C" long capsule_clone3(struct clone_args *args, size_t size, int (*fn)(void *), void *arg);

namespace {

constexpr size_t kChildStack = 256 * 1024;

void fail(SpawnResult &out, capsule_step step, int err, const char *detail) {
  out.ok = false;
  out.error.magic = CAPSULE_ERROR_MAGIC;
  out.error.step = step;
  out.error.err = err;
  snprintf(out.error.detail, sizeof out.error.detail, "%s", detail);
}

/* A pipe whose ends are close-on-exec in the parent; the child's end is placed by arrange_fds. */
bool make_pipe(int fds[2], SpawnResult &out, const char *what) {
  if (pipe2(fds, O_CLOEXEC) == 0) return true;
  fail(out, STEP_prepare, errno, what);
  return false;
}

void close_fd(int &fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

}  // namespace

uint64_t monotonic_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

bool read_record(int fd, void *buf, unsigned long size) {
  ssize_t n;
  do n = read(fd, buf, size);
  while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(size);
}

void spawn_sandbox(const Runtime &rt, const SandboxOptions &opts, Plan &plan, SpawnResult &out) {
  /* prepare: pipes, then everything the child reads, then its stack. */
  const bool join = opts.join_pidfd >= 0; /* a session's command: nothing to mount, no namespace to make */
  int err_pipe[2] = {-1, -1}, status_pipe[2] = {-1, -1};
  int tty_sock[2] = {-1, -1}; /* with a terminal: the child sends the pty's master on [1] (tty.cc) */
  int userns_fd = -1; /* make_userns's, until the child has joined it */
  int stdio_pipes[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
  int child_stdio[3];
  /*
   * Made ahead (prepared): capsule-init's 0, 1 and 2 are its end of a socketpair on which
   * the run's argv, environment and stdio come later (init.c receive_run). SOCK_SEQPACKET
   * keeps the one message whole (unix(7)).
   */
  int go[2] = {-1, -1};
  if (opts.prepared && (opts.tty || join || opts.oci.enabled)) {
    fail(out, STEP_prepare, EINVAL, "a sandbox made ahead has no terminal, box or OCI config (src/ahead.ts)");
    return;
  }
  if (opts.prepared && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, go) != 0) {
    fail(out, STEP_prepare, errno, "socketpair for the run made ahead");
    return;
  }
  for (int i = 0; i < 3; i++) {
    child_stdio[i] = opts.prepared ? go[1] : opts.stdio[i];
    if (child_stdio[i] >= 0 || opts.tty) continue; /* with a terminal, 0..2 are the pty slave */
    if (!make_pipe(stdio_pipes[i], out, "stdio pipe")) goto cleanup;
    /* stdin: the child reads end 0; stdout/stderr: the child writes end 1. */
    child_stdio[i] = stdio_pipes[i][i == 0 ? 0 : 1];
    out.stdio[i] = stdio_pipes[i][i == 0 ? 1 : 0];
  }
  if (!make_pipe(err_pipe, out, "error pipe") || !make_pipe(status_pipe, out, "status pipe")) goto cleanup;
  if (opts.tty) {
    int err = 0;
    if (!tty_socketpair(tty_sock, err)) {
      fail(out, STEP_prepare, err, "terminal socketpair");
      goto cleanup;
    }
  }

  if (opts.oci.enabled) plan_oci(opts, plan); /* config.json's mounts and identity (oci.cc) */
  else if (!join) plan_mounts(opts, plan);
  if (!join) {
    /* The bind sources, each opened once and cloned detached, before clone (mounts.cc). */
    capsule_step step;
    int err;
    std::string detail;
    if (!open_mount_sources(opts, plan, step, err, detail)) {
      fail(out, step, err, detail.c_str());
      goto cleanup;
    }
  }
  /* Made ahead: capsule-init's mode alone; the program's argv and environment come with the run. */
  if (opts.prepared) plan.argv.push_back(const_cast<char *>("capsule-prepared"));
  for (size_t i = 0; i < opts.argv.size() && !opts.prepared; i++) {
    /*
     * OCI: capsule-init's mode is ours to say, whatever argv[0] the caller
     * wrote (init.c): wait for start, start at once, or exec into a container.
     */
    if (i == 0 && opts.oci.enabled) {
      plan.argv.push_back(const_cast<char *>(join ? "capsule-oci-join"
                                             : opts.oci.wait_for_start ? "capsule-oci"
                                                                       : "capsule-oci-now"));
      if (opts.tty) plan.argv.push_back(const_cast<char *>("--tty"));
      continue;
    }
    plan.argv.push_back(const_cast<char *>(opts.argv[i].c_str()));
  }
  plan.argv.push_back(nullptr);
  if (opts.oci.enabled && opts.seccomp_fd >= 0) {
    /*
     * OCI: the child loads linux.seccomp itself (oci.cc), from this copy in
     * the memory it shares with us, not capsule-init from descriptor 5.
     */
    uint64_t insn[4096];
    ssize_t got = pread(opts.seccomp_fd, insn, sizeof insn, 0);
    if (got <= 0 || got % 8 != 0 || got == static_cast<ssize_t>(sizeof insn)) {
      fail(out, STEP_load_seccomp_early, got < 0 ? errno : EINVAL, "the compiled linux.seccomp (at most 4095 instructions)");
      goto cleanup;
    }
    plan.oci_filter.assign(insn, insn + got / 8);
  }
  for (const std::string &e : opts.env)
    if (!opts.prepared) plan.envp.push_back(const_cast<char *>(e.c_str()));
  plan.envp.push_back(nullptr);
  {
    child_config &c = plan.cfg;
    std::memset(&c, 0, sizeof c);
    c.rootfs = opts.rootfs.c_str();
    c.mount_ops = plan.mount_ops.data();
    c.n_mount_ops = static_cast<unsigned>(plan.mount_ops.size());
    c.mount_fds = plan.mount_fds;
    c.rootfs_ino = plan.rootfs_ino;
    c.rootfs_dev_major = plan.rootfs_dev_major;
    c.rootfs_dev_minor = plan.rootfs_dev_minor;
    c.hostname = opts.hostname.c_str();
    c.cwd = opts.cwd.c_str();
    c.cgroup_fds = opts.cgroup_fds.data();
    c.n_cgroup_fds = static_cast<unsigned>(opts.cgroup_fds.size());
    c.rlimits = opts.rlimits.data();
    c.n_rlimits = static_cast<unsigned>(opts.rlimits.size());
    for (int i = 0; i < CAPSULE_FD_FIRST_FREE; i++) c.fd_sources[i] = -1;
    for (int i = 0; i < 3; i++) c.fd_sources[i] = child_stdio[i];
    c.fd_sources[CAPSULE_FD_ERROR] = err_pipe[1];
    c.fd_sources[CAPSULE_FD_STATUS] = status_pipe[1];
    c.fd_sources[CAPSULE_FD_SECCOMP] = opts.seccomp_fd;
    c.fd_sources[CAPSULE_FD_INIT_EXE] = rt.init_fd;
    c.fd_sources[CAPSULE_FD_PARENT] = parent_pidfd(rt.self_pidfd, out.parent_pidfd_thread);
    c.uid = opts.uid;
    c.gid = opts.gid;
    c.last_cap = rt.last_cap;
    c.argv = plan.argv.data();
    c.envp = plan.envp.data();
    plan.trace.count = 0;
    c.trace = opts.trace ? &plan.trace : nullptr;
    c.netns_fd = -1; /* taken from the pool right before clone, so no error path can leak it */
    c.tty_socket = opts.tty ? tty_sock[1] : -1;
    c.tty_uid = opts.host_uid != 0 ? opts.host_uid : opts.uid;
    c.tty_gid = opts.host_uid != 0 ? opts.host_gid : opts.gid;
    c.tty_rows = opts.tty_rows;
    c.tty_cols = opts.tty_cols;
    /* Rootless, the box's user namespace is entered first, in join_box; with root, last (set_userns). */
    c.userns_fd = join && opts.join_userns && !opts.rootless ? opts.join_pidfd : -1;
    c.join_pidfd = opts.join_pidfd;
    c.join_userns_first = join && opts.rootless ? 1 : 0;
    if (opts.oci.enabled) {
      plan.oci.filter = plan.oci_filter.data();
      plan.oci.filter_len = static_cast<unsigned short>(plan.oci_filter.size());
      c.oci = &plan.oci;
      c.fd_sources[CAPSULE_FD_SECCOMP] = -1; /* loaded by the child (oci.cc) */
    }
  }
  if (opts.rootless) {
    /* map_user_ids: the maps, or the helper that writes a range (rootless.cc). */
    int err = 0;
    std::string what;
    if (!rootless_prepare(opts, plan, err, what)) {
      fail(out, STEP_map_user_ids, err, what.c_str());
      goto cleanup;
    }
  }

  /*
   * OCI: linux.namespaces' user namespace, made here with linux.uidMappings
   * and gidMappings (or the one named by path, duplicated), joined late by
   * set_userns as capsule's own (userns.cc, oci.cc).
   */
  if (opts.oci.enabled && !join) {
    int err = 0;
    std::string what;
    for (const auto &j : opts.oci.joins) {
      if (j.first != CLONE_NEWUSER) continue;
      userns_fd = fcntl(j.second, F_DUPFD_CLOEXEC, 0);
      if (userns_fd < 0) err = errno, what = "linux.namespaces (user) path";
    }
    if (userns_fd < 0 && !err && (opts.oci.new_namespaces & CLONE_NEWUSER)) {
      out.userns_start_ns = opts.trace ? monotonic_ns() : 0;
      userns_fd = userns_make_maps(opts.oci.uid_map, opts.oci.gid_map, 0, 0, err, what);
      out.userns_end_ns = opts.trace ? monotonic_ns() : 0;
    }
    if (err) {
      fail(out, STEP_make_userns, err, what.c_str());
      goto cleanup;
    }
    plan.cfg.userns_fd = userns_fd;
  }
  /* make_userns: the sandbox's own host uid and gid, before clone (userns.cc). */
  if (opts.host_uid != 0 && !join && !opts.oci.enabled && opts.userns_fd >= 0) {
    /* Made ahead for this host id with its lease (userns_pool.h): the spawn's own copy, closed by its owner. */
    plan.cfg.userns_fd = opts.userns_fd;
  } else if (opts.host_uid != 0 && !join && !opts.oci.enabled) {
    int err = 0;
    std::string what;
    out.userns_start_ns = opts.trace ? monotonic_ns() : 0;
    userns_fd = userns_make(opts.uid, opts.gid, opts.host_uid, opts.host_gid, err, what);
    out.userns_end_ns = opts.trace ? monotonic_ns() : 0;
    plan.cfg.userns_fd = userns_fd;
    if (userns_fd < 0) {
      fail(out, STEP_make_userns, err, what.c_str());
      goto cleanup;
    }
  }

  {
    /*
     * The child's stack, with a guard page at its low end (stacks grow down):
     * an overflow faults there instead of running into whatever is mapped
     * below, which in the child (CLONE_VM) is Node's own memory. The fault is
     * a SIGSEGV the child dies of (its signals are blocked, so it is forced
     * with the default action), never a write into the parent. glibc's
     * pthread stacks and posix_spawn's are guarded the same way.
     */
    const size_t guard = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t mapped = kChildStack + guard;
    void *region = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (region == MAP_FAILED) {
      fail(out, STEP_prepare, errno, "child stack");
      goto cleanup;
    }
    if (mprotect(region, guard, PROT_NONE) != 0) {
      fail(out, STEP_prepare, errno, "child stack guard page");
      munmap(region, mapped);
      goto cleanup;
    }
    void *stack = static_cast<char *>(region) + guard; /* the usable part, kChildStack bytes */
    /*
     * clone: block every signal first, so no handler of Node's can run in the
     * child on shared memory before reset_signals (the child inherits the
     * mask). CLONE_PIDFD gives us a descriptor that names this child and no
     * other, even after its PID is reused: waiting and killing go through it.
     */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int pidfd = -1;
    /*
     * With a pooled network namespace the child joins it (set_netns) instead of clone making
     * one. Rootless: the pool's namespaces belong to the initial user namespace, which we
     * cannot setns into; CLONE_NEWUSER, created first, owns every other namespace made here
     * (rootless.cc). A session's command makes none: join_box enters the box's.
     */
    const bool oci_net = !opts.oci.enabled || (opts.oci.new_namespaces & CLONE_NEWNET);
    plan.cfg.netns_fd = join || opts.rootless || !oci_net ? -1 : netns_pool_take();
    /*
     * OCI: the namespaces config.json asks for, no more; the user namespace
     * was made above and the cgroup namespace comes after join_cgroup (oci.cc).
     */
    const int oci_new = opts.oci.new_namespaces & (CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET);
    const int namespaces = join ? 0
                           : opts.oci.enabled
                               ? (plan.cfg.netns_fd >= 0 ? oci_new & ~CLONE_NEWNET : oci_new)
                               : CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS |
                                     (plan.cfg.netns_fd >= 0 ? 0 : CLONE_NEWNET) | (opts.rootless ? CLONE_NEWUSER : 0);
    const int flags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD | namespaces | SIGCHLD;
    out.clone_start_ns = opts.trace ? monotonic_ns() : 0;
    pid_t pid;
    int clone_errno = 0;
    const int netns_fd = plan.cfg.netns_fd;
    if (opts.cgroup_dir_fd >= 0) {
      struct clone_args args;
      std::memset(&args, 0, sizeof args);
      args.flags = (flags & ~0xff) | CLONE_INTO_CGROUP;
      args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
      args.exit_signal = SIGCHLD;
      args.stack = reinterpret_cast<uint64_t>(stack);
      args.stack_size = kChildStack;
      args.cgroup = static_cast<uint64_t>(opts.cgroup_dir_fd);
      long r = capsule_clone3(&args, sizeof args, capsule_child_main, &plan.cfg);
      pid = r < 0 ? -1 : static_cast<pid_t>(r);
      clone_errno = r < 0 ? static_cast<int>(-r) : 0;
    } else {
      pid = clone(capsule_child_main, static_cast<char *>(stack) + kChildStack, flags, &plan.cfg, &pidfd);
      clone_errno = errno;
    }
    out.clone_end_ns = opts.trace ? monotonic_ns() : 0;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    munmap(region, mapped);
    /* The trees the child attached live on in its namespace; the rest go with our descriptors. */
    plan.close_sources();
    /* The child has joined it (or is gone): the sandbox holds the namespace now, not us. */
    if (netns_fd >= 0) close(netns_fd);
    close_fd(userns_fd); /* the same for the user namespace */
    if (opts.rootless) rootless_after_clone(plan);
    if (pid < 0) {
      fail(out, STEP_clone, clone_errno,
           opts.rootless ? "CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET|CLONE_NEWNS|CLONE_NEWIPC|CLONE_NEWUTS"
                         : "CLONE_NEWPID|CLONE_NEWNET|CLONE_NEWNS|CLONE_NEWIPC|CLONE_NEWUTS");
      goto cleanup;
    }
    out.pid = pid;
    out.pidfd = pidfd;
  }

  /* The child's ends are its own now (or it is gone): close ours so EOF means what it should. */
  for (int i = 0; i < 3; i++) close_fd(stdio_pipes[i][i == 0 ? 0 : 1]);
  close_fd(err_pipe[1]);
  close_fd(status_pipe[1]);
  close_fd(tty_sock[1]);
  close_fd(go[1]);
  fcntl(err_pipe[0], F_SETFL, O_NONBLOCK);
  fcntl(status_pipe[0], F_SETFL, O_NONBLOCK);

  /*
   * The child has exec'd capsule-init or exited. A record on the error pipe
   * means a setup step failed: reap the child and report it. (An exec error
   * of the program itself may already be there too: same path.)
   */
  if (opts.oci.enabled) {
    /*
     * OCI: capsule-init looks the program up before it says it is ready
     * (init.c), so wait for that word, or for its error, or for its end.
     * Every step before exec_init is done by now (CLONE_VFORK).
     */
    struct pollfd fds[2] = {{err_pipe[0], POLLIN, 0}, {status_pipe[0], POLLIN, 0}};
    bool ready = false;
    for (;;) {
      int n = poll(fds, 2, -1);
      if (n < 0 && errno == EINTR) continue;
      /*
       * The ready record first: with "capsule-oci-now" the program may have
       * exec'd (closing the error pipe) or failed to by the time we look;
       * that is the run's result, not create's.
       */
      if (fds[1].revents & POLLIN) {
        capsule_init_report record;
        ready = read_record(status_pipe[0], &record, sizeof record) && record.magic == CAPSULE_READY_MAGIC;
        if (ready && record.wait_status > 0) out.container_pid = record.wait_status; /* init.c: a joined PID namespace */
      }
      break; /* ready, or an error record or EOF on either pipe: read below */
    }
    if (!ready) {
      if (!(read_record(err_pipe[0], &out.error, sizeof out.error) && out.error.magic == CAPSULE_ERROR_MAGIC))
        fail(out, STEP_exec_init, EIO, "capsule-init ended before the container was ready");
      out.ok = false;
      syscall(SYS_pidfd_send_signal, out.pidfd, SIGKILL, nullptr, 0);
      siginfo_t info;
      while (waitid(static_cast<idtype_t>(P_PIDFD), out.pidfd, &info, WEXITED) < 0 && errno == EINTR) {
      }
      close_fd(out.pidfd);
      goto cleanup;
    }
  } else if (read_record(err_pipe[0], &out.error, sizeof out.error) && out.error.magic == CAPSULE_ERROR_MAGIC) {
    out.ok = false;
    siginfo_t info;
    while (waitid(static_cast<idtype_t>(P_PIDFD), out.pidfd, &info, WEXITED) < 0 && errno == EINTR) {
    }
    close_fd(out.pidfd);
    goto cleanup;
  }
  if (opts.tty) {
    /*
     * The child sent the master before exec_init (send_pty_master), so it is
     * in the socket now. Its absence cannot happen short of a bug: end the
     * sandbox rather than run a program whose terminal nobody holds.
     */
    int err = 0;
    out.tty_master = tty_receive_master(tty_sock[0], err);
    close_fd(tty_sock[0]);
    if (out.tty_master < 0) {
      fail(out, STEP_send_pty_master, err, "recvmsg(SCM_RIGHTS)");
      syscall(SYS_pidfd_send_signal, out.pidfd, SIGKILL, nullptr, 0);
      siginfo_t info;
      while (waitid(static_cast<idtype_t>(P_PIDFD), out.pidfd, &info, WEXITED) < 0 && errno == EINTR) {
      }
      close_fd(out.pidfd);
      goto cleanup;
    }
  }
  out.ok = true;
  out.error_fd = err_pipe[0];
  out.status_fd = status_pipe[0];
  out.go_fd = go[0];
  return;

cleanup:
  plan.close_sources();
  close_fd(userns_fd);
  close_fd(err_pipe[0]);
  close_fd(err_pipe[1]);
  close_fd(status_pipe[0]);
  close_fd(status_pipe[1]);
  close_fd(tty_sock[0]);
  close_fd(tty_sock[1]);
  close_fd(go[0]);
  close_fd(go[1]);
  for (int i = 0; i < 3; i++) {
    close_fd(stdio_pipes[i][0]);
    close_fd(stdio_pipes[i][1]);
    out.stdio[i] = -1;
  }
}
