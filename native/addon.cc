/*
 * The N-API surface of capsule's addon. It stays thin: src/options.ts has
 * already validated everything and filled every default; this file copies
 * one plain object into SandboxOptions, launches on a pool thread, watches
 * the sandbox's pidfd on the event loop, and hands back one plain object.
 *
 *   configure({ initPath })           once: seal capsule-init into a memfd
 *   spawn(options, onExit) -> Promise<{ pid, id, stdio: [fd|-1 x3] }>
 *   kill(pid, id, signal) -> boolean  through that run's pidfd; false once it is reaped
 *   openInBox({pid, id} | {pid, pidfd}, path, flags, mode) -> fd   a path inside a session's box
 *   pidfdOpen(pid) -> fd              pidfd_open(2), for a box another process owns
 *   terminateSignal                   CAPSULE_SIG_TERMINATE's number
 *   startSignal                       CAPSULE_SIG_START's: releases a created OCI container (init.c)
 *   sendFd(socketPath, fd)            runc's --console-socket: a terminal's master over SCM_RIGHTS
 *   sendRun(goFd, message, [fd x3])   a sandbox made ahead: its run's argv, env and stdio (init.c receive_run)
 *   setRef(pid, id, ref)              whether that run's watcher keeps the event loop alive
 *   steps() -> [{ name, syscall, man, why }]   the list in steps.h
 *   plan(options) -> [{ step, kind, source, target, ... }]   the mount phase, not run
 *   strerror(errno) -> string
 *   compileSeccomp(profile) -> { fd, instructions, ignored, unknown, pfc }   (seccomp.cc)
 *   sealFilter(bytes) -> fd; libseccompVersion          precompiled filters (seccomp.cc)
 *   syscallName(nr, auditArch) -> string
 *   setDeviceProgram(cgroupDirFd, rules | null)   cgroup v2 device gating (devices.cc)
 *   pipe() -> [readFd, writeFd]       a close-on-exec kernel pipe (runInteractive's wiring)
 *   mountAt(path) -> { mntId, mountRoot }   the mount a directory is on (OCI host_mounts)
 *   detachMount(path, mntId) -> 'detached' | 'gone' | 'covered'   umount2(MNT_DETACH) of that mount
 */
#include <fcntl.h>
#include <napi.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sched.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <map>

#include <linux/openat2.h>
#include <string>

#include "netns_pool.h"
#include "userns_pool.h"
#include "probe.h"
#include "rootless.h"
#include "seccomp.h"
#include "spawn.h"
#include "tty.h"
#include "userns.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace {

Runtime g_runtime;
bool g_configured = false;

struct StepInfo {
  const char *name, *syscall, *man, *why;
};
const StepInfo kSteps[] = {
#define CAPSULE_STEP_INFO(name, syscall, man, why) {#name, syscall, man, why},
    CAPSULE_STEPS(CAPSULE_STEP_INFO)
#undef CAPSULE_STEP_INFO
};

Napi::Object error_object(Napi::Env env, const capsule_error_record &rec) {
  Napi::Object e = Napi::Object::New(env);
  unsigned step = rec.step < static_cast<unsigned>(STEP__COUNT) ? rec.step : 0u;
  e.Set("step", kSteps[step].name);
  e.Set("syscall", kSteps[step].syscall);
  e.Set("errno", rec.err);
  e.Set("detail", std::string(rec.detail, strnlen(rec.detail, sizeof rec.detail)));
  return e;
}

/* ------------------------------- configure ------------------------------- */

/*
 * Copy capsule-init into a sealed memfd once per process. The sandbox execs it
 * by descriptor, so no host path to capsule's files exists inside, and the
 * seals make the copy unwritable even through /proc/1/exe (runc's fix for
 * CVE-2019-5736, memfd_create(2), fcntl(2) F_ADD_SEALS).
 */
Napi::Value Configure(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (g_configured) return env.Undefined();
  std::string path = info[0].As<Napi::Object>().Get("initPath").As<Napi::String>();
  auto throw_errno = [&](const std::string &what) {
    Napi::Error::New(env, what + ": " + strerror(errno)).ThrowAsJavaScriptException();
    return env.Undefined();
  };
  int src = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (src < 0) return throw_errno("cannot open capsule-init at " + path);
  struct stat st;
  fstat(src, &st);
  int mfd = static_cast<int>(syscall(SYS_memfd_create, "capsule-init", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (mfd < 0) {
    close(src);
    return throw_errno("memfd_create for capsule-init");
  }
  off_t off = 0;
  while (off < st.st_size) {
    ssize_t n = sendfile(mfd, src, &off, st.st_size - off);
    if (n <= 0) {
      close(src);
      close(mfd);
      return throw_errno("copying capsule-init into a memfd");
    }
  }
  close(src);
  fchmod(mfd, 0555);
  if (fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
    close(mfd);
    return throw_errno("sealing capsule-init's memfd");
  }
  int self = static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0));
  if (self < 0) {
    close(mfd);
    return throw_errno("pidfd_open of capsule's own process (Linux 5.3 or later is needed)");
  }
  int last_cap = 40;
  if (FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re")) {
    if (fscanf(f, "%d", &last_cap) != 1) last_cap = 40;
    fclose(f);
  }
  netns_pool_configure(); /* on the main thread: nothing else reads the environment later */
  userns_pool_configure();
  g_runtime.init_fd = mfd;
  g_runtime.self_pidfd = self;
  g_runtime.last_cap = last_cap;
  g_configured = true;
  return env.Undefined();
}

/* --------------------------------- watch --------------------------------- */

/* One running sandbox: its pidfd on the event loop, until it is reaped. */
struct Watcher {
  uv_poll_t poll;
  napi_env env;
  Napi::FunctionReference on_exit;
  int pid, pidfd, error_fd, status_fd;
  /* This spawn's number, never reused in the process: what kill() is addressed by (see Kill). */
  double id;
};
std::map<int, Watcher *> g_watchers;
double g_next_id = 1;
/*
 * Set by exiting() from a process 'exit' listener: Node then closes its handles
 * (Environment::CleanupHandles) and a sandbox reaped then must not call into
 * JavaScript, which can no longer run (napi_throw aborts the process).
 */
bool g_exiting = false;

void on_poll_closed(uv_handle_t *h) { delete static_cast<Watcher *>(h->data); }

void on_pidfd_readable(uv_poll_t *handle, int, int) {
  Watcher *w = static_cast<Watcher *>(handle->data);
  siginfo_t si;
  std::memset(&si, 0, sizeof si);
  struct rusage ru;
  std::memset(&ru, 0, sizeof ru);
  /* The raw waitid takes a rusage, which glibc's wrapper hides: capsule-init's own, plus everything it reaped. */
  long r;
  do r = syscall(SYS_waitid, P_PIDFD, w->pidfd, &si, WEXITED | WNOHANG, &ru);
  while (r < 0 && errno == EINTR);
  if (r == 0 && si.si_pid == 0) return; /* readable, yet not exited: wait for the next event */
  if (r < 0) {
    /*
     * The pidfd polls readable once the process has exited, and stays so: a
     * waitid that keeps failing (ECHILD: something else reaped it) would call
     * us again and again. Its status is lost; end the watch as if it had been
     * killed, with whatever report capsule-init wrote before it exited.
     */
    si.si_code = CLD_KILLED;
    si.si_status = SIGKILL;
  }

  /* A sandbox made ahead says it read its run (steps.h CAPSULE_RECEIVED_MAGIC) before the report. */
  capsule_init_report report{};
  bool have_report = false, received = false;
  while (read_record(w->status_fd, &report, sizeof report)) {
    if (report.magic == CAPSULE_RECEIVED_MAGIC) {
      received = true;
      continue;
    }
    have_report = report.magic == CAPSULE_REPORT_MAGIC;
    break;
  }
  capsule_error_record rec{};
  bool have_error = read_record(w->error_fd, &rec, sizeof rec) && rec.magic == CAPSULE_ERROR_MAGIC;
  /*
   * Stop polling and close the handle before the descriptor: libuv must not
   * watch (or epoll_ctl DEL) a number another thread may already have reused.
   * The Watcher itself is freed in on_poll_closed, on a later loop turn.
   */
  uv_poll_stop(handle);
  uv_close(reinterpret_cast<uv_handle_t *>(handle), on_poll_closed);
  close(w->pidfd);
  close(w->status_fd);
  close(w->error_fd);
  g_watchers.erase(w->pid);
  if (g_exiting) return;

  Napi::Env env(w->env);
  Napi::HandleScope scope(env);
  Napi::Object res = Napi::Object::New(env);
  res.Set("initCode", si.si_code == CLD_EXITED ? "exited" : "killed");
  res.Set("received", received);
  res.Set("initStatus", si.si_status);
  if (have_report) {
    Napi::Object rep = Napi::Object::New(env);
    rep.Set("waitStatus", report.wait_status);
    rep.Set("userCpuUs", static_cast<double>(report.user_cpu_us));
    rep.Set("systemCpuUs", static_cast<double>(report.system_cpu_us));
    rep.Set("maxRssKiB", static_cast<double>(report.max_rss_kib));
    rep.Set("startedNs", static_cast<double>(report.started_ns));
    rep.Set("forkedNs", static_cast<double>(report.forked_ns));
    if (report.violation_arch != 0) {
      Napi::Object v = Napi::Object::New(env);
      v.Set("number", report.violation_nr);
      v.Set("arch", report.violation_arch);
      v.Set("syscall", seccomp_syscall_name(report.violation_nr, report.violation_arch));
      rep.Set("violation", v);
    } else {
      rep.Set("violation", env.Null());
    }
    res.Set("report", rep);
  } else {
    res.Set("report", env.Null());
  }
  /* Without a report (capsule-init was SIGKILLed) only its own CPU time is known; its max RSS is Node's. */
  res.Set("initUserCpuUs", static_cast<double>(ru.ru_utime.tv_sec) * 1e6 + ru.ru_utime.tv_usec);
  res.Set("initSystemCpuUs", static_cast<double>(ru.ru_stime.tv_sec) * 1e6 + ru.ru_stime.tv_usec);
  res.Set("error", have_error ? error_object(env, rec) : env.Null());
  w->on_exit.MakeCallback(env.Global(), {res});
}

