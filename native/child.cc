/*
 * The child's side of the sandbox, as a table of contents.
 *
 * This function runs right after clone(2), already inside the new PID,
 * network, mount, IPC and UTS namespaces, on the Node process's memory
 * (CLONE_VM) while the thread that cloned it waits (CLONE_VFORK). Each line is
 * one concern, implemented in the file named beside it; the order is the
 * lesson. It makes only raw system calls (sys.h) on data in `cfg`.
 */
#include <linux/sched.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/socket.h>

#include "config.h"
#include "sys.h"

extern "C" int capsule_child_main(void *arg) {
  const struct child_config *cfg = static_cast<const struct child_config *>(arg);

  /* An OCI container, or `exec` into one: config.json's choices over the same steps. (oci.cc) */
  if (cfg->oci) {
    if (cfg->join_pidfd >= 0) child_oci_join(cfg);
    child_oci(cfg);
  }

  /* Survive nothing we did not ask for: die with capsule, start with clean signals. (signals.cc) */
  child_signals_and_parent(cfg);

  /* Rootless: map our ids in the user namespace clone made, before anything else. (rootless.cc) */
  if (cfg->join_pidfd < 0) child_map_user_ids(cfg); /* a command joins the box's, mapped already */

  /* A command of a session enters the box that is already built instead. (child.cc) */
  if (cfg->join_pidfd >= 0) child_join_box(cfg);

  /* A network namespace of its own, made ahead of time when one was ready. (child.cc) */
  child_set_netns(cfg);

  /* Accounting first, so every byte and cycle from here on is the sandbox's. (child.cc) */
  child_join_cgroups(cfg);
  /* Then a cgroup namespace rooted where we now are: after join_cgroup, never before. (child.cc) */
  child_unshare_cgroupns(cfg);

  /* The filesystem: private mounts, rootfs, /proc, /dev, /tmp, binds. (mounts.cc) */
  child_mounts(cfg);

  /* With a terminal: a pty from the private devpts, its master sent to capsule. (tty.cc) */
  const int tty_fd = child_open_pty(cfg);

  /* Make the rootfs / and cut every path back to the host. (mounts.cc) */
  child_pivot_root(cfg);

  child_hostname(cfg); /* (signals.cc) */
  child_rlimits(cfg);  /* (child.cc) */

  /* A host uid and gid of its own: join the user namespace made for it. (userns.cc) */
  child_set_userns(cfg);

  /* stdio at 0..2, capsule's pipes at fixed numbers, nothing else inherited. (fds.cc) */
  child_fds(cfg, tty_fd);

  /* ---------------- privilege is dropped below this line ---------------- */
  /* nobody, no groups, no capabilities in any set, no_new_privs. (identity.cc) */
  child_identity(cfg);

  /* Become capsule-init, PID 1, which runs the program. (child.cc, init.c) */
  child_exec_init(cfg);
}

/*
 * A command of a session (src/session.ts): the box's PID 1 (capsule-init in
 * its "hold" mode, init.c) already has the namespaces, the mounts and the
 * root; this child enters them and then takes the same steps as a sandbox
 * of its own from join_cgroup on, so the command gets the isolation the box
 * had: the same identity, rlimits, descriptors and (in capsule-init) seccomp
 * filter. Nothing is mounted: the box's mount namespace is used as it is.
 *
 * join_box: setns(2) with a pidfd (Linux 5.8) enters every namespace named
 * in one call, all or nothing, and the pidfd names the box's PID 1 and no
 * other process, even after its PID is reused. CLONE_NEWPID changes only
 * the namespace of our children: the capsule-init we exec stays outside the
 * box and its fork, the program, is inside (pid_namespaces(7)); so that
 * capsule-init is not PID 1 and must never kill(-1) (init.c, join mode).
 * CLONE_NEWNS moves our root and working directory to the box's root
 * (setns(2)); it needs an fs_struct of our own (no CLONE_FS) and
 * CAP_SYS_ADMIN and CAP_SYS_CHROOT, which we still hold. Not CLONE_NEWCGROUP:
 * unshare_cgroupns makes one rooted at this command's own cgroup, as for a
 * sandbox of its own, so /proc/self/cgroup reads "/". Not CLONE_NEWUSER: we
 * need our privilege over the other namespaces first; set_userns enters the
 * box's user namespace later through the same pidfd, where a fresh sandbox
 * enters its own.
 *
 * Rootless (join_userns_first): the box's namespaces belong to the box's
 * user namespace, and our privilege is only the caller's, in the caller's
 * namespace, where we hold no capability at all: setns(2) into the box's
 * mount namespace needs CAP_SYS_ADMIN and CAP_SYS_CHROOT in the namespace
 * that owns it. So CLONE_NEWUSER goes in the same call: with a pidfd the
 * kernel enters the user namespace first and checks every other one with the
 * credentials that gives (setns(2): "the user namespace is entered first";
 * kernel/nsproxy.c, validate_nsset). Entering is allowed because the caller
 * owns that namespace (its euid made it: user_namespaces(7), "the owner has
 * every capability in it") and we are one thread with an fs_struct of our own.
 * The namespace's maps are the box's, written once at create: nothing is
 * mapped again (map_user_ids is not run for a command), and set_userns has
 * nothing left to do. Our ids there are what the caller's map to; identity
 * sets the command's as for the box.
 */
