/*
 * Probes of the kernel features capsule uses, for `capsule doctor`
 * (src/doctor.ts). Each probe leaves nothing behind:
 *
 *  - A system call's presence is asked with arguments the kernel rejects
 *    after it has recognised the call (and the flag asked about) but before it
 *    does anything: ENOSYS means the kernel (or a seccomp filter around us)
 *    lacks it; any other errno means it is there. Where a call succeeds (an
 *    O_PATH descriptor, a pidfd of ourselves) the descriptor is closed at once.
 *  - A namespace is asked by a throwaway child (a fork-like clone(2) without
 *    CLONE_VM, so it has its own copy of memory) that unshare(2)s it and
 *    exits; the namespace dies with it. The child makes only raw system calls
 *    on data prepared before the clone (Node is multithreaded; signal-safety(7)).
 */
#include "probe.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <napi.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "sys.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef SECCOMP_GET_NOTIF_SIZES
#define SECCOMP_GET_NOTIF_SIZES 3
#endif
#ifndef SECCOMP_GET_ACTION_AVAIL
#define SECCOMP_GET_ACTION_AVAIL 2
#endif
#ifndef SECCOMP_RET_USER_NOTIF
#define SECCOMP_RET_USER_NOTIF 0x7fc00000U
#endif
#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif
#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif
#ifndef __NR_clone3
#define __NR_clone3 435
#endif
#ifndef __NR_openat2
#define __NR_openat2 437
#endif
#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif
#ifndef __NR_open_tree
#define __NR_open_tree 428
#endif
#ifndef __NR_move_mount
#define __NR_move_mount 429
#endif
#ifndef __NR_fsopen
#define __NR_fsopen 430
#endif
#ifndef __NR_mount_setattr
#define __NR_mount_setattr 442
#endif
#ifndef __NR_close_range
#define __NR_close_range 436
#endif