/* --------------------------------- spawn --------------------------------- */

/*
 * Reading the options object. src/ has validated everything, but the addon
 * does not trust that: a value the kernel would read differently from what
 * was meant is refused here, whatever the caller checked. A double cast to an
 * integer out of its range is undefined behaviour in C++ (2^64 became 0, -1
 * became UINT64_MAX), and for a uid -1 means "leave it unchanged" to
 * setresuid(2). A string with a NUL byte would be cut short there (a cwd of
 * "/tmp\0x" would become "/tmp"). The first problem is kept and thrown once the
 * whole object is read (no C++ exceptions: -fno-exceptions).
 */
std::string g_bad_option;

void bad(const char *key, const std::string &why) {
  if (g_bad_option.empty()) g_bad_option = std::string("capsule addon: option ") + key + " " + why;
}

std::string str(const Napi::Object &o, const char *key) {
  Napi::Value v = o.Get(key);
  if (!v.IsString()) {
    bad(key, "must be a string");
    return "";
  }
  std::string s = v.As<Napi::String>();
  if (s.find('\0') != std::string::npos) bad(key, "must not contain a NUL byte");
  return s;
}

/* An integer in [0, max] (max below 2^64); 2^64 itself only where allow_infinity makes it RLIM_INFINITY. */
uint64_t integer(const Napi::Object &o, const char *key, double max, bool allow_infinity = false) {
  constexpr double kTwo64 = 18446744073709551616.0;
  Napi::Value v = o.Get(key);
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : std::nan("");
  if (allow_infinity && d == kTwo64) return UINT64_MAX;
  /* In range and whole (NaN fails both): only then is the conversion defined. */
  if (!(d >= 0 && d <= max && std::trunc(d) == d)) {
    std::string got = v.IsNumber() ? Napi::Value(v.ToString()).As<Napi::String>().Utf8Value() : "a non-number";
    bad(key, "must be an integer from 0 to " + std::to_string(static_cast<uint64_t>(max)) + ", got " + got);
    return 0;
  }
  return static_cast<uint64_t>(d);
}
uint64_t u64(const Napi::Object &o, const char *key) { return integer(o, key, 18446744073709549568.0); }
uint32_t u32(const Napi::Object &o, const char *key, uint32_t max = UINT32_MAX) {
  return static_cast<uint32_t>(integer(o, key, max));
}
/* A descriptor number, or -1 for none. */
int fd_number(const Napi::Value &v, const char *key) {
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : std::nan("");
  if (!(d >= -1 && d <= INT32_MAX && std::trunc(d) == d)) {
    bad(key, "must be a descriptor number or -1");
    return -1;
  }
  return static_cast<int>(d);
}

std::vector<std::string> strings(const Napi::Object &o, const char *key) {
  std::vector<std::string> v;
  Napi::Value a = o.Get(key);
  if (!a.IsArray()) {
    bad(key, "must be an array of strings");
    return v;
  }
  Napi::Array arr = a.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value e = arr.Get(i);
    std::string s = e.IsString() ? e.As<Napi::String>().Utf8Value() : std::string();
    if (!e.IsString() || s.find('\0') != std::string::npos) bad(key, "must be strings without NUL bytes");
    v.push_back(std::move(s));
  }
  return v;
}

/*
 * oci: { waitForStart, namespaces, uidMappings, gidMappings, rootReadonly, rootPropagation,
 * mounts, maskedPaths, readonlyPaths, sysctl, devices, additionalGids, umask, capabilities,
 * noNewPrivileges, hostname } (src/native.ts NativeOci), validated by src/oci/spec.ts.
 */
