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

/* One filesystem operation of the mount phase, executed in order. */
enum mount_op_kind {
  OP_MOUNT,   /* mount(source, target, fstype, flags, data) */
  OP_MKFILE,  /* create an empty file to bind a file onto */
  OP_MKDIR,   /* create a directory (inside a tmpfs we just made) */
  OP_SYMLINK, /* symlink(source, target) */
  OP_SETATTR, /* mount_setattr(target, recursive?, attr_set) */
  OP_MKNOD,   /* mknodat(target, flags as the mode, attr_set as the kernel's dev_t) */
  OP_UMASK,   /* umask(flags) */
};

struct mount_op {
  enum mount_op_kind kind;
  enum capsule_step step;
  const char *source;
  const char *target; /* a host path under the rootfs: all mounts happen before pivot_root */
  const char *fstype;
  const char *data;
  unsigned long flags;   /* MS_* for OP_MOUNT */
  uint64_t attr_set;     /* MOUNT_ATTR_* for OP_SETATTR */
  int recursive;         /* AT_RECURSIVE for OP_SETATTR */
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

  /* exec: capsule-init's argv is {"capsule-init", program, args..., NULL} */
  char *const *argv;
  char *const *envp;
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
void child_set_netns(const struct child_config *cfg);
void child_join_cgroups(const struct child_config *cfg);
void child_mounts(const struct child_config *cfg);
void child_pivot_root(const struct child_config *cfg);
void child_hostname(const struct child_config *cfg);
void child_rlimits(const struct child_config *cfg);
void child_set_userns(const struct child_config *cfg);
void child_fds(const struct child_config *cfg);
void child_identity(const struct child_config *cfg);
void child_exec_init(const struct child_config *cfg) __attribute__((noreturn));

#endif
