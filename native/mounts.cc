/*
 * The sandbox's filesystem: parent half (plan_mounts, which turns options into
 * an ordered list of operations with every path joined) and child half
 * (child_mounts and child_pivot_root, which carry them out).
 *
 * All mounts are made before pivot_root, at host paths under the rootfs, in
 * the child's private mount namespace. The parent checked in TypeScript that
 * each mount point exists in the rootfs and is not a symlink, since mount(2)
 * follows symlinks in its target.
 */
#include "mounts.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <linux/mount.h>

#include "sys.h"

/* ------------------------------ parent half ------------------------------ */

namespace {

class Planner {
 public:
  Planner(const SandboxOptions &o, Plan &p) : opts_(o), plan_(p) {}

  const char *at(const std::string &inside) { return plan_.keep(opts_.rootfs + inside); }

  void mount(capsule_step step, const char *source, const char *target, const char *fstype,
             unsigned long flags, const char *data) {
    plan_.mount_ops.push_back({OP_MOUNT, step, source, target, fstype, data, flags, 0, 0});
  }
  void setattr(capsule_step step, const char *target, uint64_t attrs, bool recursive) {
    plan_.mount_ops.push_back(
        {OP_SETATTR, step, nullptr, target, nullptr, nullptr, 0, attrs, recursive ? 1 : 0});
  }
  void make(mount_op_kind kind, capsule_step step, const char *source, const char *target) {
    plan_.mount_ops.push_back({kind, step, source, target, nullptr, nullptr, 0, 0, 0});
  }

