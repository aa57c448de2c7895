/*
 * The parent's view of a sandbox: the options as the addon received them,
 * and the Plan built from them, which owns every string the child reads.
 */
#ifndef CAPSULE_MOUNTS_H
#define CAPSULE_MOUNTS_H

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "config.h"

#ifndef MNT_DETACH
#define MNT_DETACH 2 /* <sys/mount.h> clashes with <linux/mount.h> on glibc 2.36 */
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

struct DevNode {
  std::string path; /* e.g. /dev/null, the same inside as on the host */
  uint32_t major, minor, mode; /* mode: permission bits only */
};

/* A host device the caller asked for (--device, --gpu): made with mknod in /dev (devices.cc). */
struct DeviceNode {
  std::string target; /* absolute, under /dev */
  bool block;         /* S_IFBLK, else S_IFCHR */
  uint32_t major, minor, mode; /* mode: permission bits, from the access asked (0444, 0222, 0666) */
  std::string source;          /* the host's node: rootless binds it in (devices.cc) */
};

struct BindSpec {
  std::string source; /* host path, symlinks resolved */
  std::string target; /* absolute path inside the sandbox */
  bool read_only;
  std::string option; /* the option it came from, for errors ("binds[0]"); may be empty */
};

/* A mount point the rootfs lacks, made by capsule (make_mount_point): parents come first. */
struct MountPointSpec {
  std::string path; /* absolute inside the sandbox */
  bool dir;         /* a directory, else an empty file */
};

/* OCI runtime mode: one entry of config.json's mounts (src/native.ts NativeOciMount). */
struct OciMount {
  std::string destination, type, source;
  bool recursive = false;
  uint64_t attrs = 0, propagation = 0;
  std::vector<std::pair<std::string, std::pair<bool, std::string>>> data; /* key, (has value, value) */
};

struct OciDevice {
  std::string path;
  char type; /* 'c', 'b', 'p' ('u' is 'c') */
  uint32_t major, minor, file_mode, uid, gid;
};

/* OCI runtime mode (src/native.ts NativeOci, oci.cc). */
struct OciOptions {
  bool enabled = false;
  bool wait_for_start = false;
  int new_namespaces = 0;                  /* CLONE_NEW* to make */
  std::vector<std::pair<int, int>> joins;  /* (CLONE_NEW* type, fd) to enter */
  std::string uid_map, gid_map;            /* with a new user namespace */
  bool root_readonly = false;
  uint64_t root_propagation = 0;
  std::vector<OciMount> mounts;
  std::vector<std::string> masked_paths, readonly_paths;
  std::vector<std::pair<std::string, std::string>> sysctl;
  std::vector<OciDevice> devices;
  std::vector<uint32_t> groups;
  int umask = -1;
  uint64_t caps[5] = {0, 0, 0, 0, 0}; /* bounding, effective, permitted, inheritable, ambient */
  bool no_new_privs = false;
  bool set_hostname = false;
  /* No mount namespace in config.json: the container's mounts are made in the caller's, under its
   * own private bind of the rootfs, and its root is a chroot (oci.cc, child_chroot_root). */
  bool host_mounts = false;
  /* exec into such a container: its root (/proc/PID/root, opened by the caller), chrooted into
   * after setns; -1 otherwise. */
  int join_root_fd = -1;
  /*
   * The hook point before pivot_root (oci.cc oci_hooks): the child's ends of two pipes (it
   * writes its pid on one and reads the go, with the state, on the other) and the caller's
   * ends, which the child closes first; -1: no hook point. createContainer hooks run there.
   */
  int hook_read_fd = -1, hook_write_fd = -1;
  std::vector<int> hook_close_fds;
  struct Hook {
    std::string path;
    std::vector<std::string> argv, env;
    unsigned timeout = 0; /* seconds; 0: none */
  };
  std::vector<Hook> create_container_hooks;
};