void child_join_box(const struct child_config *cfg) {
  const long flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID |
                     (cfg->join_userns_first ? CLONE_NEWUSER : 0);
  long r = SYS2(__NR_setns, cfg->join_pidfd, flags);
  if (sys_failed(r)) child_fail(cfg, STEP_join_box, r, "the box's PID 1 (pidfd)");
  child_trace(cfg, STEP_join_box, -1);

  child_join_cgroups(cfg);
  child_unshare_cgroupns(cfg);

  /* change_dir: setns left us at the box's root; the working directory resolves inside it. */
  r = SYS1(__NR_chdir, cfg->cwd);
  if (sys_failed(r)) child_fail(cfg, STEP_change_dir, r, cfg->cwd);
  child_trace(cfg, STEP_change_dir, -1);

  /* new_session: no controlling terminal (signals.cc). We are not a group leader, so it succeeds. */
  r = SYS0(__NR_setsid);
  if (sys_failed(r)) child_fail(cfg, STEP_new_session, r, "setsid");
  child_trace(cfg, STEP_new_session, -1);

  child_rlimits(cfg);
  child_set_userns(cfg); /* userns_fd is the box's pidfd when the box has a user namespace (spawn.cc) */
  child_fds(cfg, -1); /* a session command has no terminal of its own */
  /* ---------------- privilege is dropped below this line ---------------- */
  child_identity(cfg);
  child_exec_init(cfg);
}

void child_trace(const struct child_config *cfg, enum capsule_step step, int op) {
  struct capsule_trace *t = cfg->trace;
  if (!t || t->count >= CAPSULE_TRACE_MAX) return;
  struct {
    long sec, nsec;
  } ts;
  SYS2(__NR_clock_gettime, 1 /* CLOCK_MONOTONIC: the clock Node's hrtime reads */, &ts);
  t->ev[t->count].step = step;
  t->ev[t->count].op = op;
  t->ev[t->count].ns = static_cast<uint64_t>(ts.sec) * 1000000000u + static_cast<uint64_t>(ts.nsec);
  t->count++;
}

void child_fail(const struct child_config *cfg, enum capsule_step step, long neg_errno,
                const char *detail) {
  struct capsule_error_record rec;
  char *p = reinterpret_cast<char *>(&rec);
  for (unsigned long i = 0; i < sizeof rec; i++) p[i] = 0; /* no memset: see sys.h */
  rec.magic = CAPSULE_ERROR_MAGIC;
  rec.step = step;
  rec.err = static_cast<int>(-neg_errno);
  if (detail) {
    for (unsigned i = 0; i + 1 < CAPSULE_DETAIL_MAX && detail[i]; i++) rec.detail[i] = detail[i];
  }
  /*
   * Before arrange_fds the error pipe is still at its parent number; after, it
   * is at CAPSULE_FD_ERROR. Try the fixed slot only once it is in place.
   */
  int fd = cfg->fd_sources[CAPSULE_FD_ERROR];
  if (step > STEP_arrange_fds) fd = CAPSULE_FD_ERROR;
  SYS3(__NR_write, fd, &rec, sizeof rec);
  for (;;) SYS1(__NR_exit, 125);
}

/*
 * set_netns: join the fresh network namespace the parent took from its pool
 * (netns_pool.cc) instead of having clone make one: the same isolation (a
 * namespace no other process has entered, with only a loopback, already up),
 * made before the run instead of during it. setns(2) needs CAP_SYS_ADMIN,
 * which we still hold.
 *
 * set_loopback_up: when clone made the namespace (none was ready), its lo is
 * down, as every new network namespace's is (network_namespaces(7)), so a
 * program could not talk to itself over 127.0.0.1. Raise it as runc, bwrap
 * and nsjail do: SIOCGIFFLAGS then SIOCSIFFLAGS with IFF_UP on any AF_INET
 * socket of this namespace (netdevice(7)); CAP_NET_ADMIN over the namespace
 * we own. lo is its only device, so nothing routes out: connecting anywhere
 * else fails with ENETUNREACH.
 */
