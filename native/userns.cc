/*
 * A host uid and gid of the sandbox's own.
 *
 * Why: the kernel counts some limits per host user, not per process or
 * namespace: inotify instances (fs.inotify.max_user_instances), pending
 * signals (RLIMIT_SIGPENDING), POSIX message-queue bytes (RLIMIT_MSGQUEUE),
 * processes (RLIMIT_NPROC). When every sandbox is host uid 65534, one sandbox
 * that takes all 128 inotify instances leaves the next one EMFILE. isolate
 * gives each box a uid of its own for this reason; capsule does the same, and
 * keeps the program's view unchanged (uid 65534, or the uid asked for) with a
 * user namespace that maps that one uid to the host id, as bubblewrap's
 * setuid mode and nsjail map a single id.
 *
 * Who is charged: each ucount is charged to (user namespace, uid) and to
 * every ancestor namespace's owner up to the initial one (kernel/ucount.c
 * inc_ucount, user_namespaces(7)). The namespace is therefore created by a
 * task whose effective uid is the host id: its owner, and so the user every
 * one of the sandbox's counts lands on in the initial namespace. A namespace
 * made by root would charge every sandbox to root.
 *
 * How: the sandbox's child runs on the caller's thread's memory under
 * CLONE_VFORK, so nobody could write its uid_map while it sets up. So the
 * namespace is made before clone by a short-lived helper task, its maps
 * written from here, and the child joins it with setns(2) once its mounts,
 * hostname and rlimits are done (child_set_userns). The parent's descriptor
 * keeps the namespace alive until the child has joined it.
 */
#include "userns.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <napi.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>

#include <cstdio>
#include <cstring>

#include "config.h"
#include "sys.h"

/* ------------------------------ parent half ------------------------------ */

namespace {

/* What the helper reports: the errno of the operation that failed (0 for none), and which one. */
struct HelperStatus {
  int err;
  int stage;
};
/* The helper's steps, as the detail of make_userns's error (its syscall is unshare). */
const char *const kHelperStages[] = {"", "setresgid before it", "setresuid before it",
                                     "capset(CAP_SYS_ADMIN) before it", "CLONE_NEWUSER"};

struct Helper {
  uint32_t host_uid, host_gid;
  int status_wr;  /* helper -> parent: one HelperStatus */
  int release_rd; /* parent -> helper: nothing; EOF (or SIGKILL) ends the helper */
  int release_wr; /* the parent's end, which the helper closes in its copy of the table */
};

/*
 * The helper, on the caller's memory (CLONE_VM) and its thread's TLS, so
 * like the sandbox's child it makes only raw system calls (sys.h).
 */
int helper_main(void *arg) {
  const Helper *h = static_cast<const Helper *>(arg);
  HelperStatus st = {0, 0};
  long r;
  SYS1(__NR_close, h->release_wr); /* so that the parent's exit alone is an EOF for us */

  /*
   * The namespace's owner and group are the creator's effective uid and gid
   * (user_namespaces(7)). Only the effective ids change: with the real and
   * saved uid still 0 the permitted set survives (capabilities(7), "Effect of
   * user ID changes on capabilities"), which the next step needs.
   */
  r = SYS3(__NR_setresgid, -1, h->host_gid, -1);
  if (sys_failed(r)) st = {static_cast<int>(-r), 1};
  if (!st.err) {
    r = SYS3(__NR_setresuid, -1, h->host_uid, -1);
    if (sys_failed(r)) st = {static_cast<int>(-r), 2};
  }
  /*
   * Put CAP_SYS_ADMIN back in the effective set (the euid change emptied
   * it): a privileged creation is not subject to Debian's
   * kernel.unprivileged_userns_clone=0 or Ubuntu's AppArmor restriction of
   * unprivileged user namespaces, which are for unprivileged users.
   */
  if (!st.err) {
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {{0, 0, 0}, {0, 0, 0}};
    r = SYS2(__NR_capget, &hdr, data);
    if (!sys_failed(r)) {
      data[0].effective = data[0].permitted;
      data[1].effective = data[1].permitted;
      r = SYS2(__NR_capset, &hdr, data);
    }
    if (sys_failed(r)) st = {static_cast<int>(-r), 3};
  }
  /*
   * unshare(2) CLONE_NEWUSER: the helper is a task of its own (no
   * CLONE_THREAD) with its own fs_struct (no CLONE_FS), as unshare requires.
   */
  if (!st.err) {
    r = SYS1(__NR_unshare, CLONE_NEWUSER);
    if (sys_failed(r)) st = {static_cast<int>(-r), 4};
  }
  SYS3(__NR_write, h->status_wr, &st, sizeof st);
  /* Stay alive until the parent has written the maps and opened the namespace. */
  if (!st.err) {
    char c;
    SYS3(__NR_read, h->release_rd, &c, 1);
  }
  for (;;) SYS1(__NR_exit, 0);
}

bool write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = write(fd, text, strlen(text));
  int saved = errno;
  close(fd);
  errno = saved;
  return n == static_cast<ssize_t>(strlen(text));
}

}  // namespace