namespace {

/* 0 when the call returned r >= 0, else its errno (from the libc wrapper syscall(2)). */
int err_of(long r) { return r < 0 ? errno : 0; }

/* The errno a presence probe saw, mapped to: 0 present, ENOSYS absent (other values: present, but refused). */
int presence(long r) {
  if (r >= 0) return 0;
  return errno;
}

/* struct clone_args of clone(2), up to CLONE_ARGS_SIZE_VER2 (cgroup). */
struct CloneArgs {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size,
      cgroup;
};

/* struct open_how of openat2(2). */
struct OpenHow {
  uint64_t flags, mode, resolve;
};

Napi::Value ProbeSyscalls(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  auto put = [&](const char *name, int e) { out.Set(name, Napi::Number::New(env, e)); };

  /* pidfd_open(2) of ourselves (Linux 5.3): a descriptor, closed at once. */
  long r = syscall(__NR_pidfd_open, getpid(), 0);
  put("pidfd_open", err_of(r));
  if (r >= 0) close(static_cast<int>(r));

  /*
   * clone3(2) (Linux 5.3) with a size below CLONE_ARGS_SIZE_VER0: EINVAL from
   * copy_clone_args_from_user before anything is made.
   */
  r = syscall(__NR_clone3, nullptr, 0);
  put("clone3", presence(r) == EINVAL ? 0 : presence(r));

  /*
   * CLONE_INTO_CGROUP (Linux 5.7) with a descriptor that cannot be open
   * (INT_MAX): a kernel that knows the flag fails in cgroup_css_set_fork with
   * EBADF before the child exists; one that does not says EINVAL.
   */
  {
    CloneArgs a;
    memset(&a, 0, sizeof a);
    a.flags = CLONE_INTO_CGROUP;
    a.exit_signal = SIGCHLD;
    a.cgroup = INT_MAX;
    r = syscall(__NR_clone3, &a, sizeof a);
    if (r == 0) _exit(0); /* cannot happen (no such descriptor); if it did, the child must not go on */
    if (r > 0) waitpid(static_cast<pid_t>(r), nullptr, 0);
    int e = presence(r);
    put("clone_into_cgroup", e == EBADF ? 0 : e);
  }

  /* openat2(2) (Linux 5.6) with RESOLVE_NO_SYMLINKS: an O_PATH descriptor of /. */
  {
    OpenHow how = {O_PATH | O_CLOEXEC, 0, 0x04 /* RESOLVE_NO_SYMLINKS */};
    r = syscall(__NR_openat2, AT_FDCWD, "/", &how, sizeof how);
    put("openat2", err_of(r));
    if (r >= 0) close(static_cast<int>(r));
  }

  /* open_tree(2) (Linux 5.2) without OPEN_TREE_CLONE: an O_PATH descriptor, no new mount. */
  r = syscall(__NR_open_tree, AT_FDCWD, "/", O_CLOEXEC);
  put("open_tree", err_of(r));
  if (r >= 0) close(static_cast<int>(r));

  /* move_mount(2) (Linux 5.2) from a descriptor that is not open: EPERM or EBADF, nothing moves. */
  r = syscall(__NR_move_mount, -1, "", -1, "", 0);
  put("move_mount", presence(r) == ENOSYS ? ENOSYS : 0);

  /* mount_setattr(2) (Linux 5.12) with a size of 0: EINVAL before it looks at the path. */
  r = syscall(__NR_mount_setattr, -1, "", 0, nullptr, 0);
  put("mount_setattr", presence(r) == ENOSYS ? ENOSYS : 0);

  /* fsopen(2) (Linux 5.2) with a NULL name: EFAULT (or EPERM without CAP_SYS_ADMIN). */
  r = syscall(__NR_fsopen, nullptr, 0);
  put("fsopen", presence(r) == ENOSYS ? ENOSYS : 0);

  /* close_range(2) (Linux 5.9) of an empty range (first > last): EINVAL, nothing closed. */
  r = syscall(__NR_close_range, 2, 1, 0);
  put("close_range", presence(r) == ENOSYS ? ENOSYS : 0);

  /* seccomp(2) filter mode: prctl(PR_GET_SECCOMP) says the kernel has CONFIG_SECCOMP. */
  r = prctl(PR_GET_SECCOMP, 0, 0, 0, 0);
  put("seccomp", err_of(r));
  put("seccomp_mode", r >= 0 ? static_cast<int>(r) : -1);

  /*
   * SECCOMP_SET_MODE_FILTER with a NULL program: the kernel checks the flags
   * first (EINVAL for one it does not know) and only then copies the program
   * (EFAULT). So EFAULT means the filter mode and the flags are known, and
   * nothing was installed. SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (Linux
   * 5.19) needs NEW_LISTENER beside it.
   */
  r = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, nullptr);
  put("seccomp_filter", presence(r) == EFAULT ? 0 : presence(r));
  r = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER,
              SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, nullptr);
  put("seccomp_wait_killable_recv", presence(r) == EFAULT ? 0 : presence(r));

  /* SECCOMP_GET_ACTION_AVAIL (Linux 4.14) for SECCOMP_RET_USER_NOTIF (Linux 5.0). */
  {
    uint32_t action = SECCOMP_RET_USER_NOTIF;
    r = syscall(__NR_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action);
    put("seccomp_user_notif", err_of(r));
  }
  /* SECCOMP_GET_NOTIF_SIZES (Linux 5.0): the sizes of the notification structures. */
  {
    struct {
      uint16_t notif, resp, data;
    } sizes = {0, 0, 0};
    r = syscall(__NR_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes);
    put("seccomp_notif_sizes", err_of(r));
    if (r >= 0) {
      Napi::Object s = Napi::Object::New(env);
      s.Set("notif", sizes.notif);
      s.Set("resp", sizes.resp);
      s.Set("data", sizes.data);
      out.Set("notifSizes", s);
    }
  }
  return out;
}

/* What the unshare child reports through its pipe. */
struct UnshareStatus {
  int err;   /* errno of the first step that failed, 0 for none */
  int stage; /* which: index into the flags, or -1 setgroups, -2 uid_map, -3 gid_map */
};

/* Everything the child needs, made before the clone. */
struct UnsharePlan {
  std::vector<unsigned long> flags;
  bool map;
  std::string uid_map, gid_map;
  int wr;
};

int write_file(const char *path, const char *data, unsigned long len) {
  long fd = SYS4(__NR_openat, AT_FDCWD, path, O_WRONLY | O_CLOEXEC, 0);
  if (sys_failed(fd)) return static_cast<int>(-fd);
  long w = SYS3(__NR_write, fd, data, len);
  SYS1(__NR_close, fd);
  return sys_failed(w) ? static_cast<int>(-w) : 0;
}