void parse_oci(const Napi::Object &o, SandboxOptions &s, bool joining) {
  OciOptions &c = s.oci;
  c.enabled = true;
  c.wait_for_start = o.Get("waitForStart").ToBoolean();
  static const std::pair<const char *, int> kTypes[] = {
      {"pid", CLONE_NEWPID},   {"network", CLONE_NEWNET}, {"mount", CLONE_NEWNS},   {"ipc", CLONE_NEWIPC},
      {"uts", CLONE_NEWUTS},   {"cgroup", CLONE_NEWCGROUP}, {"user", CLONE_NEWUSER}};
  auto array = [&](const Napi::Object &from, const char *key) {
    Napi::Value v = from.Get(key);
    if (!v.IsArray()) {
      bad(key, "must be an array");
      return Napi::Array::New(o.Env());
    }
    return v.As<Napi::Array>();
  };
  Napi::Array ns = array(o, "namespaces");
  for (uint32_t i = 0; i < ns.Length(); i++) {
    Napi::Object n = ns.Get(i).As<Napi::Object>();
    std::string type = str(n, "type");
    int flag = 0;
    for (const auto &t : kTypes)
      if (type == t.first) flag = t.second;
    if (!flag) bad("oci.namespaces", "unknown type " + type);
    int fd = fd_number(n.Get("fd"), "oci.namespaces[].fd");
    /*
     * A mount namespace joined by path is where the container's mounts and pivot_root happen,
     * as runc does; but never capsule-runc's own (the host's): pivot_root would move the root
     * of every process in it.
     */
    if (fd >= 0 && flag == CLONE_NEWNS) {
      struct stat a, b;
      if (fstat(fd, &a) != 0 || stat("/proc/self/ns/mnt", &b) != 0 || (a.st_ino == b.st_ino && a.st_dev == b.st_dev))
        bad("oci.namespaces", "the mount namespace to join is the caller's own (the host's): give the container one of its own");
    }
    if (fd >= 0) c.joins.push_back({flag, fd});
    else c.new_namespaces |= flag;
  }
  bool mount_joined = false;
  for (const auto &j : c.joins) mount_joined |= j.first == CLONE_NEWNS;
  /*
   * No mount namespace at all: the caller's (the host's) is the container's, which only an
   * explicit hostMounts: true asks for (src/oci/spec.ts warns what it means). Its mounts are
   * made under a private bind of the rootfs and its root is a chroot: pivot_root there would
   * move the root of every process on the host.
   */
  c.host_mounts = o.Get("hostMounts").ToBoolean();
  const bool own_mountns = (c.new_namespaces & CLONE_NEWNS) || mount_joined;
  if (!own_mountns && !joining && !c.host_mounts)
    bad("oci.namespaces", "must include a mount namespace, or hostMounts: true to use the caller's");
  if (own_mountns && c.host_mounts) bad("oci.hostMounts", "is only for a container without a mount namespace");
  Napi::Value sync = o.Get("hookSync");
  if (sync.IsObject()) {
    Napi::Object h = sync.As<Napi::Object>();
    c.hook_read_fd = fd_number(h.Get("readFd"), "oci.hookSync.readFd");
    c.hook_write_fd = fd_number(h.Get("writeFd"), "oci.hookSync.writeFd");
    Napi::Array closing = array(h, "closeFds");
    for (uint32_t i = 0; i < closing.Length(); i++)
      c.hook_close_fds.push_back(fd_number(closing.Get(i), "oci.hookSync.closeFds"));
    if (c.hook_read_fd < 0 || c.hook_write_fd < 0) bad("oci.hookSync", "needs readFd and writeFd");
    if (joining) bad("oci.hookSync", "is only for create");
  }
  Napi::Value cc = o.Get("createContainerHooks");
  if (cc.IsArray()) {
    Napi::Array hooks = cc.As<Napi::Array>();
    for (uint32_t i = 0; i < hooks.Length(); i++) {
      Napi::Object h = hooks.Get(i).As<Napi::Object>();
      OciOptions::Hook hook;
      hook.path = str(h, "path");
      hook.argv = strings(h, "args");
      hook.env = strings(h, "env");
      hook.timeout = u32(h, "timeout");
      if (hook.path.empty() || hook.path[0] != '/') bad("oci.createContainerHooks[].path", "must be absolute");
      if (hook.argv.empty()) hook.argv.push_back(hook.path);
      c.create_container_hooks.push_back(std::move(hook));
    }
    if (!c.create_container_hooks.empty() && c.hook_read_fd < 0)
      bad("oci.createContainerHooks", "need oci.hookSync: they run at the hook point");
  }
  Napi::Value root_fd = o.Get("joinRootFd");
  c.join_root_fd = root_fd.IsUndefined() ? -1 : fd_number(root_fd, "oci.joinRootFd");
  if (c.join_root_fd >= 0 && !joining) bad("oci.joinRootFd", "is only for exec (join)");
  auto maps = [&](const char *key) {
    std::string text;
    Napi::Array a = array(o, key);
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Object m = a.Get(i).As<Napi::Object>();
      text += std::to_string(u32(m, "containerID")) + " " + std::to_string(u32(m, "hostID")) + " " +
              std::to_string(u32(m, "size")) + "\n";
    }
    return text;
  };
  c.uid_map = maps("uidMappings");
  c.gid_map = maps("gidMappings");
  if ((c.new_namespaces & CLONE_NEWUSER) && (c.uid_map.empty() || c.gid_map.empty()))
    bad("oci.uidMappings", "a new user namespace needs uidMappings and gidMappings");
  c.root_readonly = o.Get("rootReadonly").ToBoolean();
  c.root_propagation = u64(o, "rootPropagation");
  if (c.host_mounts && (c.root_propagation & (MS_SHARED | MS_UNBINDABLE)))
    bad("oci.rootPropagation", "shared or unbindable needs a mount namespace of the container's own");
  Napi::Array mounts = array(o, "mounts");
  for (uint32_t i = 0; i < mounts.Length(); i++) {
    Napi::Object m = mounts.Get(i).As<Napi::Object>();
    OciMount om;
    om.destination = str(m, "destination");
    om.type = str(m, "type");
    om.source = str(m, "source");
    om.recursive = m.Get("recursive").ToBoolean();
    om.attrs = u64(m, "attrs");
    om.propagation = u64(m, "propagation");
    Napi::Array data = array(m, "data");
    for (uint32_t j = 0; j < data.Length(); j++) {
      Napi::Array kv = data.Get(j).As<Napi::Array>();
      Napi::Value v = kv.Get(1u);
      om.data.push_back({kv.Get(0u).ToString().Utf8Value(),
                         {v.IsString(), v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string()}});
    }
    if (om.destination.empty() || om.destination[0] != '/') bad("oci.mounts[].destination", "must be absolute");
    if (om.type == "bind" && (om.source.empty() || om.source[0] != '/'))
      bad("oci.mounts[].source", "a bind's source must be an absolute host path");
    c.mounts.push_back(std::move(om));
  }
  c.masked_paths = strings(o, "maskedPaths");
  c.readonly_paths = strings(o, "readonlyPaths");
  Napi::Array sysctl = array(o, "sysctl");
  for (uint32_t i = 0; i < sysctl.Length(); i++) {
    Napi::Object kv = sysctl.Get(i).As<Napi::Object>();
    std::string key = str(kv, "key");
    /* Dotted names, or already a path below /proc/sys (sysctl.d(5) takes both); never a way out of it. */
    if (key.empty() || key[0] == '/' || key.find("..") != std::string::npos) bad("oci.sysctl", "not a sysctl key: " + key);
    c.sysctl.push_back({key, str(kv, "value")});
  }
  Napi::Array devices = array(o, "devices");
  for (uint32_t i = 0; i < devices.Length(); i++) {
    Napi::Object d = devices.Get(i).As<Napi::Object>();
    std::string type = str(d, "type");
    if (type != "c" && type != "b" && type != "u" && type != "p") bad("oci.devices[].type", "must be c, b, u or p");
    c.devices.push_back({str(d, "path"), type == "u" ? 'c' : type[0], u32(d, "major"), u32(d, "minor"),
                         u32(d, "fileMode", 07777), u32(d, "uid"), u32(d, "gid")});
  }
  Napi::Array groups = array(o, "additionalGids");
  for (uint32_t i = 0; i < groups.Length(); i++) c.groups.push_back(groups.Get(i).ToNumber().Uint32Value());
  Napi::Value umask = o.Get("umask");
  c.umask = umask.IsNumber() && umask.As<Napi::Number>().Int32Value() >= 0 ? (umask.As<Napi::Number>().Int32Value() & 0777) : -1;
  Napi::Value caps_value = o.Get("capabilities");
  Napi::Object caps = caps_value.IsObject() ? caps_value.As<Napi::Object>() : Napi::Object::New(o.Env());
  static const char *const kSets[] = {"bounding", "effective", "permitted", "inheritable", "ambient"};
  for (int k = 0; k < 5; k++) {
    Napi::Array a = array(caps, kSets[k]);
    for (uint32_t i = 0; i < a.Length(); i++) {
      uint32_t cap = a.Get(i).ToNumber().Uint32Value();
      if (cap > 63) bad("oci.capabilities", "a capability number is at most 63");
      else c.caps[k] |= 1ull << cap;
    }
  }
  c.no_new_privs = o.Get("noNewPrivileges").ToBoolean();
  std::string hostname = o.Get("hostname").IsString() ? str(o, "hostname") : std::string();
  if (!hostname.empty()) {
    c.set_hostname = true;
    s.hostname = hostname;
  }
  bool uts_joined = false;
  for (const auto &j : c.joins) uts_joined |= j.first == CLONE_NEWUTS;
  if (c.set_hostname && !(c.new_namespaces & CLONE_NEWUTS) && !uts_joined)
    bad("oci.hostname", "needs a uts namespace of the container's own");
}

