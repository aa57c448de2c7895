/*
 * Everything the child needs, prepared by the parent before clone(2).
 *
 * The child runs on the parent's memory (CLONE_VM) and may not allocate, so
 * every path is joined, every argv/envp array terminated and every number
 * parsed here, in plain structs that point into storage the parent keeps alive
 * until the child has exec'd (CLONE_VFORK guarantees that moment).
 */
#ifndef CAPSULE_CONFIG_H
#define CAPSULE_CONFIG_H

#include <stdint.h>

#include "steps.h"

/*
 * One filesystem operation of the mount phase, executed in order.
 *
 * Every mount point is reached by descriptor: the child resolves `at` once
 * with openat2(2) from the descriptor in slot `base` (the rootfs, the new
 * /proc, /dev or /sys), with RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS, and
 * mounts on what it got with move_mount(2). A name inside the rootfs that is
 * swapped for a symlink or another directory between two lookups (the
 * CVE-2021-30465 class) cannot redirect a mount: there is only one lookup.
 */
enum mount_op_kind {
  OP_MOUNT,   /* mount(source, target, fstype, flags, data) by path: only make_mounts_private ("/") */
  OP_MKFILE,  /* create an empty file to bind a file onto */
  OP_MKDIR,   /* mkdirat(fds[base], at) (inside a tmpfs we just made) */
  OP_SYMLINK, /* symlinkat(source, fds[base], at) */
  OP_SETATTR, /* mount_setattr on the mount at (base, at), recursive?, attr_set */
  OP_MKNOD,   /* mknodat(fds[base], at, flags as the mode, attr_set as the kernel's dev_t) */
  OP_UMASK,   /* umask(flags) */
  OP_BIND,    /* a detached copy of a tree (open_tree(2)), its flags set, moved onto (base, at) */
  OP_FSMOUNT, /* a new filesystem: fsopen(fstype), fsconfig(config), fsmount(attr_set), moved onto (base, at) */
  OP_OVERLAY, /* the root as an overlay: the rootfs's bind under a tmpfs (config) upper layer, stacked on it */
  OP_MKPOINT, /* a missing mount point: in the directory `source` (resolved from base), make `data` (mounts.cc) */
  /* OCI runtime mode (oci.cc): */
  OP_MKPATH,  /* make every missing component of `at` inside the root (a directory, the last a file unless MKPOINT_DIR) */
  OP_MASK,    /* an empty read-only tmpfs over the directory at `at`, the host's /dev/null over a file; absent: skipped */
  OP_SYSCTL,  /* write `source` to the file at `at` (proc/sys/...), resolved with no symlink */
  OP_MKNODAT, /* mknod `data` in the directory `source` (both resolved inside the root), owned by uid:gid */
};

/* The descriptor slots mount operations resolve in (child_config.mount_fds). */
enum mount_fd_slot {
  MOUNT_FD_HOST = -1, /* `at` is an absolute host path (the rootfs itself) */
  MOUNT_FD_ROOT = 0,  /* the rootfs, once bind_rootfs has made it a mount */
  MOUNT_FD_PROC,
  MOUNT_FD_DEV,
  MOUNT_FD_SYS,
  MOUNT_FD_PTS, /* the private devpts, for open_pty (tty.cc) */
  MOUNT_FD_COUNT
};

/* OP_BIND's flags. */
#define BIND_FROM_PARENT 1u /* source_fd: a tree the parent cloned before clone (open_mount_sources) */
#define BIND_CHECK_ROOTFS 2u /* the target must be the inode the parent saw as the rootfs */
#define BIND_SOURCE_DIR 4u  /* the source is a directory (the target must be one too) */
#define BIND_IN_CHILD 8u    /* rootless: the child opens `source` (openat2, no symlinks) and clones it */

/* OP_MKPOINT's flags. */
#define MKPOINT_DIR 1u /* a directory (else an empty file, to bind a file onto) */