void child_set_netns(const struct child_config *cfg) {
  if (cfg->netns_fd >= 0) {
    long r = SYS2(__NR_setns, cfg->netns_fd, CLONE_NEWNET);
    if (sys_failed(r)) child_fail(cfg, STEP_set_netns, r, "network namespace");
    child_trace(cfg, STEP_set_netns, -1);
    return; /* the pool raised its lo (netns_pool.cc) */
  }
  long fd = SYS3(__NR_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sys_failed(fd)) child_fail(cfg, STEP_set_loopback_up, fd, "socket(AF_INET, SOCK_DGRAM)");
  struct ifreq ifr;
  char *p = reinterpret_cast<char *>(&ifr);
  for (unsigned long i = 0; i < sizeof ifr; i++) p[i] = 0; /* no memset: see sys.h */
  ifr.ifr_name[0] = 'l';
  ifr.ifr_name[1] = 'o';
  long r = SYS3(__NR_ioctl, fd, SIOCGIFFLAGS, &ifr);
  if (!sys_failed(r)) {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    r = SYS3(__NR_ioctl, fd, SIOCSIFFLAGS, &ifr);
  }
  SYS1(__NR_close, fd);
  if (sys_failed(r)) child_fail(cfg, STEP_set_loopback_up, r, "lo");
  child_trace(cfg, STEP_set_loopback_up, -1);
}

/*
 * join_cgroup: write "0" to each cgroup.procs we were handed. Pid 0 means "the
 * writer", which sidesteps translating our PID across the new PID namespace
 * (cgroups(7); kernel/cgroup/cgroup.c cgroup_procs_write_start). This must come
 * before exec so the untrusted program never runs outside its limits.
 */
void child_join_cgroups(const struct child_config *cfg) {
  for (unsigned i = 0; i < cfg->n_cgroup_fds; i++) {
    long r = SYS3(__NR_write, cfg->cgroup_fds[i], "0", 1);
    if (sys_failed(r)) child_fail(cfg, STEP_join_cgroup, r, "cgroup.procs");
  }
  child_trace(cfg, STEP_join_cgroup, -1);
}

/*
 * unshare_cgroupns: a cgroup namespace whose root is the cgroup the child is
 * in at this moment (cgroup_namespaces(7)). /proc/self/cgroup then shows "/"
 * instead of the host's paths (which name capsule's cgroup layout, and the
 * caller's own cgroup when no limit is asked), and a cgroupfs mounted later
 * would show only the sandbox's subtree. Order matters: on cgroup v1 the
 * child enters its cgroups by writing to cgroup.procs (join_cgroup), so the
 * namespace comes after that, or its root would be capsule's cgroup and the
 * paths would read "/../capsule/...". On v2, clone3 put the child in its
 * cgroup already (CLONE_INTO_CGROUP, spawn.cc). Membership does not change:
 * the namespace only changes what the sandbox sees; its limits are untouched.
 */
void child_unshare_cgroupns(const struct child_config *cfg) {
  long r = SYS1(__NR_unshare, CLONE_NEWCGROUP);
  if (sys_failed(r)) child_fail(cfg, STEP_unshare_cgroupns, r, "CLONE_NEWCGROUP");
  child_trace(cfg, STEP_unshare_cgroupns, -1);
}

/*
 * set_rlimits: per-process limits the kernel enforces on its own (getrlimit(2)).
 * They can only be lowered without CAP_SYS_RESOURCE; the parent checked that
 * each request is under the current hard limit, so a failure here is real.
 */
void child_rlimits(const struct child_config *cfg) {
  for (unsigned i = 0; i < cfg->n_rlimits; i++) {
    struct {
      uint64_t cur, max;
    } rl = {cfg->rlimits[i].soft, cfg->rlimits[i].hard};
    long r = SYS4(__NR_prlimit64, 0, cfg->rlimits[i].resource, &rl, 0);
    if (sys_failed(r)) child_fail(cfg, STEP_set_rlimits, r, "prlimit64");
  }
  child_trace(cfg, STEP_set_rlimits, -1);
}

/*
 * exec_init: execveat(2) on the descriptor of capsule-init that the parent
 * opened (a sealed memfd copy of the binary, see addon.cc). The host's file is
 * never reachable by path from inside, and /proc/1/exe points at the memfd,
 * so the program cannot overwrite capsule (CVE-2019-5736).
 */
void child_exec_init(const struct child_config *cfg) {
  child_trace(cfg, STEP_exec_init, -1); /* when it begins: it ends when clone returns in the parent */
  long r = SYS5(__NR_execveat, CAPSULE_FD_INIT_EXE, "", cfg->argv, cfg->envp, 0x1000 /* AT_EMPTY_PATH */);
  child_fail(cfg, STEP_exec_init, r, "capsule-init");
}