SandboxOptions parse_options(const Napi::Object &o) {
  SandboxOptions s;
  s.rootfs = str(o, "rootfs");
  s.argv = strings(o, "argv");
  s.env = strings(o, "env");
  s.cwd = str(o, "cwd");
  s.hostname = str(o, "hostname");
  /* Not (uid_t)-1: to setresuid(2) and setresgid(2) that means "leave it unchanged". */
  s.uid = u32(o, "uid", UINT32_MAX - 1);
  s.gid = u32(o, "gid", UINT32_MAX - 1);
  Napi::Value host_uid = o.Get("hostUid"), host_gid = o.Get("hostGid"); /* optional: src/ids.ts */
  s.host_uid = host_uid.IsNumber() ? u32(o, "hostUid", UINT32_MAX - 1) : 0;
  s.host_gid = host_gid.IsNumber() ? u32(o, "hostGid", UINT32_MAX - 1) : 0;
  /* optional: a user namespace made ahead for hostUid (src/ids.ts); duplicated in Spawn */
  if (o.Get("usernsFd").IsNumber()) s.userns_fd = fd_number(o.Get("usernsFd"), "usernsFd");
  s.rootless = o.Get("rootless").ToBoolean(); /* optional: src/rootless.ts */
  Napi::Value id_map = o.Get("idMap"); /* optional: a subordinate range, src/rootless.ts */
  if (s.rootless && id_map.IsObject()) {
    Napi::Object m = id_map.As<Napi::Object>();
    s.newuidmap = str(m, "newuidmap");
    s.newgidmap = str(m, "newgidmap");
    for (const char *key : {"uids", "gids"}) {
      Napi::Value a = m.Get(key);
      std::vector<uint32_t> &out = key[0] == 'u' ? s.uid_ranges : s.gid_ranges;
      Napi::Array arr = a.IsArray() ? a.As<Napi::Array>() : Napi::Array::New(o.Env());
      for (uint32_t i = 0; i < arr.Length(); i++) {
        Napi::Object r = arr.Get(i).As<Napi::Object>();
        for (const char *f : {"inside", "outside", "count"}) out.push_back(u32(r, f));
      }
    }
  }
  s.writable_root = o.Get("writableRoot").ToBoolean();
  s.tmp_size_bytes = u64(o, "tmpSizeBytes");
  s.dev_pts = o.Get("devPts").ToBoolean();
  s.dev_shm = o.Get("devShm").ToBoolean();
  s.sys = o.Get("sys").ToBoolean();
  s.tmp_noexec = o.Get("tmpNoexec").ToBoolean();
  s.dev_shm_size_bytes = u64(o, "devShmSizeBytes");
  Napi::Array nodes = o.Get("devNodes").As<Napi::Array>();
  for (uint32_t i = 0; i < nodes.Length(); i++) {
    Napi::Object n = nodes.Get(i).As<Napi::Object>();
    s.dev_nodes.push_back({str(n, "path"), u32(n, "major"), u32(n, "minor"), u32(n, "mode", 07777)});
  }
  Napi::Value devices_value = o.Get("devices"); /* optional: src/devices/ */
  Napi::Array devices = devices_value.IsArray() ? devices_value.As<Napi::Array>() : Napi::Array::New(o.Env());
  for (uint32_t i = 0; i < devices.Length(); i++) {
    Napi::Object d = devices.Get(i).As<Napi::Object>();
    s.devices.push_back({str(d, "target"), str(d, "type") == "b", u32(d, "major"), u32(d, "minor"),
                         u32(d, "mode", 07777), d.Get("hostPath").IsString() ? str(d, "hostPath") : std::string()});
  }
  Napi::Array binds = o.Get("binds").As<Napi::Array>();
  for (uint32_t i = 0; i < binds.Length(); i++) {
    Napi::Object b = binds.Get(i).As<Napi::Object>();
    s.binds.push_back({str(b, "source"), str(b, "target"), b.Get("readOnly").ToBoolean(),
                       b.Has("option") ? str(b, "option") : std::string()});
  }
  /* Optional, as tests drive the addon with older option sets: src/options.ts fills them. */
  s.overlay = o.Get("overlay").ToBoolean();
  if (o.Get("overlaySizeBytes").IsNumber()) s.overlay_size_bytes = u64(o, "overlaySizeBytes");
  if (o.Get("box").IsString()) s.box = str(o, "box");
  if (o.Get("boxSizeBytes").IsNumber()) s.box_size_bytes = u64(o, "boxSizeBytes");
  Napi::Value points = o.Get("mountPoints");
  if (points.IsArray()) {
    Napi::Array arr = points.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Object m = arr.Get(i).As<Napi::Object>();
      s.mount_points.push_back({str(m, "path"), m.Get("dir").ToBoolean()});
    }
  }
  Napi::Array cg = o.Get("cgroupFds").As<Napi::Array>();
  for (uint32_t i = 0; i < cg.Length(); i++) s.cgroup_fds.push_back(fd_number(cg.Get(i), "cgroupFds"));
  Napi::Array rl = o.Get("rlimits").As<Napi::Array>();
  for (uint32_t i = 0; i < rl.Length(); i++) {
    Napi::Object r = rl.Get(i).As<Napi::Object>();
    /* 2^64, the double nearest RLIM_INFINITY, means RLIM_INFINITY (src/limits.ts). */
    constexpr double kMax = 18446744073709549568.0;
    s.rlimits.push_back({static_cast<int>(u32(r, "resource", 63)), integer(r, "soft", kMax, true),
                         integer(r, "hard", kMax, true)});
  }
  Napi::Array stdio = o.Get("stdio").As<Napi::Array>();
  for (uint32_t i = 0; i < 3; i++) s.stdio[i] = fd_number(stdio.Get(i), "stdio");
  s.seccomp_fd = fd_number(o.Get("seccompFd"), "seccompFd");
  s.trace = o.Get("trace").ToBoolean();
  Napi::Value dir = o.Get("cgroupDirFd");
  s.cgroup_dir_fd = dir.IsUndefined() ? -1 : fd_number(dir, "cgroupDirFd");
  Napi::Value tty = o.Get("terminal"); /* optional: { rows, cols } (src/terminal.ts) */
  if (tty.IsObject()) {
    Napi::Object t = tty.As<Napi::Object>();
    s.tty = true;
    s.tty_rows = static_cast<uint16_t>(u32(t, "rows", 65535));
    s.tty_cols = static_cast<uint16_t>(u32(t, "cols", 65535));
  }
  s.unref = o.Get("unref").ToBoolean();
  s.prepared = o.Get("prepared").ToBoolean();
  Napi::Value oci = o.Get("oci"); /* optional: OCI runtime mode (src/oci) */
  if (oci.IsObject()) parse_oci(oci.As<Napi::Object>(), s, o.Get("join").IsObject());
  return s;
}

/* parse_options, or false with a TypeError thrown for the first bad value. */
bool parse_checked(Napi::Env env, const Napi::Value &v, SandboxOptions &out) {
  g_bad_option.clear();
  if (!v.IsObject()) {
    Napi::TypeError::New(env, "capsule addon: options must be an object").ThrowAsJavaScriptException();
    return false;
  }
  out = parse_options(v.As<Napi::Object>());
  if (g_bad_option.empty() && !env.IsExceptionPending()) return true;
  if (!env.IsExceptionPending()) Napi::TypeError::New(env, g_bad_option).ThrowAsJavaScriptException();
  return false;
}

/* The child's step times (and, for a failed run, as far as it got), for --explain. */
Napi::Value trace_object(Napi::Env env, const Plan &plan, const SpawnResult &r) {
  Napi::Object t = Napi::Object::New(env);
  t.Set("cloneStartNs", static_cast<double>(r.clone_start_ns));
  t.Set("cloneEndNs", static_cast<double>(r.clone_end_ns));
  t.Set("usernsStartNs", static_cast<double>(r.userns_start_ns));
  t.Set("usernsEndNs", static_cast<double>(r.userns_end_ns));
  t.Set("parentPidfd", r.parent_pidfd_thread ? "thread" : "process");
  uint32_t n = plan.trace.count < CAPSULE_TRACE_MAX ? plan.trace.count : CAPSULE_TRACE_MAX;
  Napi::Array events = Napi::Array::New(env, n);
  for (uint32_t i = 0; i < n; i++) {
    const capsule_trace_event &ev = plan.trace.ev[i];
    Napi::Object e = Napi::Object::New(env);
    e.Set("step", ev.step < static_cast<uint32_t>(STEP__COUNT) ? kSteps[ev.step].name : "?");
    e.Set("op", ev.op);
    e.Set("ns", static_cast<double>(ev.ns));
    events.Set(i, e);
  }
  t.Set("events", events);
  return t;
}

/* One mount-phase operation, as data: for `capsule explain` and --explain's arguments. */
Napi::Object op_object(Napi::Env env, const mount_op &op) {
  static const char *const kinds[] = {"mount", "mkfile", "mkdir",  "symlink", "setattr",
                                      "mknod", "umask",  "bind", "fsmount", "overlay", "mkpoint"};
  Napi::Object o = Napi::Object::New(env);
  o.Set("step", kSteps[op.step].name);
  o.Set("kind", kinds[op.kind]);
  auto opt = [&](const char *key, const char *v) { o.Set(key, v ? Napi::Value(Napi::String::New(env, v)) : env.Null()); };
  opt("source", op.source);
  opt("target", op.target);
  opt("fstype", op.fstype);
  opt("data", op.data);
  o.Set("flags", static_cast<double>(op.flags));
  o.Set("attrSet", static_cast<double>(op.attr_set));
  o.Set("recursive", op.recursive != 0);
  return o;
}

class SpawnWorker : public Napi::AsyncWorker {
 public:
  SpawnWorker(Napi::Env env, SandboxOptions opts, Napi::Function on_exit)
      : Napi::AsyncWorker(env, "capsule:spawn"),
        deferred_(Napi::Promise::Deferred::New(env)),
        opts_(std::move(opts)),
        on_exit_(Napi::Persistent(on_exit)) {}