struct mount_op {
  enum mount_op_kind kind;
  enum capsule_step step;
  /*
   * OP_BIND: a host path to clone (from the parent, or "/dev/null" in the
   * child), NULL to clone the target itself. OP_SYMLINK: the link's text.
   * OP_MOUNT: mount's source.
   */
  const char *source;
  const char *target;  /* the path inside the sandbox (for the rootfs, its host path): errors, --explain */
  const char *fstype;  /* OP_FSMOUNT, OP_MOUNT */
  const char *data;    /* OP_FSMOUNT: the options as one string, for --explain */
  unsigned long flags; /* MS_* for OP_MOUNT; the mode for OP_MKNOD; BIND_* for OP_BIND */
  uint64_t attr_set;   /* MOUNT_ATTR_* for OP_SETATTR, OP_BIND, OP_FSMOUNT; dev_t for OP_MKNOD */
  int recursive;       /* AT_RECURSIVE for OP_SETATTR, OP_BIND */
  int base;            /* enum mount_fd_slot: where `at` is resolved */
  const char *at;      /* relative to the slot's descriptor; "" is the slot itself */
  int save;            /* a slot to keep the new mount's descriptor in, or -1 */
  int source_fd;       /* OP_BIND with BIND_FROM_PARENT: the detached tree, -1 until prepared */
  const char *const *config; /* OP_FSMOUNT: key, value pairs for fsconfig(2), NULL-terminated; value NULL: a flag */
  const char *detail;  /* what an error names: the target and the option it came from */
  /*
   * OCI runtime mode (oci.cc): `follow` resolves `at` with symlinks followed
   * inside the root (RESOLVE_IN_ROOT alone, as runc's securejoin does: a link
   * can point anywhere, but "/" and ".." stay the rootfs); capsule's own
   * layout refuses every symlink. `skip_missing`: an absent target skips the
   * operation (maskedPaths, readonlyPaths). `propagation`: MS_SHARED,
   * MS_SLAVE, MS_PRIVATE or MS_UNBINDABLE set on the new mount once it is
   * attached (a detached mount takes none), recursively with MS_REC.
   * uid, gid: OP_MKNODAT's owner.
   */
  int follow;
  int skip_missing;
  uint64_t propagation;
  uint32_t uid, gid;
};

/*
 * --explain's record of the child's steps: the child appends (step, op,
 * CLOCK_MONOTONIC time at the end of the step) into this buffer, which lives
 * in the parent's memory (CLONE_VM makes that possible without a pipe). It is
 * NULL unless a trace was asked for: a run that does not ask pays one branch
 * per step.
 */
#define CAPSULE_TRACE_MAX 192
struct capsule_trace_event {
  uint32_t step;
  int32_t op; /* index into mount_ops, or -1 */
  uint64_t ns;
};
struct capsule_trace {
  uint32_t count;
  uint32_t pad;
  struct capsule_trace_event ev[CAPSULE_TRACE_MAX];
};

struct rlimit_op {
  int resource; /* RLIMIT_* */
  uint64_t soft, hard;
};

struct child_config {
  /* namespaces and mounts */
  const char *rootfs; /* absolute, resolved */
  const struct mount_op *mount_ops;
  unsigned n_mount_ops;
  int *mount_fds; /* MOUNT_FD_COUNT slots, in the parent's memory: the child's descriptors of the mount phase */
  uint64_t rootfs_ino; /* the rootfs as the parent saw it (statx(2)), checked at bind_rootfs */
  uint32_t rootfs_dev_major, rootfs_dev_minor;
  const char *hostname;
  const char *cwd;

  /* limits and accounting */
  const int *cgroup_fds; /* open cgroup.procs files: writing "0" moves the writer */
  unsigned n_cgroup_fds;
  const struct rlimit_op *rlimits;
  unsigned n_rlimits;

  /*
   * descriptors: the source fd in the parent for each fixed slot (steps.h),
   * -1 for none. CAPSULE_FD_PARENT's source is capsule's own pidfd, readable
   * once capsule has exited: it closes the pdeathsig race.
   */
  int fd_sources[CAPSULE_FD_FIRST_FREE];

  /* identity */
  uint32_t uid, gid;
  int last_cap; /* /proc/sys/kernel/cap_last_cap, read before clone */

  struct capsule_trace *trace; /* NULL unless --explain */
  int netns_fd; /* a fresh network namespace to join (netns_pool.cc), or -1: clone made one */
  int userns_fd; /* the sandbox's user namespace to join (userns.cc), or -1: stay host uid/gid */
  /*
   * A session's command (src/session.ts): the pidfd of the box's PID 1, whose
   * namespaces the child joins instead of making its own and mounting
   * anything (child_join_box); -1 for a sandbox of its own.
   */
  int join_pidfd;
  /*
   * Rootless (the box's user namespace is owned by the caller, not made by
   * root for leased ids): join_box enters the box's user namespace in the
   * same setns(2) as the others, which the kernel takes first, since only
   * there does the child hold any capability over them. 0 otherwise.
   */
  int join_userns_first;

  /*
   * A terminal of the program's own (tty.cc): the child's end of a socketpair
   * made before clone, to hand the pty's master back on; -1 for none. The
   * slave is owned by tty_uid/tty_gid (host ids) and starts at rows x cols
   * (0: the kernel's 0 x 0).
   */
  int tty_socket;
  uint32_t tty_uid, tty_gid;
  uint16_t tty_rows, tty_cols;

  /* exec: capsule-init's argv is {"capsule-init", program, args..., NULL} */
  char *const *argv;
  char *const *envp;

  /* rootless (rootless.cc): clone made a user namespace too; the child writes these maps into it. */
  int rootless;
  const char *uid_map, *gid_map;
  /*
   * Rootless with a subordinate id range: the child's end of the id-map
   * helper's socket, -1 when the child writes uid_map and gid_map itself.
   * Read only when `rootless` is set.
   */
  int map_socket;

