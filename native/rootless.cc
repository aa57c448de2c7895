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
 */
#include "rootless.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include "config.h"
#include "sys.h"

void rootless_prepare(const SandboxOptions &opts, std::string &uid_map, std::string &gid_map) {
  char buf[64];
  snprintf(buf, sizeof buf, "%u %u 1\n", opts.uid, static_cast<unsigned>(geteuid()));
  uid_map = buf;
  snprintf(buf, sizeof buf, "%u %u 1\n", opts.gid, static_cast<unsigned>(getegid()));
  gid_map = buf;
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

}  // namespace

void child_map_user_ids(const struct child_config *cfg) {
  if (!cfg->rootless) return;
  /* Order matters: gid_map is refused until setgroups is denied (user_namespaces(7)). */
  long r = write_proc("/proc/self/setgroups", "deny", 4);
  if (sys_failed(r)) child_fail(cfg, STEP_map_user_ids, r, "/proc/self/setgroups");
  r = write_proc("/proc/self/gid_map", cfg->gid_map, c_strlen(cfg->gid_map));
  if (sys_failed(r)) child_fail(cfg, STEP_map_user_ids, r, "/proc/self/gid_map");
  r = write_proc("/proc/self/uid_map", cfg->uid_map, c_strlen(cfg->uid_map));
  if (sys_failed(r)) child_fail(cfg, STEP_map_user_ids, r, "/proc/self/uid_map");
  child_trace(cfg, STEP_map_user_ids, -1);
}