  ~SpawnWorker() override {
    if (opts_.join_pidfd >= 0) close(opts_.join_pidfd); /* our duplicate of the box's pidfd (Spawn) */
    if (opts_.userns_fd >= 0) close(opts_.userns_fd); /* our duplicate of a namespace made ahead (Spawn) */
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

  /* On a pool thread: the clone happens here, so the event loop never waits for it. */
  void Execute() override { spawn_sandbox(g_runtime, opts_, plan_, result_); }

  void OnOK() override {
    Napi::Env env = Env();
    if (!result_.ok) {
      Napi::Object e = error_object(env, result_.error);
      if (opts_.trace) e.Set("trace", trace_object(env, plan_, result_));
      deferred_.Reject(e);
      return;
    }
    Watcher *w = new Watcher();
    w->env = env;
    w->on_exit = std::move(on_exit_);
    w->pid = result_.pid;
    w->pidfd = result_.pidfd;
    w->error_fd = result_.error_fd;
    w->status_fd = result_.status_fd;
    w->id = g_next_id++;
    uv_loop_t *loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    uv_poll_init(loop, &w->poll, w->pidfd);
    w->poll.data = w;
    uv_poll_start(&w->poll, UV_READABLE, on_pidfd_readable);
    /* A session's box waits for commands: it must not keep Node alive by itself (src/session.ts). */
    if (opts_.unref) uv_unref(reinterpret_cast<uv_handle_t *>(&w->poll));
    g_watchers[w->pid] = w;

    Napi::Object res = Napi::Object::New(env);
    res.Set("pid", result_.pid);
    /* OCI, a joined PID namespace: the container is capsule-init's child, which it left; `pid` is capsule-init. */
    if (result_.container_pid > 0) res.Set("containerPid", result_.container_pid);
    if (result_.go_fd >= 0) res.Set("go", result_.go_fd);
    res.Set("id", w->id);
    Napi::Array stdio = Napi::Array::New(env, 3);
    for (uint32_t i = 0; i < 3; i++) stdio.Set(i, result_.stdio[i]);
    res.Set("stdio", stdio);
    if (result_.tty_master >= 0) {
      /*
       * Two descriptors of the one master: Node reads one on the event loop
       * and writes the other from the pool (src/terminal.ts), and each is
       * closed by whoever uses it, never while the other is in flight.
       */
      int writer = fcntl(result_.tty_master, F_DUPFD_CLOEXEC, 0);
      Napi::Array t = Napi::Array::New(env, 2);
      t.Set(0u, result_.tty_master);
      t.Set(1u, writer >= 0 ? writer : -1);
      res.Set("terminal", t);
    }
    if (opts_.trace) res.Set("trace", trace_object(env, plan_, result_));
    deferred_.Resolve(res);
  }

 private:
  Napi::Promise::Deferred deferred_;
  SandboxOptions opts_;
  Napi::FunctionReference on_exit_;
  Plan plan_;
  SpawnResult result_;
};

/*
 * A box's PID 1, as a pidfd we hold: { pid, id } names a spawn of this process by its
 * watcher (as kill() does); { pidfd } one the caller opened (pidfdOpen) and checked,
 * for a box another process owns (the CLI's sessions). -1 when it is not there.
 */
int box_pidfd(const Napi::Object &j) {
  Napi::Value fd = j.Get("pidfd");
  if (fd.IsNumber()) return fd.As<Napi::Number>().Int32Value();
  auto it = g_watchers.find(j.Get("pid").As<Napi::Number>().Int32Value());
  if (it == g_watchers.end() || it->second->id != j.Get("id").As<Napi::Number>().DoubleValue()) return -1;
  return it->second->pidfd;
}

Napi::Value Spawn(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!g_configured) {
    Napi::Error::New(env, "capsule addon: configure() was not called").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  SandboxOptions opts;
  if (!parse_checked(env, info[0], opts)) return env.Undefined();
  /*
   * join: { pid, id, userns } names a session's box by the watcher of its PID 1 (as
   * kill() does), never by a PID alone. The pidfd is duplicated here, on the main
   * thread where the watchers live, so the pool thread holds its own even if the box is
   * reaped meanwhile (then join_box fails with ESRCH: the box is gone).
   */
  Napi::Value join = info[0].As<Napi::Object>().Get("join");
  if (join.IsObject()) {
    Napi::Object j = join.As<Napi::Object>();
    int pidfd = box_pidfd(j);
    if (pidfd < 0) {
      Napi::Error::New(env, "capsule addon: the box to join has ended").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    opts.join_pidfd = fcntl(pidfd, F_DUPFD_CLOEXEC, 0);
    if (opts.join_pidfd < 0) {
      Napi::Error::New(env, std::string("capsule addon: dup of the box's pidfd: ") + strerror(errno))
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    opts.join_userns = j.Get("userns").ToBoolean();
  }
  /*
   * usernsFd: the caller keeps and closes its own descriptor; the spawn gets a copy, so that
   * it is closed once, by the worker, after the clone whatever happens (SpawnWorker).
   */
  if (opts.userns_fd >= 0) {
    if (opts.host_uid == 0) {
      Napi::TypeError::New(env, "capsule addon: option usernsFd needs hostUid").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    opts.userns_fd = fcntl(opts.userns_fd, F_DUPFD_CLOEXEC, 0);
    if (opts.userns_fd < 0) {
      Napi::Error::New(env, std::string("capsule addon: dup of usernsFd: ") + strerror(errno))
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  SpawnWorker *worker = new SpawnWorker(env, std::move(opts), info[1].As<Napi::Function>());
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

/*
 * kill(pid, id, signal): pidfd_send_signal(2) on the pidfd of the run spawn() numbered
 * `id`. A PID alone is not enough: once run A is reaped its PID can go to a later
 * sandbox B, whose watcher then sits under the same PID; A's handle (and any timer A
 * armed) must not reach B, so the id must match too. The watcher is removed in the same
 * callback that reaps the sandbox, so a handle whose run was reaped finds nothing and
 * returns false.
 */
Napi::Value Kill(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int pid = info[0].As<Napi::Number>().Int32Value();
  double id = info[1].As<Napi::Number>().DoubleValue();
  int sig = info[2].As<Napi::Number>().Int32Value();
  auto it = g_watchers.find(pid);
  if (it == g_watchers.end() || it->second->id != id) return Napi::Boolean::New(env, false);
  long r = syscall(SYS_pidfd_send_signal, it->second->pidfd, sig, nullptr, 0);
  return Napi::Boolean::New(env, r == 0);
}

/*
 * setRef(pid, id, ref): whether that run's watcher keeps the event loop alive (uv_ref,
 * uv_unref). A sandbox made ahead waits unreferenced, so a process that never uses it
 * can still exit; its run, once begun, is referenced like any other (src/lifecycle.ts).
 */
Napi::Value SetRef(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int pid = info[0].As<Napi::Number>().Int32Value();
  double id = info[1].As<Napi::Number>().DoubleValue();
  auto it = g_watchers.find(pid);
  if (it == g_watchers.end() || it->second->id != id) return Napi::Boolean::New(env, false);
  uv_handle_t *h = reinterpret_cast<uv_handle_t *>(&it->second->poll);
  if (info[2].ToBoolean()) uv_ref(h);
  else uv_unref(h);
  return Napi::Boolean::New(env, true);
}

/*
 * openInBox(pid, id, path, flags, mode): open `path` inside a session's box, for copyIn
 * and copyOut (src/session.ts). The program can rename, replace or symlink anything in
 * its box at any moment, so nothing here is a path string checked and then used:
 *
 *   1. open /proc/PID/root of the box's PID 1 (O_PATH): the box's root directory;
 *   2. then check the watcher's pidfd still names a live process: if the PID had been
 *      reused before step 1, the pidfd (which names the box's PID 1 and no other) would
 *      show it dead, so the descriptor from step 1 is the box's root;
 *   3. openat2(2) below that descriptor with RESOLVE_IN_ROOT (".." and absolute paths
 *      stay inside it), RESOLVE_NO_SYMLINKS (no symlink anywhere on the path, the last
 *      component included) and RESOLVE_NO_MAGICLINKS (no /proc/PID/fd/N jump out).
 *
 * Returns the descriptor (close-on-exec); throws an Error with `errno` and `syscall`.
 */
Napi::Value OpenInBox(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Object target = info[0].As<Napi::Object>();
  int pid = target.Get("pid").As<Napi::Number>().Int32Value();
  std::string path = info[1].As<Napi::String>();
  int flags = info[2].As<Napi::Number>().Int32Value();
  unsigned mode = info[3].As<Napi::Number>().Uint32Value();
  auto fail = [&](const char *syscall_name, int err) {
    Napi::Error e = Napi::Error::New(env, std::string(syscall_name) + ": " + strerror(err));
    e.Set("errno", Napi::Number::New(env, err));
    e.Set("syscall", Napi::String::New(env, syscall_name));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  };
  if (path.find('\0') != std::string::npos) return fail("openat2", EINVAL);
  int pidfd = box_pidfd(target);
  if (pidfd < 0) return fail("pidfd_send_signal", ESRCH);
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/%d/root", pid);
  int root = open(proc, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) return fail("open /proc/PID/root", errno);
  if (syscall(SYS_pidfd_send_signal, pidfd, 0, nullptr, 0) != 0) {
    int err = errno;
    close(root);
    return fail("pidfd_send_signal", err);
  }
  struct open_how how;
  std::memset(&how, 0, sizeof how);
  how.flags = static_cast<uint64_t>(flags) | O_CLOEXEC | O_NOFOLLOW;
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  long fd;
  do fd = syscall(SYS_openat2, root, path.c_str(), &how, sizeof how);
  while (fd < 0 && errno == EINTR);
  int err = errno;
  close(root);
  if (fd < 0) return fail("openat2", err);
  return Napi::Number::New(env, static_cast<double>(fd));
}

/*
 * chownInBox(target, fd, uid, gid): rootless copyIn gives the file it made to the box's
 * user, from inside the box's user namespace (rootless.cc). Throws with `errno` and `syscall`.
 */
Napi::Value ChownInBox(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int pidfd = box_pidfd(info[0].As<Napi::Object>());
  const char *what = "pidfd";
  int err = pidfd < 0 ? ESRCH
                      : rootless_chown_in_box(pidfd, info[1].As<Napi::Number>().Int32Value(),
                                              info[2].As<Napi::Number>().Uint32Value(),
                                              info[3].As<Napi::Number>().Uint32Value(), what);
  if (err == 0) return env.Undefined();
  Napi::Error e = Napi::Error::New(env, std::string(what) + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, what));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

/* pidfdOpen(pid): pidfd_open(2), close-on-exec; throws with `errno`. The caller checks it is the right process. */
Napi::Value PidfdOpen(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  long fd = syscall(SYS_pidfd_open, info[0].As<Napi::Number>().Int32Value(), 0);
  if (fd < 0) {
    Napi::Error e = Napi::Error::New(env, std::string("pidfd_open: ") + strerror(errno));
    e.Set("errno", Napi::Number::New(env, errno));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(fd));
}

/*
 * startNetnsPool(): the network-namespace pool's thread starts now rather than at the first
 * spawn (netns_pool.h), so a process's first sandbox can have a namespace made while the
 * rest of its launch is prepared. After configure(), which reads CAPSULE_NETNS_POOL.
 */
Napi::Value StartNetnsPool(const Napi::CallbackInfo &info) {
  netns_pool_start();
  return info.Env().Undefined();
}

/*
 * takeHostIds(dir, first, count, uid, gid): a host id leased ahead with a user namespace
 * made for it (userns_pool.h), as { id, fd, userns }, or null: lease and make them inline.
 * The caller owns both descriptors (releaseHostId ends the lease).
 */
Napi::Value TakeHostIds(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  UsernsPoolKey key;
  key.dir = info[0].As<Napi::String>().Utf8Value();
  key.first = info[1].As<Napi::Number>().Uint32Value();
  key.count = info[2].As<Napi::Number>().Uint32Value();
  key.inside_uid = info[3].As<Napi::Number>().Uint32Value();
  key.inside_gid = info[4].As<Napi::Number>().Uint32Value();
  UsernsPoolEntry e;
  if (!userns_pool_take(key, e)) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", static_cast<double>(e.id));
  o.Set("fd", e.lease_fd);
  o.Set("userns", e.userns_fd);
  return o;
}

/* hostIdPoolFds(): the descriptors the user-namespace pool holds now (for leak checks). */
Napi::Value HostIdPoolFds(const Napi::CallbackInfo &info) {
  std::vector<int> fds = userns_pool_fds();
  Napi::Array a = Napi::Array::New(info.Env(), fds.size());
  for (uint32_t i = 0; i < fds.size(); i++) a.Set(i, fds[i]);
  return a;
}

/*
 * drainHostIdPool(stop): end what the user-namespace pool holds; stop: make no more (the
 * process is exiting), else until the next take (descriptors ran out).
 */
Napi::Value DrainHostIdPool(const Napi::CallbackInfo &info) {
  userns_pool_drain(info[0].ToBoolean());
  return info.Env().Undefined();
}

/* exiting(): the process is ending; reaps from now on call no JavaScript (see g_exiting). */
Napi::Value Exiting(const Napi::CallbackInfo &info) {
  g_exiting = true;
  return info.Env().Undefined();
}

/* plan(options): the mount phase's operations for these options, without running anything. */
Napi::Value PlanOps(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  SandboxOptions opts;
  if (!parse_checked(env, info[0], opts)) return env.Undefined();
  Plan plan;
  plan_mounts(opts, plan);
  Napi::Array ops = Napi::Array::New(env, plan.mount_ops.size());
  for (uint32_t i = 0; i < plan.mount_ops.size(); i++) ops.Set(i, op_object(env, plan.mount_ops[i]));
  return ops;
}

Napi::Value Steps(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Array a = Napi::Array::New(env, STEP__COUNT);
  for (uint32_t i = 0; i < STEP__COUNT; i++) {
    Napi::Object s = Napi::Object::New(env);
    s.Set("name", kSteps[i].name);
    s.Set("syscall", kSteps[i].syscall);
    s.Set("man", kSteps[i].man);
    s.Set("why", kSteps[i].why);
    a.Set(i, s);
  }
  return a;
}

/* ------------------------------- seccomp -------------------------------- */

SeccompAction seccomp_action(const Napi::Object &o) {
  static const char *const kinds[] = {"allow", "errno", "kill_process", "kill_thread",
                                      "trap", "trace", "log", "notify"};
  std::string kind = str(o, "kind");
  SeccompAction a;
  for (unsigned i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
    if (kind == kinds[i]) a.kind = static_cast<SeccompActionKind>(i);
  a.value = u32(o, "value");
  return a;
}

uint64_t big(const Napi::Object &o, const char *key) {
  bool lossless;
  return o.Get(key).As<Napi::BigInt>().Uint64Value(&lossless);
}

/*
 * compileSeccomp: the profile src/seccomp/ validated and normalized, compiled
 * once into a sealed memfd (seccomp.cc). Throws with libseccomp's reason.
 */
Napi::Value CompileSeccomp(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Object o = info[0].As<Napi::Object>();
  g_bad_option.clear();
  SeccompProfile p;
  p.default_action = seccomp_action(o.Get("defaultAction").As<Napi::Object>());
  p.bad_arch_action = seccomp_action(o.Get("badArchAction").As<Napi::Object>());
  p.want_pfc = o.Get("pfc").ToBoolean();
  p.enosys_after = strings(o, "enosysAfter");
  Napi::Array rules = o.Get("rules").As<Napi::Array>();
  for (uint32_t i = 0; i < rules.Length(); i++) {
    Napi::Object r = rules.Get(i).As<Napi::Object>();
    SeccompRule rule;
    rule.syscall = str(r, "syscall");
    rule.action = seccomp_action(r.Get("action").As<Napi::Object>());
    Napi::Array args = r.Get("args").As<Napi::Array>();
    for (uint32_t j = 0; j < args.Length(); j++) {
      Napi::Object a = args.Get(j).As<Napi::Object>();
      rule.args.push_back({u32(a, "index", 5), str(a, "op"), big(a, "value"), big(a, "valueTwo")});
    }
    p.rules.push_back(std::move(rule));
  }
  if (!g_bad_option.empty() || env.IsExceptionPending()) {
    if (!env.IsExceptionPending()) Napi::TypeError::New(env, g_bad_option).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  SeccompCompiled out;
  seccomp_compile(p, out);
  if (!out.ok) {
    Napi::Error::New(env, out.error).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object res = Napi::Object::New(env);
  res.Set("fd", out.fd);
  res.Set("instructions", out.instructions);
  Napi::Array ignored = Napi::Array::New(env, out.ignored.size());
  for (uint32_t i = 0; i < out.ignored.size(); i++) ignored.Set(i, out.ignored[i]);
  res.Set("ignored", ignored);
  Napi::Array unknown = Napi::Array::New(env, out.unknown.size());
  for (uint32_t i = 0; i < out.unknown.size(); i++) unknown.Set(i, out.unknown[i]);
  res.Set("unknown", unknown);
  res.Set("pfc", out.pfc);
  return res;
}

/* sealFilter(bytes): a precompiled filter into a sealed memfd (seccomp.cc); throws with errno. */
Napi::Value SealFilter(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Buffer<uint8_t> b = info[0].As<Napi::Buffer<uint8_t>>();
  std::string error;
  int fd = seccomp_filter_from_bytes(b.Data(), b.Length(), error);
  if (fd < 0) {
    int saved = errno;
    Napi::Error e = Napi::Error::New(env, error + ": " + strerror(saved));
    e.Set("errno", Napi::Number::New(env, saved));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

Napi::Value SyscallName(const Napi::CallbackInfo &info) {
  return Napi::String::New(info.Env(), seccomp_syscall_name(info[0].As<Napi::Number>().Int32Value(),
                                                            info[1].As<Napi::Number>().Uint32Value()));
}

/*
 * setDeviceProgram(cgroupDirFd, rules | null): the cgroup v2 device program
 * (devices.cc). rules: [{ type: 'c'|'b', major, minor (-1 for any), access }].
 * Throws an Error carrying the bpf(2) call, errno text and `errno`.
 */
Napi::Value SetDeviceProgram(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  std::vector<DeviceRule> rules;
  bool detach = !info[1].IsArray();
  if (!detach) {
    Napi::Array a = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Object r = a.Get(i).As<Napi::Object>();
      std::string access = str(r, "access");
      rules.push_back({str(r, "type") == "b", r.Get("major").As<Napi::Number>().Int32Value(),
                       r.Get("minor").As<Napi::Number>().Int32Value(), access.find('r') != std::string::npos,
                       access.find('w') != std::string::npos, access.find('m') != std::string::npos});
    }
  }
  std::string error;
  if (set_device_program(fd, detach ? nullptr : &rules, error) != 0) {
    int saved = errno;
    Napi::Error e = Napi::Error::New(env, error);
    e.Set("errno", Napi::Number::New(env, saved));
    e.ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

/*
 * pipe(): a kernel pipe for wiring one sandbox's stdout to another's stdin
 * (src/interactive.ts). Node has no call that makes an anonymous pipe without
 * wrapping it in a stream. O_CLOEXEC (pipe2(2)): a child_process the Node
 * process spawns meanwhile must not inherit an end, or the reader never sees
 * EOF; the sandbox gets its own copy through run()'s stdio (and close_range
 * in the child closes everything else). Blocking, as a shell's pipe: the
 * programs are the only readers and writers, Node never touches the data.
 * Throws an Error with `errno` (EMFILE, ENFILE).
 */
/*
 * hardLimit(resource): this process's hard limit of an RLIMIT_* resource (getrlimit(2)),
 * 2^64 for RLIM_INFINITY, or -1 when the kernel refuses. A system call instead of parsing
 * /proc/self/limits: the value now, and no /proc needed.
 */
Napi::Value HardLimit(const Napi::CallbackInfo &info) {
  struct rlimit rl;
  int resource = info[0].As<Napi::Number>().Int32Value();
  if (getrlimit(static_cast<__rlimit_resource_t>(resource), &rl) != 0) return Napi::Number::New(info.Env(), -1);
  return Napi::Number::New(info.Env(), rl.rlim_max == RLIM_INFINITY ? 18446744073709551616.0
                                                                    : static_cast<double>(rl.rlim_max));
}

/*
 * fdStatusFlags(fd): the open file description's status flags and access mode
 * (fcntl(2) F_GETFL; O_PATH shows there too), or -1 when fd is not open.
 */
Napi::Value FdStatusFlags(const Napi::CallbackInfo &info) {
  int flags = fcntl(info[0].As<Napi::Number>().Int32Value(), F_GETFL);
  return Napi::Number::New(info.Env(), flags);
}

Napi::Value Pipe(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    int saved = errno;
    Napi::Error e = Napi::Error::New(env, std::string("pipe2: ") + strerror(saved));
    e.Set("errno", Napi::Number::New(env, saved));
    e.Set("syscall", Napi::String::New(env, "pipe2"));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, fds[0]);
  a.Set(1u, fds[1]);
  return a;
}

/*
 * The mount a directory is on, by descriptor: statx(2) STATX_MNT_ID (the id mountinfo's first
 * field shows) and STATX_ATTR_MOUNT_ROOT. The path is opened once, with no symlink followed
 * (openat2(2) RESOLVE_NO_SYMLINKS), so a link swapped in cannot point it elsewhere.
 * OCI containers without a mount namespace (oci.cc host_mounts): create reads the bind of
 * the rootfs it made, delete detaches exactly that mount.
 */
static int open_dir_nofollow(const std::string &path) {
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(syscall(SYS_openat2, AT_FDCWD, path.c_str(), &how, sizeof how));
}

static bool fd_mount(int fd, uint64_t &mnt_id, bool &root) {
  struct statx stx;
  memset(&stx, 0, sizeof stx);
  if (statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &stx) != 0) return false;
  if (!(stx.stx_mask & STATX_MNT_ID)) {
    errno = EOPNOTSUPP;
    return false;
  }
  mnt_id = stx.stx_mnt_id;
  root = (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) && (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
  return true;
}

static void throw_errno(Napi::Env env, const char *syscall_name, const std::string &path, int err) {
  Napi::Error e = Napi::Error::New(env, std::string(syscall_name) + " " + path + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall_name));
  e.ThrowAsJavaScriptException();
}

Napi::Value MountAt(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = open_dir_nofollow(path);
  if (fd < 0) {
    throw_errno(env, "openat2", path, errno);
    return env.Undefined();
  }
  uint64_t id = 0;
  bool root = false;
  bool ok = fd_mount(fd, id, root);
  int err = errno;
  close(fd);
  if (!ok) {
    throw_errno(env, "statx", path, err);
    return env.Undefined();
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("mntId", Napi::Number::New(env, static_cast<double>(id)));
  o.Set("mountRoot", Napi::Boolean::New(env, root));
  return o;
}

/*
 * detachMount(path, mntId): umount2(2) with MNT_DETACH of the mount `path` is the root of, only
 * when it is mount mntId: 'detached'. The whole tree below it goes with it (MNT_DETACH detaches
 * every mount under it too). The path is opened once (no symlinks) and unmounted through that
 * descriptor's /proc/self/fd name, so what is unmounted is what was checked. 'gone': no mount
 * with that id is left in this namespace (/proc/self/mountinfo); 'covered': it is there but
 * another mount sits on top of it at path, and nothing was done.
 */
Napi::Value DetachMount(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  const uint64_t want = static_cast<uint64_t>(info[1].As<Napi::Number>().Int64Value());
  int fd = open_dir_nofollow(path);
  if (fd >= 0) {
    uint64_t id = 0;
    bool root = false;
    if (fd_mount(fd, id, root) && root && id == want) {
      std::string self = "/proc/self/fd/" + std::to_string(fd);
      int r = umount2(self.c_str(), MNT_DETACH);
      int err = errno;
      close(fd);
      if (r != 0) {
        throw_errno(env, "umount2", path, err);
        return env.Undefined();
      }
      return Napi::String::New(env, "detached");
    }
    close(fd);
  }
  FILE *f = fopen("/proc/self/mountinfo", "re");
  bool present = false;
  if (f) {
    char line[4096];
    bool at_start = true; /* a line longer than the buffer comes in pieces: only a line's start is its id */
    while (!present && fgets(line, sizeof line, f)) {
      if (at_start) present = strtoull(line, nullptr, 10) == want;
      at_start = strchr(line, '\n') != nullptr;
    }
    fclose(f);
  }
  return Napi::String::New(env, present ? "covered" : "gone");
}

/* One sendmsg(2) of `len` bytes with `nfds` descriptors as SCM_RIGHTS (unix(7)), retried on EINTR. */
ssize_t send_with_fds(int sock, void *data, size_t len, const int *fds, size_t nfds, int flags) {
  if (nfds == 0 || nfds > 3) {
    errno = EINVAL;
    return -1;
  }
  struct iovec iov = {data, len};
  char control[CMSG_SPACE(3 * sizeof(int))];
  memset(control, 0, sizeof control);
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
  struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
  memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
  ssize_t n;
  do n = sendmsg(sock, &msg, flags);
  while (n < 0 && errno == EINTR);
  return n;
}

/*
 * sendRun(goFd, message, [stdin, stdout, stderr]): start a sandbox made ahead
 * of time (src/ahead.ts). `message` is the struct capsule_go_header and the
 * strings (steps.h), sent as one SOCK_SEQPACKET message with the three
 * descriptors as SCM_RIGHTS (unix(7)): capsule-init receives them whole or
 * not at all (init.c receive_run). MSG_DONTWAIT: the socket is empty (its one
 * message is this one), so the send never waits, and a capsule-init that is
 * gone answers EPIPE (MSG_NOSIGNAL: no SIGPIPE) or ECONNRESET. Throws an Error
 * with `errno`.
 */
Napi::Value SendRun(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int sock = info[0].As<Napi::Number>().Int32Value();
  Napi::Buffer<char> message = info[1].As<Napi::Buffer<char>>();
  Napi::Array list = info[2].As<Napi::Array>();
  int fds[3];
  for (uint32_t i = 0; i < 3; i++) fds[i] = list.Get(i).As<Napi::Number>().Int32Value();
  ssize_t n = send_with_fds(sock, message.Data(), message.Length(), fds, 3, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n != static_cast<ssize_t>(message.Length())) {
    int err = n < 0 ? errno : EMSGSIZE;
    Napi::Error e = Napi::Error::New(env, std::string("sendmsg: ") + strerror(err));
    e.Set("errno", Napi::Number::New(env, err));
    e.Set("syscall", Napi::String::New(env, "sendmsg"));
    e.ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

/*
 * sendFd(socketPath, fd): runc's --console-socket protocol. Connect to the
 * unix socket the engine listens on and send `fd` (a terminal's master) in
 * one SCM_RIGHTS message (unix(7)), with its name as the data, as runc does.
 * Throws an Error with `errno` and `syscall`.
 */
Napi::Value SendFd(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = info[1].As<Napi::Number>().Int32Value();
  const char *syscall_name = "socket";
  int err = 0;
  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) err = errno;
  if (!err) {
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) {
      err = ENAMETOOLONG;
      syscall_name = "connect";
    } else {
      memcpy(addr.sun_path, path.c_str(), path.size());
      if (connect(sock, reinterpret_cast<struct sockaddr *>(&addr), sizeof addr) != 0) err = errno, syscall_name = "connect";
    }
  }
  if (!err) {
    char name[] = "/dev/ptmx";
    if (send_with_fds(sock, name, sizeof name - 1, &fd, 1, MSG_NOSIGNAL) < 0) err = errno, syscall_name = "sendmsg";
  }
  if (sock >= 0) close(sock);
  if (err) {
    Napi::Error e = Napi::Error::New(env, std::string(syscall_name) + " " + path + ": " + strerror(err));
    e.Set("errno", Napi::Number::New(env, err));
    e.Set("syscall", Napi::String::New(env, syscall_name));
    e.ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

/* strerror: the C library's text for an errno, as a C programmer would see it. */
/* setWindowSize(fd, rows, cols): TIOCSWINSZ on a terminal's master; throws with the errno's code. */
Napi::Value SetWindowSize(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int err = 0;
  if (!tty_set_window_size(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Uint32Value(),
                           info[2].As<Napi::Number>().Uint32Value(), err)) {
    Napi::Error e = Napi::Error::New(env, std::string("TIOCSWINSZ: ") + strerror(err));
    e.Set("errno", Napi::Number::New(env, err));
    e.ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

/* Throw an Error naming the call and the errno, with `errno` and `code`-less text. */
void throw_errno(Napi::Env env, const char *what, int err) {
  Napi::Error e = Napi::Error::New(env, std::string(what) + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.ThrowAsJavaScriptException();
}

/* makeRaw(fd): the terminal on fd in raw mode (cfmakeraw); returns its former settings, opaque. */
Napi::Value MakeRaw(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct termios saved;
  int err = 0;
  if (!tty_make_raw(info[0].As<Napi::Number>().Int32Value(), saved, err)) {
    throw_errno(env, "tcsetattr", err);
    return env.Undefined();
  }
  return Napi::Buffer<char>::Copy(env, reinterpret_cast<const char *>(&saved), sizeof saved);
}

/* restoreMode(fd, saved): the settings makeRaw returned, back on the terminal. */
Napi::Value RestoreMode(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Buffer<char> b = info[1].As<Napi::Buffer<char>>();
  struct termios saved;
  if (b.Length() != sizeof saved) {
    Napi::TypeError::New(env, "restoreMode: not settings from makeRaw").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  memcpy(&saved, b.Data(), sizeof saved);
  int err = 0;
  if (!tty_restore_mode(info[0].As<Napi::Number>().Int32Value(), saved, err)) throw_errno(env, "tcsetattr", err);
  return env.Undefined();
}

/* windowSize(fd): TIOCGWINSZ, { rows, cols }; null when fd is not a terminal. */
Napi::Value WindowSize(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  unsigned rows = 0, cols = 0;
  int err = 0;
  if (!tty_window_size(info[0].As<Napi::Number>().Int32Value(), rows, cols, err)) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  o.Set("rows", rows);
  o.Set("cols", cols);
  return o;
}

Napi::Value StrError(const Napi::CallbackInfo &info) {
  return Napi::String::New(info.Env(), strerror(info[0].As<Napi::Number>().Int32Value()));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("strerror", Napi::Function::New(env, StrError));
  exports.Set("configure", Napi::Function::New(env, Configure));
  exports.Set("spawn", Napi::Function::New(env, Spawn));
  exports.Set("setWindowSize", Napi::Function::New(env, SetWindowSize));
  exports.Set("windowSize", Napi::Function::New(env, WindowSize));
  exports.Set("makeRaw", Napi::Function::New(env, MakeRaw));
  exports.Set("restoreMode", Napi::Function::New(env, RestoreMode));
  exports.Set("kill", Napi::Function::New(env, Kill));
  exports.Set("openInBox", Napi::Function::New(env, OpenInBox));
  exports.Set("chownInBox", Napi::Function::New(env, ChownInBox));
  exports.Set("exiting", Napi::Function::New(env, Exiting));
  exports.Set("startNetnsPool", Napi::Function::New(env, StartNetnsPool));
  exports.Set("takeHostIds", Napi::Function::New(env, TakeHostIds));
  exports.Set("hostIdPoolFds", Napi::Function::New(env, HostIdPoolFds));
  exports.Set("drainHostIdPool", Napi::Function::New(env, DrainHostIdPool));
  exports.Set("pidfdOpen", Napi::Function::New(env, PidfdOpen));
  exports.Set("steps", Napi::Function::New(env, Steps));
  exports.Set("plan", Napi::Function::New(env, PlanOps));
  exports.Set("compileSeccomp", Napi::Function::New(env, CompileSeccomp));
  exports.Set("syscallName", Napi::Function::New(env, SyscallName));
  exports.Set("sealFilter", Napi::Function::New(env, SealFilter));
  exports.Set("libseccompVersion", Napi::String::New(env, libseccomp_version()));
  exports.Set("setDeviceProgram", Napi::Function::New(env, SetDeviceProgram));
  exports.Set("pipe", Napi::Function::New(env, Pipe));
  exports.Set("hardLimit", Napi::Function::New(env, HardLimit));
  exports.Set("fdStatusFlags", Napi::Function::New(env, FdStatusFlags));
  userns_exports(env, exports); /* claimHostId, releaseHostId (userns.cc) */
  probe_exports(env, exports);  /* probeSyscalls, probeUnshare, seccompLibrary (probe.cc) */
  exports.Set("terminateSignal", Napi::Number::New(env, CAPSULE_SIG_TERMINATE));
  exports.Set("startSignal", Napi::Number::New(env, CAPSULE_SIG_START));
  exports.Set("sendFd", Napi::Function::New(env, SendFd));
  exports.Set("sendRun", Napi::Function::New(env, SendRun));
  exports.Set("setRef", Napi::Function::New(env, SetRef));
  exports.Set("runMessageMax", Napi::Number::New(env, CAPSULE_GO_MAX));
  exports.Set("mountAt", Napi::Function::New(env, MountAt));
  exports.Set("detachMount", Napi::Function::New(env, DetachMount));
  return exports;
}

}  // namespace

NODE_API_MODULE(capsule, Init)