  /* OCI runtime mode (oci.cc): NULL for capsule's own sandbox. */
  const struct oci_child *oci;
};

/* One of hooks.createContainer, as the child runs it (oci.cc). */
struct oci_hook {
  const char *path;
  char *const *argv;
  char *const *envp;
  unsigned timeout; /* seconds; 0: none */
  const char *detail; /* "hooks.createContainer[N] PATH", for errors */
};

/*
 * What an OCI container's child does beyond the mount operations: config.json's
 * namespaces, identity and filter, prepared before clone (oci.cc).
 */
struct oci_child {
  const int *join_fds;   /* namespaces to enter with setns(2), before anything else */
  const int *join_types; /* their CLONE_NEW* types */
  unsigned n_join;
  int new_netns;    /* clone made a network namespace (or the pool gave one): bring lo up */
  int new_cgroupns; /* unshare CLONE_NEWCGROUP after join_cgroup */
  int set_hostname; /* sethostname(cfg->hostname): only with a UTS namespace of its own */
  int no_new_privs;
  int umask;        /* process.user.umask */
  unsigned long root_propagation; /* MS_SHARED or MS_UNBINDABLE (| MS_REC) for / after pivot_root; 0: none */
  int host_mounts;  /* no mount namespace: chroot_root instead of pivot_root (oci.cc) */
  /* The hook point before pivot_root (oci.cc oci_hooks); hook_read_fd -1: none. */
  int hook_read_fd, hook_write_fd;
  const int *hook_close_fds;
  unsigned n_hook_close_fds;
  const struct oci_hook *hooks; /* hooks.createContainer, run at the hook point */
  unsigned n_hooks;
  char *hook_state;             /* where the state JSON is read to (hook_state_cap bytes) */
  unsigned hook_state_cap;
  char *hook_stack;             /* a hook's clone runs on this stack (hook_stack_size bytes) */
  unsigned long hook_stack_size;
  int join_root_fd; /* exec into a container without a mount namespace: its root, for chroot_root; -1: none */
  /* Capability sets, one bit per capability (bit N: capability N). */
  uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable, cap_ambient;
  const uint32_t *groups; /* process.user.additionalGids */
  unsigned n_groups;
  /* linux.seccomp, compiled (struct sock_filter[]); filter_len 0: none. */
  const void *filter;
  unsigned short filter_len;
};

/* Note the end of a step (or of mount op `op`) for --explain. */
void child_trace(const struct child_config *cfg, enum capsule_step step, int op);

/*
 * How the child reports a failed step: it fills this and writes it to the
 * error pipe, then exits. Defined in child.cc.
 */
void child_fail(const struct child_config *cfg, enum capsule_step step, long neg_errno,
                const char *detail) __attribute__((noreturn));

/* Child halves, one per concern. Each runs its steps in order and returns only on success. */
void child_signals_and_parent(const struct child_config *cfg);
/* parent_pidfd: where capsule's pidfd is now (its parent number, or CAPSULE_FD_PARENT after arrange_fds). */
void child_arm_pdeathsig(const struct child_config *cfg, int parent_pidfd);
void child_map_user_ids(const struct child_config *cfg);
void child_set_netns(const struct child_config *cfg);
void child_join_box(const struct child_config *cfg) __attribute__((noreturn));
void child_join_cgroups(const struct child_config *cfg);
void child_unshare_cgroupns(const struct child_config *cfg);
void child_mounts(const struct child_config *cfg);
void child_pivot_root(const struct child_config *cfg);
/* close the mount phase's descriptors, then change_dir (mounts.cc): after pivot_root or chroot_root. */
void child_enter_cwd(const struct child_config *cfg);
void child_hostname(const struct child_config *cfg);
void child_rlimits(const struct child_config *cfg);
void child_set_userns(const struct child_config *cfg);
/* tty_fd: the pty slave from child_open_pty, placed at 0, 1 and 2 instead of fd_sources; -1 for none. */
void child_fds(const struct child_config *cfg, int tty_fd);
/* open_pty and send_pty_master: returns the slave, or -1 when no terminal was asked. (tty.cc) */
int child_open_pty(const struct child_config *cfg);
void child_identity(const struct child_config *cfg);
void child_exec_init(const struct child_config *cfg) __attribute__((noreturn));
/* Signals back to SIG_DFL (signals.cc): the part of child_signals_and_parent an OCI container also takes. */
void child_reset_signals(const struct child_config *cfg);
/* An OCI container's child, and `exec` into one (oci.cc). */
void child_oci(const struct child_config *cfg) __attribute__((noreturn));
void child_oci_join(const struct child_config *cfg) __attribute__((noreturn));

#endif