int userns_make(uint32_t inside_uid, uint32_t inside_gid, uint32_t host_uid, uint32_t host_gid, int &err,
                std::string &what) {
  /*
   * One id each way, nothing else: host root and every other host id
   * stay unmapped, so they show as the overflow id (nobody) inside and
   * no set-user-ID file or bug can make the program host root there.
   * We hold CAP_SETUID/CAP_SETGID over the parent namespace, so the
   * kernel takes the maps without "deny" in setgroups, and set_groups
   * can still empty the child's groups inside (user_namespaces(7)).
   */
  char uid_map[64], gid_map[64];
  snprintf(uid_map, sizeof uid_map, "%u %u 1\n", inside_uid, host_uid);
  snprintf(gid_map, sizeof gid_map, "%u %u 1\n", inside_gid, host_gid);
  return userns_make_maps(uid_map, gid_map, host_uid, host_gid, err, what);
}

int userns_make_maps(const std::string &uid_map, const std::string &gid_map, uint32_t host_uid, uint32_t host_gid,
                     int &err, std::string &what) {
  int status_pipe[2], release_pipe[2];
  if (pipe2(status_pipe, O_CLOEXEC) != 0) {
    err = errno;
    what = "pipe2";
    return -1;
  }
  if (pipe2(release_pipe, O_CLOEXEC) != 0) {
    err = errno;
    what = "pipe2";
    close(status_pipe[0]);
    close(status_pipe[1]);
    return -1;
  }
  Helper h = {host_uid, host_gid, status_pipe[1], release_pipe[0], release_pipe[1]};
  /*
   * The helper's stack: this frame outlives it (it is reaped before we
   * return), and this thread's own calls grow below it.
   */
  alignas(16) char stack[16 * 1024];
  /*
   * Every signal blocked across clone, so no handler of Node's ever runs in
   * the helper on this shared memory; SIGKILL still ends it. Exit signal 0:
   * Node gets no SIGCHLD for it, and only __WALL reaps it (wait(2)).
   */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = clone(helper_main, stack + sizeof stack, CLONE_VM, &h);
  int clone_errno = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  close(status_pipe[1]);
  close(release_pipe[0]);

  int fd = -1;
  if (pid < 0) {
    err = clone_errno;
    what = "clone";
  } else {
    HelperStatus st = {EIO, 0};
    ssize_t n;
    do n = read(status_pipe[0], &st, sizeof st);
    while (n < 0 && errno == EINTR);
    char path[64], map[64];
    if (n != static_cast<ssize_t>(sizeof st) || st.err != 0) {
      err = st.err;
      what = st.stage > 0 && st.stage < 5 ? kHelperStages[st.stage] : "its helper task";
      snprintf(map, sizeof map, " as host uid %u", host_uid);
      what += map;
    } else {
      snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
      if (!write_file(path, uid_map.c_str())) {
        err = errno;
        what = std::string("CLONE_NEWUSER, then uid_map ") + uid_map;
        if (!what.empty() && what.back() == '\n') what.pop_back();
      } else {
        snprintf(path, sizeof path, "/proc/%d/gid_map", pid);
        if (!write_file(path, gid_map.c_str())) {
          err = errno;
          what = std::string("CLONE_NEWUSER, then gid_map ") + gid_map;
          if (!what.empty() && what.back() == '\n') what.pop_back();
        } else {
          snprintf(path, sizeof path, "/proc/%d/ns/user", pid);
          fd = open(path, O_RDONLY | O_CLOEXEC);
          if (fd < 0) {
            err = errno;
            what = path;
          }
        }
      }
    }
    /* We have not reaped it, so the pid is still the helper's: kill(2) by pid is safe here. */
    kill(pid, SIGKILL);
    while (waitpid(pid, nullptr, __WALL) < 0 && errno == EINTR) {
    }
  }
  close(status_pipe[0]);
  close(release_pipe[1]);
  return fd;
}

/* ------------------------------- host ids ------------------------------- */