[[noreturn]] void unshare_child(const UnsharePlan &p, const unsigned long *flags, unsigned long n) {
  UnshareStatus st = {0, 0};
  for (unsigned long i = 0; i < n; i++) {
    long r = SYS1(__NR_unshare, flags[i]);
    if (sys_failed(r)) {
      st = {static_cast<int>(-r), static_cast<int>(i)};
      break;
    }
    /*
     * After CLONE_NEWUSER (always the first flag when map is asked), map our
     * own ids as an unprivileged process may: one uid, one gid, and setgroups
     * denied first (user_namespaces(7), "Interaction with setgroups").
     */
    if (i == 0 && p.map) {
      int e = write_file("/proc/self/setgroups", "deny", 4);
      if (e) {
        st = {e, -1};
        break;
      }
      e = write_file("/proc/self/uid_map", p.uid_map.data(), p.uid_map.size());
      if (e) {
        st = {e, -2};
        break;
      }
      e = write_file("/proc/self/gid_map", p.gid_map.data(), p.gid_map.size());
      if (e) {
        st = {e, -3};
        break;
      }
    }
  }
  SYS3(__NR_write, p.wr, &st, sizeof st);
  for (;;) SYS1(__NR_exit_group, 0);
}

/*
 * probeUnshare(flags[], map) -> { errno, stage }: a throwaway child
 * unshare(2)s each flag in turn (CLONE_NEWUSER first for an unprivileged
 * caller) and reports the first failure; with map, it writes a single-id
 * uid_map and gid_map (0 -> our ids) after the first. Only the child ever
 * holds the namespaces, and it exits at once.
 */
Napi::Value ProbeUnshare(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsBoolean()) {
    Napi::TypeError::New(env, "probeUnshare(flags: number[], map: boolean)").ThrowAsJavaScriptException();
    return env.Null();
  }
  UnsharePlan p;
  Napi::Array a = info[0].As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++)
    p.flags.push_back(static_cast<unsigned long>(a.Get(i).As<Napi::Number>().Int64Value()));
  p.map = info[1].As<Napi::Boolean>().Value();
  char buf[64];
  snprintf(buf, sizeof buf, "0 %u 1\n", static_cast<unsigned>(geteuid()));
  p.uid_map = buf;
  snprintf(buf, sizeof buf, "0 %u 1\n", static_cast<unsigned>(getegid()));
  p.gid_map = buf;

  Napi::Object out = Napi::Object::New(env);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) {
    out.Set("errno", errno);
    out.Set("stage", -9);
    return out;
  }
  p.wr = fds[1];
  const unsigned long *flags = p.flags.data();
  unsigned long n = p.flags.size();
  /* A fork-like clone: its own copy of memory, SIGCHLD to us when it ends (clone(2)). */
  long pid = SYS5(__NR_clone, SIGCHLD, 0, 0, 0, 0);
  if (pid == 0) unshare_child(p, flags, n);
  close(fds[1]);
  UnshareStatus st = {0, 0};
  if (sys_failed(pid)) {
    st = {static_cast<int>(-pid), -9};
  } else {
    ssize_t got;
    do got = read(fds[0], &st, sizeof st);
    while (got < 0 && errno == EINTR);
    if (got != static_cast<ssize_t>(sizeof st)) st = {EIO, -9};
    while (waitpid(static_cast<pid_t>(pid), nullptr, __WALL) < 0 && errno == EINTR) {
    }
  }
  close(fds[0]);
  out.Set("errno", st.err);
  out.Set("stage", st.stage);
  return out;
}

/*
 * seccompLibrary() -> { major, minor, micro, api, newest: { nr, name } }:
 * libseccomp's version (seccomp_version(3)), its API level
 * (seccomp_api_get(3)), and the highest-numbered system call of this
 * architecture it has a name for (seccomp_syscall_resolve_num_arch(3)): a
 * call newer than that cannot be named in a profile.
 */
Napi::Value SeccompLibrary(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  const scmp_version *v = seccomp_version();
  out.Set("major", v ? v->major : 0);
  out.Set("minor", v ? v->minor : 0);
  out.Set("micro", v ? v->micro : 0);
  out.Set("api", seccomp_api_get());
  int newest = -1;
  std::string name;
  for (int nr = 0; nr < 1024; nr++) {
    char *s = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
    if (s) {
      newest = nr;
      name = s;
      free(s);
    }
  }
  Napi::Object n = Napi::Object::New(env);
  n.Set("nr", newest);
  n.Set("name", name);
  out.Set("newest", n);
  return out;
}

}  // namespace

void probe_exports(Napi::Env env, Napi::Object exports) {
  exports.Set("probeSyscalls", Napi::Function::New(env, ProbeSyscalls));
  exports.Set("probeUnshare", Napi::Function::New(env, ProbeUnshare));
  exports.Set("seccompLibrary", Napi::Function::New(env, SeccompLibrary));
}