  void run() {
    const char *root = plan_.keep(opts_.rootfs);

    /*
     * make_mounts_private: a new mount namespace starts as a copy that still
     * shares propagation with the host; without this, the mounts below would
     * appear on the host (mount_namespaces(7), "shared subtrees").
     */
    mount(STEP_make_mounts_private, nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr);

    /* bind_rootfs: pivot_root(2) needs the new root to be a mount point. */
    mount(STEP_bind_rootfs, root, root, nullptr, MS_BIND | MS_REC, nullptr);

    /*
     * remount_root: read-only (unless asked), nosuid, nodev, for the rootfs
     * and any mount nested in it (AT_RECURSIVE). Done now, before the mounts
     * below: those are separate mounts with their own flags, and a read-only
     * directory can still be mounted over.
     */
    uint64_t root_attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    if (!opts_.writable_root) root_attrs |= MOUNT_ATTR_RDONLY;
    setattr(STEP_remount_root, root, root_attrs, true);

    /* mount_proc: a procfs shows the PID namespace of the process that mounts it (proc(5)). */
    mount(STEP_mount_proc, "proc", at("/proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
    mask_proc();
    if (opts_.sys) mount_sys();

    /*
     * mount_dev: a small tmpfs with only the nodes we bind into it. The host's
     * /dev would hand the sandbox every disk and console. Not nodev: the
     * bound nodes must work. Not writable after setup (remount_dev).
     */
    const char *dev = at("/dev");
    mount(STEP_mount_dev, "tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=65536");
    /*
     * make_dev_node: mknod(2), not a bind mount of the host's node. We are
     * root in the initial user namespace (CAP_MKNOD), and a node costs a
     * fraction of a mount to make and nothing to tear down (crun does the
     * same outside a user namespace). umask 0 so the modes are the host's.
     */
    plan_.mount_ops.push_back({OP_UMASK, STEP_make_dev_node, nullptr, nullptr, nullptr, nullptr, 0, 0, 0});
    for (const DevNode &node : opts_.dev_nodes) {
      /* The kernel's dev_t encoding (new_encode_dev in include/linux/kdev_t.h). */
      uint64_t dev = (node.minor & 0xff) | (node.major << 8) | (static_cast<uint64_t>(node.minor & ~0xffu) << 12);
      plan_.mount_ops.push_back(
          {OP_MKNOD, STEP_make_dev_node, nullptr, at(node.path), nullptr, nullptr, S_IFCHR | node.mode, dev, 0});
    }
    plan_devices(opts_, plan_); /* make_device_node: --device and --gpu (devices.cc) */
    plan_.mount_ops.push_back({OP_UMASK, STEP_make_dev_node, nullptr, nullptr, nullptr, nullptr, 022, 0, 0});
    static const char *const links[][2] = {{"/proc/self/fd", "/dev/fd"},
                                           {"/proc/self/fd/0", "/dev/stdin"},
                                           {"/proc/self/fd/1", "/dev/stdout"},
                                           {"/proc/self/fd/2", "/dev/stderr"}};
    for (const auto &link : links) make(OP_SYMLINK, STEP_link_dev, link[0], at(link[1]));
    if (opts_.dev_pts) {
      /* newinstance: a devpts of our own, so the host's terminals stay out of reach (pts(4)). */
      make(OP_MKDIR, STEP_mount_dev_pts, nullptr, at("/dev/pts"));
      mount(STEP_mount_dev_pts, "devpts", at("/dev/pts"), "devpts", MS_NOSUID | MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620");
      make(OP_SYMLINK, STEP_mount_dev_pts, "pts/ptmx", at("/dev/ptmx"));
    }
    if (opts_.dev_shm) {
      make(OP_MKDIR, STEP_mount_dev_shm, nullptr, at("/dev/shm"));
      mount(STEP_mount_dev_shm, "tmpfs", at("/dev/shm"), "tmpfs", MS_NOSUID | MS_NODEV,
            plan_.keep("mode=1777,size=" + std::to_string(opts_.dev_shm_size_bytes)));
    }
    setattr(STEP_remount_dev, dev, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, false);

    /*
     * mount_tmp: the only writable place by default. The size cap keeps a
     * program from filling memory through it; its pages are charged to the
     * sandbox's memory cgroup as well (tmpfs(5)).
     */
    mount(STEP_mount_tmp, "tmpfs", at("/tmp"), "tmpfs", MS_NOSUID | MS_NODEV | (opts_.tmp_noexec ? MS_NOEXEC : 0),
          plan_.keep("mode=1777,size=" + std::to_string(opts_.tmp_size_bytes)));

    /*
     * bind_mount + remount_bind: a bind mount starts with the flags of the
     * mount it came from; only a second step changes them. mount_setattr(2)
     * with AT_RECURSIVE covers mounts nested inside the bound path too,
     * which a plain MS_REMOUNT would miss.
     */
    for (const BindSpec &b : opts_.binds) {
      const char *target = at(b.target);
      mount(STEP_bind_mount, plan_.keep(b.source), target, nullptr, MS_BIND | MS_REC, nullptr);
      uint64_t attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
      if (b.read_only) attrs |= MOUNT_ATTR_RDONLY;
      setattr(STEP_remount_bind, target, attrs, true);
    }
  }

 private:
  /*
   * mask_proc_path and remount_proc_path: a PID namespace filters /proc's
   * process directories, but much of the rest is the host's, whatever
   * namespace reads it: kernel memory (kcore), every key on the system
   * (keys), host timers with their PIDs (timer_list), interrupt counts that
   * time other tenants (interrupts), and knobs that act on the host: a uid-0
   * sandbox holds no capability, yet owns /proc/sys/kernel/core_pattern
   * (which runs a program as host root on the next crash) and
   * /proc/sysrq-trigger by plain permission bits. runc's maskedPaths and
   * readonlyPaths, which this follows: files get /dev/null bound over them,
   * directories an empty read-only tmpfs; the knobs a read-only bind of
   * themselves. Entries this kernel lacks are skipped (checked in the host's
   * /proc once: the same kernel builds the sandbox's). Not /proc/driver: CUDA
   * (libcuda, NVML) reads /proc/driver/nvidia under --gpu (docs/devices.md).
   */
  void mask_proc() {
    static const char *const masked[] = {"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore",
                                         "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                                         "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi"};
    static const char *const read_only[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                            "/proc/sysrq-trigger"};
    for (const char *path : masked) {
      struct stat st;
      if (stat(path, &st) != 0) continue;
      if (S_ISDIR(st.st_mode))
        mount(STEP_mask_proc_path, "tmpfs", at(path), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "mode=0555,size=4096");
      else
        mount(STEP_mask_proc_path, "/dev/null", at(path), nullptr, MS_BIND, nullptr);
    }
    for (const char *path : read_only) {
      struct stat st;
      if (stat(path, &st) != 0) continue;
      const char *target = at(path);
      mount(STEP_remount_proc_path, target, target, nullptr, MS_BIND | MS_REC, nullptr);
      setattr(STEP_remount_proc_path, target,
              MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, true);
    }
  }

  /*
   * mount_sys: sysfs only when asked, and read-only: it is the host's device
   * tree (a new network namespace filters only /sys/class/net), and writable
   * it would reach drivers. /sys/firmware (ACPI tables, EFI variables) and
   * /sys/devices/virtual/powercap (RAPL energy counters, the side channel of
   * CVE-2020-8694, "Platypus") get an empty read-only tmpfs, as runc does.
   */
  void mount_sys() {
    mount(STEP_mount_sys, "sysfs", at("/sys"), "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
          nullptr);
    static const char *const masked[] = {"/sys/firmware", "/sys/devices/virtual/powercap"};
    for (const char *path : masked) {
      struct stat st;
      if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
      mount(STEP_mount_sys, "tmpfs", at(path), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
            "mode=0555,size=4096");
    }
  }

  const SandboxOptions &opts_;
  Plan &plan_;
};

}  // namespace

void plan_mounts(const SandboxOptions &opts, Plan &plan) { Planner(opts, plan).run(); }

/* ------------------------------ child half ------------------------------- */

void child_mounts(const struct child_config *cfg) {
  for (unsigned i = 0; i < cfg->n_mount_ops; i++) {
    const struct mount_op *op = &cfg->mount_ops[i];
    long r = 0;
    switch (op->kind) {
      case OP_MOUNT:
        r = SYS5(__NR_mount, op->source, op->target, op->fstype, op->flags, op->data);
        break;
      case OP_MKFILE:
        r = SYS4(__NR_openat, AT_FDCWD, op->target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (!sys_failed(r)) r = SYS1(__NR_close, r);
        break;
      case OP_MKDIR:
        r = SYS3(__NR_mkdirat, AT_FDCWD, op->target, 0755);
        break;
      case OP_SYMLINK:
        r = SYS3(__NR_symlinkat, op->source, AT_FDCWD, op->target);
        break;
      case OP_MKNOD:
        r = SYS4(__NR_mknodat, AT_FDCWD, op->target, op->flags, op->attr_set);
        break;
      case OP_UMASK:
        r = SYS1(__NR_umask, op->flags);
        if (r >= 0) r = 0; /* umask returns the old mask */
        break;
      case OP_SETATTR: {
        struct mount_attr attr = {op->attr_set, 0, 0, 0};
        r = SYS5(__NR_mount_setattr, AT_FDCWD, op->target, op->recursive ? AT_RECURSIVE : 0, &attr,
                 sizeof attr);
        break;
      }
    }
    if (sys_failed(r)) child_fail(cfg, op->step, r, op->target);
    child_trace(cfg, op->step, static_cast<int>(i));
  }
}

/*
 * pivot_root: swap the rootfs in as / and unmount the old root.
 *
 * chroot(2) only changes how one process resolves "/"; a process with
 * CAP_SYS_CHROOT can chroot again into a subdirectory and walk ".." out of
 * the old root, and the host's mounts stay in the namespace. pivot_root(2)
 * moves the root mount itself; after the old root is detached, no path leads
 * back to the host. The pivot_root(".", ".") form, from the man page's NOTES,
 * stacks the old root on the new one so it can be unmounted without a
 * put_old directory in the rootfs.
 */
void child_pivot_root(const struct child_config *cfg) {
  long r = SYS1(__NR_chdir, cfg->rootfs);
  if (sys_failed(r)) child_fail(cfg, STEP_pivot_root, r, cfg->rootfs);
  r = SYS2(__NR_pivot_root, ".", ".");
  if (sys_failed(r)) child_fail(cfg, STEP_pivot_root, r, cfg->rootfs);
  child_trace(cfg, STEP_pivot_root, -1);
  /* detach_old_root: MNT_DETACH, since our own cwd still pins it (umount(2)). */
  r = SYS2(__NR_umount2, ".", MNT_DETACH);
  if (sys_failed(r)) child_fail(cfg, STEP_detach_old_root, r, "/");
  child_trace(cfg, STEP_detach_old_root, -1);
  /* change_dir: the program's working directory, now resolved inside the sandbox. */
  r = SYS1(__NR_chdir, cfg->cwd);
  if (sys_failed(r)) child_fail(cfg, STEP_change_dir, r, cfg->cwd);
  child_trace(cfg, STEP_change_dir, -1);
}