int host_id_claim(const std::string &dir, uint32_t first, uint32_t count, uint32_t start, uint32_t &id,
                  std::string &what) {
  for (uint32_t i = 0; i < count; i++) {
    uint32_t candidate = first + (start + i) % count;
    std::string path = dir + "/" + std::to_string(candidate);
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
      what = "open " + path;
      return -1;
    }
    /*
     * flock(2) locks belong to the open file description, so a second lease
     * in this same process conflicts too, and the kernel drops the lock of a
     * process that dies: a crashed capsule leaves a file but no lease.
     */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int e = errno;
      close(fd);
      if (e == EWOULDBLOCK) continue;
      errno = e;
      what = "flock " + path;
      return -1;
    }
    /*
     * The lock is on an inode. If its holder unlinked the file and let go
     * between our open and our flock, we hold a lock on an orphan while the
     * path may already be a new file someone else holds: only a lock on the
     * inode the path names now is a lease.
     */
    struct stat a, b;
    if (fstat(fd, &a) != 0 || stat(path.c_str(), &b) != 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
      close(fd);
      continue;
    }
    id = candidate;
    return fd;
  }
  errno = EAGAIN;
  what = "every host id of the range is in use";
  return -1;
}

void host_id_sweep(const std::string &dir) {
  DIR *d = opendir(dir.c_str());
  if (!d) return;
  while (struct dirent *e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::string path = dir + "/" + e->d_name;
    int fd = open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat a, b;
    /* Unlocked means no live lease: remove it, under our own lock, only if it is still that file. */
    if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &a) == 0 && stat(path.c_str(), &b) == 0 &&
        a.st_ino == b.st_ino && a.st_dev == b.st_dev)
      unlink(path.c_str());
    close(fd);
  }
  closedir(d);
}

void host_id_release(const std::string &dir, uint32_t id, int fd) {
  std::string path = dir + "/" + std::to_string(id);
  unlink(path.c_str()); /* while locked: see host_id_claim */
  close(fd);
}

namespace {

Napi::Value ClaimHostId(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string dir = info[0].As<Napi::String>();
  uint32_t first = info[1].As<Napi::Number>().Uint32Value();
  uint32_t count = info[2].As<Napi::Number>().Uint32Value();
  uint32_t start = info[3].As<Napi::Number>().Uint32Value();
  uint32_t id = 0;
  std::string what;
  int fd = host_id_claim(dir, first, count, start, id, what);
  if (fd < 0) {
    int saved = errno;
    Napi::Error e = Napi::Error::New(env, what + ": " + strerror(saved));
    e.Set("errno", Napi::Number::New(env, saved));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", Napi::Number::New(env, id));
  o.Set("fd", Napi::Number::New(env, fd));
  return o;
}

Napi::Value SweepHostIds(const Napi::CallbackInfo &info) {
  host_id_sweep(info[0].As<Napi::String>());
  return info.Env().Undefined();
}

Napi::Value ReleaseHostId(const Napi::CallbackInfo &info) {
  host_id_release(info[0].As<Napi::String>(), info[1].As<Napi::Number>().Uint32Value(),
                  info[2].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

}  // namespace

void userns_exports(Napi::Env env, Napi::Object exports) {
  exports.Set("claimHostId", Napi::Function::New(env, ClaimHostId));
  exports.Set("releaseHostId", Napi::Function::New(env, ReleaseHostId));
  exports.Set("sweepHostIds", Napi::Function::New(env, SweepHostIds));
}

/* ------------------------------- child half ------------------------------ */

/*
 * set_userns: join the namespace userns_make made (setns(2)). Where order
 * matters:
 *
 * - After every step that needs privilege over the namespaces clone made:
 *   they belong to the initial user namespace, and from here on we hold
 *   capabilities only in the new one (user_namespaces(7), "Interaction of
 *   user namespaces and other types of namespaces"). So after the mounts,
 *   pivot_root, sethostname and prlimit64 (raising a hard limit needs
 *   CAP_SYS_RESOURCE in the initial namespace).
 * - Before set_securebits and drop_bounding_caps: joining a user namespace
 *   gives the full sets and default securebits back (setns(2); kernel
 *   set_cred_user_ns), so those must be done inside it.
 * - Before close_fds, which would close the descriptor.
 *
 * The kernel's conditions (setns(2)): CAP_SYS_ADMIN in the target namespace,
 * which root of the parent namespace has; a single-threaded caller (we are a
 * task of our own) with an unshared fs_struct (no CLONE_FS). The credential
 * change also clears the parent-death signal (prctl(2)): identity.cc re-arms
 * and re-checks it after set_uid, as it must anyway.
 */
void child_set_userns(const struct child_config *cfg) {
  if (cfg->userns_fd < 0) return;
  long r = SYS2(__NR_setns, cfg->userns_fd, CLONE_NEWUSER);
  if (sys_failed(r)) child_fail(cfg, STEP_set_userns, r, "user namespace");
  child_trace(cfg, STEP_set_userns, -1);
}