/* Validated and filled with defaults by src/options.ts; the addon only copies it. */
struct SandboxOptions {
  std::string rootfs; /* absolute, no trailing slash, symlinks resolved */
  std::vector<std::string> argv;
  std::vector<std::string> env; /* "KEY=value" */
  std::string cwd;
  std::string hostname;
  uint32_t uid = 65534, gid = 65534;
  /* The host ids uid and gid map to in a user namespace of the sandbox's own (userns.cc); 0: none, run as uid/gid on the host. */
  uint32_t host_uid = 0, host_gid = 0;
  /*
   * With host_uid: a user namespace already made for it (userns_pool.h), which make_userns
   * then skips. Owned by the spawn (Spawn duplicates the caller's), closed after the clone.
   */
  int userns_fd = -1;
  bool writable_root = false;
  uint64_t tmp_size_bytes = 64ull << 20;
  bool dev_pts = false, dev_shm = false;
  bool sys = false;        /* a read-only sysfs at /sys */
  bool tmp_noexec = false; /* /tmp mounted noexec */
  uint64_t dev_shm_size_bytes = 64ull << 20;
  std::vector<DevNode> dev_nodes; /* created with mknod in the sandbox's /dev */
  std::vector<DeviceNode> devices; /* created with mknod after dev_nodes, see devices.cc */
  std::vector<BindSpec> binds;
  /* The root as an overlay with a writable tmpfs upper layer (overlay: true), and that layer's size cap. */
  bool overlay = false;
  uint64_t overlay_size_bytes = 64ull << 20;
  /* A tmpfs work directory owned by the sandbox's uid and gid at this path ("": none). */
  std::string box;
  uint64_t box_size_bytes = 64ull << 20;
  /* Mount points to make; any outside the box puts the root in an overlay (mount_overlay). */
  std::vector<MountPointSpec> mount_points;
  std::vector<int> cgroup_fds;
  int cgroup_dir_fd = -1; /* cgroup v2 directory: clone3 with CLONE_INTO_CGROUP (spawn.cc) */
  std::vector<rlimit_op> rlimits;
  int stdio[3] = {-1, -1, -1}; /* parent fds to become the child's 0, 1, 2 */
  int seccomp_fd = -1;
  bool trace = false; /* record each child step's time, for --explain */
  /* A terminal of the program's own (tty.cc): stdio is its pty slave instead; needs dev_pts. */
  bool tty = false;
  uint16_t tty_rows = 0, tty_cols = 0;
  /* A session's command: the box's PID 1 to join (a pidfd we own), and whether to join its user namespace too. */
  int join_pidfd = -1;
  bool join_userns = false;
  bool unref = false; /* the watcher does not keep the event loop alive (a session's box) */
  /*
   * Made ahead of time (src/ahead.ts): capsule-init waits for its run ("capsule-prepared",
   * init.c), its stdio the sandbox's end of a socketpair; `stdio` and `argv` are not used.
   */
  bool prepared = false;
  bool rootless = false; /* no CAP_SYS_ADMIN: CLONE_NEWUSER with the others (rootless.cc) */
  OciOptions oci;        /* OCI runtime mode (oci.cc) */
  /*
   * Rootless with a subordinate id range (/etc/subuid, /etc/subgid): the
   * setuid helpers that write the maps ("": the child maps one id each), and
   * the maps as (inside, outside, count) triples, passed to them as they are.
   */
  std::string newuidmap, newgidmap;
  std::vector<uint32_t> uid_ranges, gid_ranges;
};

struct IdMapHelper; /* rootless.cc */

/* Owns the child's data until the child has exec'd. */
struct Plan {
  std::deque<std::string> strings; /* deque: growth never moves the strings we point into */
  std::deque<std::vector<const char *>> lists; /* fsconfig key/value lists, same reason */
  std::vector<mount_op> mount_ops;
  std::vector<char *> argv, envp;
  struct child_config cfg;
  struct capsule_trace trace; /* written by the child when opts.trace */
  int mount_fds[MOUNT_FD_COUNT]; /* written by the child (CLONE_VM): its own descriptors, not ours */
  std::vector<int> source_fds;   /* detached trees from open_mount_sources: ours, closed after clone */
  uint64_t rootfs_ino = 0;       /* the rootfs as open_mount_sources saw it (statx(2)) */
  uint32_t rootfs_dev_major = 0, rootfs_dev_minor = 0;
  std::string uid_map, gid_map; /* rootless: the child's own maps (rootless.cc) */
  /* OCI runtime mode (oci.cc): what child_config.oci points at, and the storage behind it. */
  struct oci_child oci;
  std::vector<int> oci_join_fds, oci_join_types;
  std::vector<uint64_t> oci_filter; /* struct sock_filter[], 8 bytes each */
  std::vector<struct oci_hook> oci_hooks;   /* hooks.createContainer, pointing into strings and lists */
  std::vector<char> oci_hook_state;         /* the state JSON the caller sends at the hook point */
  std::vector<char> oci_hook_stack;         /* the stack a hook's clone(CLONE_VM|CLONE_VFORK) runs on */
  std::shared_ptr<IdMapHelper> id_mapper; /* rootless with a range: the thread that runs newuidmap (rootless.cc) */

  Plan() = default;
  Plan(const Plan &) = delete;
  Plan &operator=(const Plan &) = delete;
  ~Plan() { close_sources(); }

  const char *keep(std::string s) {
    strings.push_back(std::move(s));
    return strings.back().c_str();
  }
  void close_sources();
};

/* The mount phase as operations, from the options alone: no system call is made (capsule explain uses it). */
/*
 * A new operation of `kind` for `step`, resolved from the descriptor in slot
 * `base` (enum mount_fd_slot); it saves no descriptor and has no source tree
 * yet. Every planner starts from this, so a field added to mount_op gets one
 * default in one place.
 */
inline mount_op new_mount_op(mount_op_kind kind, capsule_step step, int base) {
  mount_op o{};
  o.kind = kind;
  o.step = step;
  o.base = base;
  o.save = -1;
  o.source_fd = -1;
  return o;
}

void plan_mounts(const SandboxOptions &opts, Plan &plan);
/* OCI runtime mode: config.json's mounts as operations, and the child's oci_child (oci.cc). */
void plan_oci(const SandboxOptions &opts, Plan &plan);
/*
 * Before clone: open each bind's source once and clone it into a detached
 * tree with its flags set (open_tree(2), mount_setattr(2)), and note the
 * rootfs's identity. Returns false with step, errno and detail set.
 */
bool open_mount_sources(const SandboxOptions &opts, Plan &plan, capsule_step &step, int &err,
                        std::string &detail);
void plan_devices(const SandboxOptions &opts, Plan &plan); /* devices.cc */

/* One rule of a cgroup v2 device program (devices.cc): major or minor -1 for any. */
struct DeviceRule {
  bool block;
  int32_t major, minor;
  bool read, write, mknod;
};
/*
 * Attach a BPF device program allowing exactly `rules` to the cgroup v2
 * directory `cgroup_fd`, replacing any; with rules == nullptr, detach it.
 * Returns 0, or -1 with errno and `error` set.
 */
int set_device_program(int cgroup_fd, const std::vector<DeviceRule> *rules, std::string &error);

#endif
