/*
 * The sandbox's filesystem: parent half (plan_mounts, which turns options into
 * an ordered list of operations; open_mount_sources, which opens each bind's
 * source once before clone) and child half (child_mounts and
 * child_pivot_root, which carry them out).
 *
 * All mounts are made before pivot_root, in the child's private mount
 * namespace, and all of them by descriptor, as crun does (libcrun/linux.c):
 * a mount point is looked up once, inside the rootfs, with openat2(2) and
 * RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS, and the new mount is attached to
 * that descriptor with move_mount(2). A filesystem is made with fsopen(2) and
 * fsmount(2), a bind is a detached copy from open_tree(2) whose flags are set
 * with mount_setattr(2) before it is attached anywhere. Looking a path up
 * twice (the TypeScript check, mount(2), then mount_setattr(2)) let a
 * renameat2(RENAME_EXCHANGE) loop inside the rootfs put the bind in one place
 * and its read-only flag in another (CVE-2021-30465, runc's version of this
 * race); a symlink anywhere on the way, not only at the end, is refused.
 */
#include "mounts.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/mount.h>
#include <linux/openat2.h>

#include <cerrno>
#include <cstdlib>

#include "sys.h"

#ifndef MS_PRIVATE
#define MS_PRIVATE (1 << 18) /* <sys/mount.h> clashes with <linux/mount.h> on glibc 2.36 */
#endif

/* ------------------------------ parent half ------------------------------ */

namespace {

/*
 * The inode cap of a tmpfs: one inode per 4 KiB page of its size cap, at
 * least 1024. A file with any content takes at least one page of the size
 * cap, so this takes nothing from a program that writes files; it stops one
 * that makes empty files (or directories, or short symlinks), which cost the
 * size cap nothing and cost the host about 1 KiB of unaccounted kernel memory
 * each (an inode and a dentry: 400,000 of them were 398 MiB). Bounded so, a
 * tmpfs's inodes cost at most about a quarter of its size cap (tmpfs(5),
 * nr_inodes).
 */
uint64_t tmpfs_inodes(uint64_t size_bytes) {
  uint64_t n = size_bytes / 4096;
  return n < 1024 ? 1024 : n;
}

class Planner {
 public:
  Planner(const SandboxOptions &o, Plan &p) : opts_(o), plan_(p) {}

  /* An operation on the path `inside` the sandbox, resolved from `base`, which is mounted at `base_path`. */
  mount_op op(mount_op_kind kind, capsule_step step, int base, const char *base_path, const std::string &inside) {
    mount_op o = new_mount_op(kind, step, base);
    o.target = plan_.keep(inside);
    std::string rel = inside.substr(std::string(base_path).size());
    if (!rel.empty() && rel[0] == '/') rel.erase(0, 1);
    o.at = plan_.keep(rel);
    o.detail = o.target;
    return o;
  }
  mount_op in_root(mount_op_kind kind, capsule_step step, const std::string &inside) {
    return op(kind, step, MOUNT_FD_ROOT, "", inside);
  }
  mount_op in_proc(mount_op_kind kind, capsule_step step, const std::string &inside) {
    return op(kind, step, MOUNT_FD_PROC, "/proc", inside);
  }
  mount_op in_dev(mount_op_kind kind, capsule_step step, const std::string &inside) {
    return op(kind, step, MOUNT_FD_DEV, "/dev", inside);
  }
  mount_op in_sys(mount_op_kind kind, capsule_step step, const std::string &inside) {
    return op(kind, step, MOUNT_FD_SYS, "/sys", inside);
  }
  void add(const mount_op &o) { plan_.mount_ops.push_back(o); }

  /* A new filesystem of `fstype` on `o`: options as fsconfig(2) pairs ({key, value} or {flag, NULL}). */
  void fsmount(mount_op o, const char *fstype, std::initializer_list<std::pair<std::string, std::string>> config,
               uint64_t attrs, int save = -1) {
    o.kind = OP_FSMOUNT;
    o.fstype = fstype;
    o.attr_set = attrs;
    o.save = save;
    /* "source": what mountinfo shows in the source column ("none" otherwise). */
    std::vector<const char *> list = {"source", fstype};
    std::string data;
    for (const auto &kv : config) {
      list.push_back(plan_.keep(kv.first));
      list.push_back(kv.second.empty() ? nullptr : plan_.keep(kv.second));
      data += (data.empty() ? "" : ",") + kv.first + (kv.second.empty() ? "" : "=" + kv.second);
    }
    list.push_back(nullptr);
    list.push_back(nullptr);
    plan_.lists.push_back(std::move(list));
    o.config = plan_.lists.back().data();
    o.data = plan_.keep(data);
    add(o);
  }

  void run() {
    /*
     * make_mounts_private: a new mount namespace starts as a copy that still
     * shares propagation with the host; without this, the mounts below would
     * appear on the host (mount_namespaces(7), "shared subtrees").
     */
    mount_op priv = op(OP_MOUNT, STEP_make_mounts_private, MOUNT_FD_HOST, "", "/");
    priv.flags = MS_REC | MS_PRIVATE;
    add(priv);

    /*
     * bind_rootfs: pivot_root(2) needs the new root to be a mount point. The
     * rootfs (the caller's path, symlinks resolved in TypeScript) is looked
     * up once with no symlink allowed, must be the inode the parent saw
     * before clone, and a recursive copy of it is attached on itself. Its
     * descriptor is the root every later mount point is resolved in.
     */
    mount_op root = op(OP_BIND, STEP_bind_rootfs, MOUNT_FD_HOST, "", opts_.rootfs);
    root.at = root.target;
    root.flags = BIND_CHECK_ROOTFS | BIND_SOURCE_DIR;
    root.recursive = 1;
    root.save = MOUNT_FD_ROOT;
    add(root);
    if (use_overlay()) {
      plan_overlay();
      for (const MountPointSpec &m : opts_.mount_points)
        if (!in_box(m.path)) mount_point(m);
    }

    /*
     * remount_root: read-only (unless asked), nosuid, nodev, for the rootfs
     * and any mount nested in it (AT_RECURSIVE). Done now, before the mounts
     * below: those are separate mounts with their own flags, and a read-only
     * directory can still be mounted over.
     */
    mount_op ro = in_root(OP_SETATTR, STEP_remount_root, "");
    ro.target = ro.detail = plan_.keep(opts_.rootfs);
    ro.attr_set =
        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (opts_.writable_root || opts_.overlay ? 0 : MOUNT_ATTR_RDONLY);
    ro.recursive = 1;
    add(ro);

    /*
     * mount_proc: a procfs shows the PID namespace of the process that
     * creates it (proc(5)): fsopen(2) in the child, already in its own.
     */
    fsmount(in_root(OP_FSMOUNT, STEP_mount_proc, "/proc"), "proc", {},
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, MOUNT_FD_PROC);
    mask_proc();
    if (opts_.sys) mount_sys();

    /*
     * mount_dev: a small tmpfs with only the nodes we make in it. The host's
     * /dev would hand the sandbox every disk and console. Not nodev: the
     * nodes must work. Not writable after setup (remount_dev).
     */
    fsmount(in_root(OP_FSMOUNT, STEP_mount_dev, "/dev"), "tmpfs", {{"mode", "0755"}, {"size", "65536"}},
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, MOUNT_FD_DEV);
    /*
     * make_dev_node: mknod(2), not a bind mount of the host's node. We are
     * root in the initial user namespace (CAP_MKNOD), and a node costs a
     * fraction of a mount to make and nothing to tear down (crun does the
     * same outside a user namespace). umask 0 so the modes are the host's.
     */
    mount_op umask0 = in_dev(OP_UMASK, STEP_make_dev_node, "/dev");
    umask0.flags = 0;
    add(umask0);
    for (const DevNode &node : opts_.dev_nodes) {
      if (opts_.rootless) {
        /*
         * bind_dev_node: rootless, mknod(2) is refused (a user namespace gets no
         * CAP_MKNOD over devices, and nodes on a tmpfs it mounted would not open
         * anyway: SB_I_NODEV). Bind the host's node, as bubblewrap does (rootless.cc).
         */
        add(in_dev(OP_MKFILE, STEP_bind_dev_node, node.path));
        mount_op b = in_dev(OP_BIND, STEP_bind_dev_node, node.path);
        b.source = plan_.keep(node.path);
        b.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC;
        add(b);
        continue;
      }
      /* The kernel's dev_t encoding (new_encode_dev in include/linux/kdev_t.h). */
      uint64_t dev = (node.minor & 0xff) | (node.major << 8) | (static_cast<uint64_t>(node.minor & ~0xffu) << 12);
      mount_op n = in_dev(OP_MKNOD, STEP_make_dev_node, node.path);
      n.flags = S_IFCHR | node.mode;
      n.attr_set = dev;
      add(n);
    }
    plan_devices(opts_, plan_); /* make_device_node: --device and --gpu (devices.cc) */
    mount_op umask22 = umask0;
    umask22.flags = 022;
    add(umask22);
    static const char *const links[][2] = {{"/proc/self/fd", "/dev/fd"},
                                           {"/proc/self/fd/0", "/dev/stdin"},
                                           {"/proc/self/fd/1", "/dev/stdout"},
                                           {"/proc/self/fd/2", "/dev/stderr"}};
    for (const auto &link : links) {
      mount_op l = in_dev(OP_SYMLINK, STEP_link_dev, link[1]);
      l.source = link[0];
      add(l);
    }
    if (opts_.dev_pts) {
      /* newinstance: a devpts of our own, so the host's terminals stay out of reach (pts(4)). */
      add(in_dev(OP_MKDIR, STEP_mount_dev_pts, "/dev/pts"));
      fsmount(in_dev(OP_FSMOUNT, STEP_mount_dev_pts, "/dev/pts"), "devpts",
              {{"newinstance", ""}, {"ptmxmode", "0666"}, {"mode", "0620"}}, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
              MOUNT_FD_PTS /* kept for open_pty (tty.cc) */);
      mount_op l = in_dev(OP_SYMLINK, STEP_mount_dev_pts, "/dev/ptmx");
      l.source = "pts/ptmx";
      add(l);
    }
    if (opts_.dev_shm) {
      /*
       * mount_dev_shm: noexec as Docker mounts it: shared memory is for data,
       * and a writable place to run files from is what an exploit wants.
       * Size- and inode-capped as /tmp is.
       */
      add(in_dev(OP_MKDIR, STEP_mount_dev_shm, "/dev/shm"));
      fsmount(in_dev(OP_FSMOUNT, STEP_mount_dev_shm, "/dev/shm"), "tmpfs",
              {{"mode", "1777"},
               {"size", std::to_string(opts_.dev_shm_size_bytes)},
               {"nr_inodes", std::to_string(tmpfs_inodes(opts_.dev_shm_size_bytes))}},
              MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
    }
    mount_op dev_ro = in_dev(OP_SETATTR, STEP_remount_dev, "/dev");
    dev_ro.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC;
    add(dev_ro);

    /*
     * mount_tmp: the only writable place by default. The size cap keeps a
     * program from filling memory through it; its pages are charged to the
     * sandbox's memory cgroup as well (tmpfs(5)); the inode cap bounds what
     * the size cap does not see (tmpfs_inodes above).
     */
    fsmount(in_root(OP_FSMOUNT, STEP_mount_tmp, "/tmp"), "tmpfs",
            {{"mode", "1777"},
             {"size", std::to_string(opts_.tmp_size_bytes)},
             {"nr_inodes", std::to_string(tmpfs_inodes(opts_.tmp_size_bytes))}},
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (opts_.tmp_noexec ? MOUNT_ATTR_NOEXEC : 0));

    if (!opts_.box.empty()) plan_box();

    /*
     * bind_mount: the parent opened the source once and cloned it into a
     * detached tree with its flags already set (remount_bind, in
     * open_mount_sources): read-only, nosuid, nodev and private before it is
     * ever visible. The child only resolves the target and attaches it.
     */
    for (const BindSpec &b : opts_.binds) {
      mount_op m = in_root(OP_BIND, STEP_bind_mount, b.target);
      m.source = plan_.keep(b.source);
      /*
       * Rootless, open_tree(OPEN_TREE_CLONE) needs CAP_SYS_ADMIN over the mount
       * namespace, which only the child has (over its own): the child opens and
       * clones the source itself, with the same single no-symlink lookup (do_bind).
       */
      m.flags = opts_.rootless ? BIND_IN_CHILD : BIND_FROM_PARENT;
      m.recursive = 1;
      m.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (b.read_only ? MOUNT_ATTR_RDONLY : 0);
      m.detail = plan_.keep(b.target + (b.option.empty() ? " (a device's bind)" : " (" + b.option + ".target)"));
      add(m);
    }
  }

 private:
  /* The overlay is needed for overlay: true, and for any mount point to make outside the box. */
  bool use_overlay() const {
    if (opts_.overlay) return true;
    for (const MountPointSpec &m : opts_.mount_points)
      if (!in_box(m.path)) return true;
    return false;
  }
  bool in_box(const std::string &path) const {
    return !opts_.box.empty() && path.size() > opts_.box.size() && path.compare(0, opts_.box.size(), opts_.box) == 0 &&
           path[opts_.box.size()] == '/';
  }

  /*
   * mount_overlay: the root is an overlay (overlayfs(5)) whose only lower
   * layer is the rootfs and whose upper layer is a fresh tmpfs, stacked on
   * the rootfs's bind (bind_rootfs) in the child's private namespace. Writes,
   * and the mount points capsule makes, land in the tmpfs; the host directory
   * is never written, and the tmpfs goes with the namespace. The lower layer
   * is bind_rootfs's mount, by its descriptor: the rootfs looked up once,
   * with no symlink, and checked to be the inode the parent saw; never the
   * path looked up again (overlayfs takes layers from descriptors with
   * fsconfig(2) FSCONFIG_SET_FD since Linux 6.13; before that, the
   * /proc/self/fd/N name of the same open directory). It must be a mount of
   * this namespace, which the parent's own descriptor is not: overlayfs
   * refuses a layer from another mount namespace (clone_private_mount). The
   * tmpfs is size- and inode-capped as /tmp is, and its pages are charged to
   * the writer's memory cgroup (tmpfs(5)), so overlay writes count against
   * memoryLimitBytes. Without overlay: true only mount points go there: a
   * small cap, and the root is read-only again (remount_root) before
   * anything runs.
   */
  void plan_overlay() {
    uint64_t size = opts_.overlay ? opts_.overlay_size_bytes : 1ull << 20;
    mount_op o = in_root(OP_OVERLAY, STEP_mount_overlay, "");
    o.target = o.detail = plan_.keep(opts_.rootfs);
    o.fstype = "overlay";
    o.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    o.save = MOUNT_FD_ROOT;
    std::vector<const char *> list = {"source",   "tmpfs", "mode", "0755", "size", plan_.keep(std::to_string(size)),
                                      "nr_inodes", plan_.keep(std::to_string(tmpfs_inodes(size))), nullptr, nullptr};
    plan_.lists.push_back(std::move(list));
    o.config = plan_.lists.back().data();
    o.data = plan_.keep("upper: tmpfs size=" + std::to_string(size) + ",nr_inodes=" + std::to_string(tmpfs_inodes(size)));
    add(o);
  }

  /*
   * make_mount_point: one missing component of a mount point's path. Its
   * parent is looked up by descriptor from the root, with no symlink
   * allowed (openat2(2), as open_mount_target), and the name made in it with
   * mkdirat(2), or openat(2) O_CREAT|O_EXCL|O_NOFOLLOW for a file: a name
   * that appeared since TypeScript looked (EEXIST) is left to the mount's own
   * lookup, which refuses a symlink and a file of the wrong kind.
   */
  void mount_point(const MountPointSpec &m) {
    mount_op o = in_root(OP_MKPOINT, STEP_make_mount_point, m.path);
    std::string rel = o.at;
    size_t slash = rel.rfind('/');
    o.source = plan_.keep(slash == std::string::npos ? "" : rel.substr(0, slash));
    o.data = plan_.keep(slash == std::string::npos ? rel : rel.substr(slash + 1));
    o.flags = m.dir ? MKPOINT_DIR : 0;
    o.detail = plan_.keep(m.path + " (a mount point capsule makes)");
    add(o);
  }

  /*
   * mount_box: a tmpfs at the caller's path, its root owned by the sandbox's
   * uid and gid as the host sees them (the leased ids under hostIds
   * 'unique'), so the program can write there and nowhere else it was not
   * given. Not noexec: a judge compiles into it and runs what it compiled.
   * nosuid, nodev, size- and inode-capped as /tmp. Mount points under it
   * (a bind inside the box) are made in it afterwards.
   */
  void plan_box() {
    uint32_t uid = opts_.host_uid ? opts_.host_uid : opts_.uid;
    uint32_t gid = opts_.host_gid ? opts_.host_gid : opts_.gid;
    fsmount(in_root(OP_FSMOUNT, STEP_mount_box, opts_.box), "tmpfs",
            {{"mode", "0755"},
             {"uid", std::to_string(uid)},
             {"gid", std::to_string(gid)},
             {"size", std::to_string(opts_.box_size_bytes)},
             {"nr_inodes", std::to_string(tmpfs_inodes(opts_.box_size_bytes))}},
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
    for (const MountPointSpec &m : opts_.mount_points)
      if (in_box(m.path)) mount_point(m);
  }

  /*
   * mask_proc_path and remount_proc_path: a PID namespace filters /proc's
   * process directories, but much of the rest is the host's, whatever
   * namespace reads it: kernel memory (kcore), every key on the system
   * (keys), host timers with their PIDs (timer_list), interrupt counts that
   * time other tenants (interrupts), and knobs that act on the host: a uid-0
   * sandbox holds no capability, yet owns /proc/sys/kernel/core_pattern
   * (which runs a program as host root on the next crash) and
   * /proc/sysrq-trigger by plain permission bits. The root-only files guarded
   * by their mode alone are masked too, since a uid-0 sandbox passes that
   * check: the state of every physical page (kpageflags, kpagecount,
   * kpagecgroup: the side channel Rowhammer attacks use to find their
   * targets), the kernel's slab and vmalloc layout with addresses
   * (slabinfo, vmallocinfo), its free-page fragmentation (pagetypeinfo) and
   * its log (kmsg, which also wants CAP_SYSLOG: masked all the same).
   * runc's maskedPaths and readonlyPaths, which this follows: files get
   * /dev/null bound over them, directories an empty read-only tmpfs; the
   * knobs a read-only bind of themselves. Entries this kernel lacks are
   * skipped (checked in the host's /proc once: the same kernel builds the
   * sandbox's). Not /proc/driver: CUDA (libcuda, NVML) reads
   * /proc/driver/nvidia under --gpu (docs/devices.md).
   */
  void mask_proc() {
    static const char *const masked[] = {
        "/proc/acpi",        "/proc/asound",      "/proc/interrupts", "/proc/kcore",         "/proc/keys",
        "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
        "/proc/kpageflags",  "/proc/kpagecount",  "/proc/kpagecgroup", "/proc/slabinfo",     "/proc/vmallocinfo",
        "/proc/pagetypeinfo", "/proc/kmsg"};
    static const char *const read_only[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                            "/proc/sysrq-trigger"};
    for (const char *path : masked) {
      struct stat st;
      if (stat(path, &st) != 0) continue;
      if (S_ISDIR(st.st_mode)) {
        fsmount(in_proc(OP_FSMOUNT, STEP_mask_proc_path, path), "tmpfs", {{"mode", "0555"}, {"size", "4096"}},
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
      } else {
        /* The host's /dev/null, by path in the child before pivot_root: outside the rootfs's reach. */
        mount_op m = in_proc(OP_BIND, STEP_mask_proc_path, path);
        m.source = "/dev/null";
        add(m);
      }
    }
    for (const char *path : read_only) {
      struct stat st;
      if (stat(path, &st) != 0) continue;
      mount_op m = in_proc(OP_BIND, STEP_remount_proc_path, path);
      m.recursive = 1;
      m.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
      add(m);
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
    const uint64_t ro = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    fsmount(in_root(OP_FSMOUNT, STEP_mount_sys, "/sys"), "sysfs", {}, ro, MOUNT_FD_SYS);
    static const char *const masked[] = {"/sys/firmware", "/sys/devices/virtual/powercap"};
    for (const char *path : masked) {
      struct stat st;
      if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
      fsmount(in_sys(OP_FSMOUNT, STEP_mount_sys, path), "tmpfs", {{"mode", "0555"}, {"size", "4096"}}, ro);
    }
  }

  const SandboxOptions &opts_;
  Plan &plan_;
};

}  // namespace

void plan_mounts(const SandboxOptions &opts, Plan &plan) { Planner(opts, plan).run(); }

void Plan::close_sources() {
  for (int fd : source_fds) close(fd);
  source_fds.clear();
}

/*
 * The bind sources, opened once in the parent, before clone: openat2(2) with
 * no symlink anywhere on the path (TypeScript resolved them, so a link found
 * now was put there since), then open_tree(2) with OPEN_TREE_CLONE: a
 * detached recursive copy of the mount tree at the source, which belongs to
 * no namespace until the child attaches it (move_mount(2) accepts a detached
 * tree from another namespace). remount_bind sets its flags while it is
 * detached: nothing can see it writable, even for an instant. MS_PRIVATE: a
 * clone of a shared mount joins its peer group, and mounts made under the
 * bind would then propagate to the host's source (mount_namespaces(7)).
 */
bool open_mount_sources(const SandboxOptions &opts, Plan &plan, capsule_step &step, int &err,
                        std::string &detail) {
  auto failed = [&](capsule_step s, const std::string &d) {
    step = s;
    err = errno;
    detail = d;
    return false;
  };
  struct statx stx;
  if (statx(AT_FDCWD, opts.rootfs.c_str(), AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_INO, &stx) != 0)
    return failed(STEP_bind_rootfs, opts.rootfs);
  plan.rootfs_ino = stx.stx_ino;
  plan.rootfs_dev_major = stx.stx_dev_major;
  plan.rootfs_dev_minor = stx.stx_dev_minor;
  for (mount_op &op : plan.mount_ops) {
    if (op.kind != OP_BIND || !(op.flags & BIND_FROM_PARENT)) continue;
    struct open_how how = {O_PATH | O_CLOEXEC, 0, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
    int src = static_cast<int>(syscall(SYS_openat2, AT_FDCWD, op.source, &how, sizeof how));
    if (src < 0) return failed(STEP_bind_mount, std::string(op.source) + " (the source of " + op.detail + ")");
    int tree = static_cast<int>(syscall(SYS_open_tree, src, "",
                                        OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE));
    int saved = errno;
    close(src);
    errno = saved;
    if (tree < 0) return failed(STEP_bind_mount, std::string(op.source) + " (the source of " + op.detail + ")");
    plan.source_fds.push_back(tree);
    op.source_fd = tree;
    if (statx(tree, "", AT_EMPTY_PATH, STATX_TYPE, &stx) != 0) return failed(STEP_bind_mount, op.source);
    if (S_ISDIR(stx.stx_mode)) op.flags |= BIND_SOURCE_DIR;
    struct mount_attr attr = {op.attr_set, 0, MS_PRIVATE, 0};
    if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) != 0)
      return failed(STEP_remount_bind, op.detail);
  }
  return true;
}

/* ------------------------------ child half ------------------------------- */

namespace {

/*
 * open_mount_target: the one lookup of a mount point. From the slot's
 * descriptor, RESOLVE_IN_ROOT keeps ".." and absolute symlinks inside it and
 * RESOLVE_NO_SYMLINKS refuses a symlink in any component, the last included,
 * with ELOOP (openat2(2)): a name swapped for a link after the TypeScript
 * check fails the run instead of redirecting the mount. The descriptor is
 * O_PATH: nothing is opened for reading, so even a FIFO cannot block us.
 * Sets *fd (which the caller closes when *owned).
 */
void open_target(const struct child_config *cfg, const struct mount_op *op, int *fd, int *owned) {
  *owned = 0;
  if (op->base != MOUNT_FD_HOST && op->at[0] == '\0') {
    *fd = cfg->mount_fds[op->base];
    return;
  }
  struct open_how how = {O_PATH | O_CLOEXEC, 0, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
  int dir = AT_FDCWD;
  if (op->base != MOUNT_FD_HOST) {
    how.resolve |= RESOLVE_IN_ROOT;
    dir = cfg->mount_fds[op->base];
  }
  /* OCI: symlinks inside the rootfs are followed, and stay inside it (RESOLVE_IN_ROOT); magic links never. */
  if (op->follow) how.resolve &= ~static_cast<uint64_t>(RESOLVE_NO_SYMLINKS);
  long r = SYS4(__NR_openat2, dir, op->at, &how, sizeof how);
  if (r == -ENOENT && op->skip_missing) {
    *fd = -1;
    return;
  }
  if (sys_failed(r)) child_fail(cfg, STEP_open_mount_target, r, op->detail);
  *fd = static_cast<int>(r);
  *owned = 1;
}

/* statx(2) of a descriptor: the struct is the same on every architecture, unlike struct stat. */
long fd_statx(int fd, struct statx *stx) {
  return SYS5(__NR_statx, fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_INO, stx);
}

/* Attach the mount `mnt` onto `target`, both descriptors (move_mount(2)). */
long attach(int mnt, int target) {
  return SYS5(__NR_move_mount, mnt, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
}

/*
 * OP_BIND: the tree to attach is the parent's detached clone, or a clone made
 * here of a host path ("/dev/null", looked up in the child's copy of the
 * host's mounts, which the rootfs cannot reach) or of the target itself (the
 * read-only /proc/sys). A clone made here gets its flags while detached.
 */
long do_bind(const struct child_config *cfg, const struct mount_op *op, int target, int *tree) {
  long r;
  unsigned clone = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (op->recursive ? AT_RECURSIVE : 0);
  unsigned kind_flags = op->flags;
  if (op->flags & BIND_FROM_PARENT) {
    *tree = op->source_fd;
  } else if (op->flags & BIND_IN_CHILD) {
    /* Rootless: what open_mount_sources does in the parent, here (rootless.cc). */
    struct open_how how = {O_PATH | O_CLOEXEC, 0, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
    long src = SYS4(__NR_openat2, AT_FDCWD, op->source, &how, sizeof how);
    if (sys_failed(src)) return src;
    r = SYS3(__NR_open_tree, src, "", clone | AT_EMPTY_PATH);
    SYS1(__NR_close, src);
    if (sys_failed(r)) return r;
    *tree = static_cast<int>(r);
    struct statx sst;
    r = fd_statx(*tree, &sst);
    if (sys_failed(r)) return r;
    if (S_ISDIR(sst.stx_mode)) kind_flags |= BIND_SOURCE_DIR;
    /* An atime mode replaces the tree's own only with MOUNT_ATTR__ATIME cleared (mount_setattr(2)). */
    const uint64_t atime = op->attr_set & (MOUNT_ATTR_NOATIME | MOUNT_ATTR_STRICTATIME) ? MOUNT_ATTR__ATIME : 0;
    struct mount_attr attr = {op->attr_set, atime, MS_PRIVATE, 0};
    r = SYS5(__NR_mount_setattr, *tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr);
    if (sys_failed(r)) return r;
  } else {
    if (op->source)
      r = SYS3(__NR_open_tree, AT_FDCWD, op->source, clone);
    else
      r = SYS3(__NR_open_tree, target, "", clone | AT_EMPTY_PATH);
    if (sys_failed(r)) return r;
    *tree = static_cast<int>(r);
    if (op->attr_set) {
      struct mount_attr attr = {op->attr_set, 0, 0, 0};
      r = SYS5(__NR_mount_setattr, *tree, "", AT_EMPTY_PATH | (op->recursive ? AT_RECURSIVE : 0), &attr,
               sizeof attr);
      if (sys_failed(r)) return r;
    }
  }
  /*
   * Check what is mounted on: the rootfs must be the inode the parent saw
   * before clone; a bind's target must be of the source's kind (the kernel
   * refuses a directory over a file, but with a less helpful EINVAL).
   */
  struct statx st;
  r = fd_statx(target, &st);
  if (sys_failed(r)) return r;
  if ((op->flags & BIND_CHECK_ROOTFS) &&
      (st.stx_ino != cfg->rootfs_ino || st.stx_dev_major != cfg->rootfs_dev_major ||
       st.stx_dev_minor != cfg->rootfs_dev_minor))
    return -EXDEV;
  if ((op->flags & (BIND_FROM_PARENT | BIND_CHECK_ROOTFS | BIND_IN_CHILD)) &&
      S_ISDIR(st.stx_mode) != !!(kind_flags & BIND_SOURCE_DIR))
    return S_ISDIR(st.stx_mode) ? -EISDIR : -ENOTDIR;
  return attach(*tree, target);
}

/*
 * OP_FSMOUNT: fsopen(2), one fsconfig(2) per option, FSCONFIG_CMD_CREATE,
 * then fsmount(2) with the mount's flags: the filesystem is never visible
 * without them. The strings were prepared before clone.
 */
long do_fsmount(const struct mount_op *op, int target, int *mnt) {
  long fs = SYS2(__NR_fsopen, op->fstype, FSOPEN_CLOEXEC);
  if (sys_failed(fs)) return fs;
  long r = 0;
  for (const char *const *kv = op->config; kv[0]; kv += 2) {
    r = SYS5(__NR_fsconfig, fs, kv[1] ? FSCONFIG_SET_STRING : FSCONFIG_SET_FLAG, kv[0], kv[1], 0);
    if (sys_failed(r)) break;
  }
  if (!sys_failed(r)) r = SYS5(__NR_fsconfig, fs, FSCONFIG_CMD_CREATE, 0, 0, 0);
  if (!sys_failed(r)) r = SYS3(__NR_fsmount, fs, FSMOUNT_CLOEXEC, op->attr_set);
  SYS1(__NR_close, fs);
  if (sys_failed(r)) return r;
  *mnt = static_cast<int>(r);
  return attach(*mnt, target);
}

/* "/proc/self/fd/N" for fd into buf (32 bytes): no libc in the child. */
const char *fd_path(char *buf, int fd) {
  static const char prefix[] = "/proc/self/fd/";
  unsigned n = 0;
  for (; prefix[n]; n++) buf[n] = prefix[n];
  char digits[12];
  unsigned d = 0;
  do {
    digits[d++] = static_cast<char>('0' + fd % 10);
    fd /= 10;
  } while (fd > 0 && d < sizeof digits);
  while (d > 0) buf[n++] = digits[--d];
  buf[n] = '\0';
  return buf;
}

/*
 * One layer of the overlay by descriptor: FSCONFIG_SET_FD (overlayfs takes
 * lowerdir+, upperdir and workdir so since Linux 6.13), else the
 * /proc/self/fd/N name of the same open directory, which the kernel follows
 * to that file, not to a name (the child still sees the host's /proc:
 * pivot_root comes later).
 */
long overlay_layer(long fs, const char *key, const char *old_key, int fd) {
  long r = SYS5(__NR_fsconfig, fs, FSCONFIG_SET_FD, key, 0, fd);
  /* EINVAL: an overlayfs that takes strings only (6.5-6.12); EOPNOTSUPP: one still on the legacy mount API. */
  if (r != -EINVAL && r != -EOPNOTSUPP) return r;
  char path[32];
  return SYS5(__NR_fsconfig, fs, FSCONFIG_SET_STRING, old_key, fd_path(path, fd), 0);
}

/*
 * OP_OVERLAY (mount_overlay, see plan_overlay): a tmpfs stacked on the
 * rootfs's bind, with upper/ and work/ in it; the overlay made from
 * bind_rootfs's mount and those two, and stacked on the tmpfs; its
 * descriptor replaces the root's
 * (the old one is closed: the overlay's mount keeps it). On failure, *log gets the kernel's own reason from the
 * filesystem context (fsopen(2): read(2) on it), e.g. a rootfs on an
 * overlayfs already stacked too deep.
 */
long do_overlay(int root, const struct mount_op *op, int *mnt, char *log, unsigned log_size) {
  int upper = -1, work = -1;
  long tm = -1, ov = -1, r;
  /* The lower layer: the rootfs's bind, reopened for reading (FSCONFIG_SET_FD takes no O_PATH file). */
  const char *what = "openat(rootfs)";
  long lower = SYS3(__NR_openat, root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  struct statx st;
  if (!sys_failed(lower)) r = SYS5(__NR_statx, lower, "", AT_EMPTY_PATH, STATX_MODE | STATX_UID | STATX_GID, &st);
  else r = lower;
  long fs = -1;
  if (!sys_failed(r)) what = "fsopen(tmpfs)", r = fs = SYS2(__NR_fsopen, "tmpfs", FSOPEN_CLOEXEC);
  for (const char *const *kv = op->config; kv[0] && !sys_failed(r); kv += 2)
    r = SYS5(__NR_fsconfig, fs, FSCONFIG_SET_STRING, kv[0], kv[1], 0);
  if (!sys_failed(r)) r = SYS5(__NR_fsconfig, fs, FSCONFIG_CMD_CREATE, 0, 0, 0);
  if (!sys_failed(r)) what = "fsmount(tmpfs)", r = tm = SYS3(__NR_fsmount, fs, FSMOUNT_CLOEXEC, 0);
  if (!sys_failed(fs)) SYS1(__NR_close, fs);
  /*
   * The tmpfs is attached on the rootfs's bind before it is used: overlayfs
   * takes layers only from mounts of the caller's namespace (clone_private_mount
   * refuses a detached one before Linux 6.15). The overlay goes on top of it,
   * and pivot_root later detaches both the bind and the tmpfs with the old
   * root: the overlay keeps its own private copies of its layers.
   */
  if (!sys_failed(r)) what = "move_mount(tmpfs)", r = attach(static_cast<int>(tm), root);
  /* upper/ gets the rootfs root's owner and mode: the overlay's root shows the upper directory's. */
  if (!sys_failed(r)) what = "mkdirat(upper)", r = SYS3(__NR_mkdirat, tm, "upper", 0700);
  if (!sys_failed(r)) what = "mkdirat(work)", r = SYS3(__NR_mkdirat, tm, "work", 0700);
  if (!sys_failed(r)) what = "fchownat(upper)", r = SYS5(__NR_fchownat, tm, "upper", st.stx_uid, st.stx_gid, 0);
  if (!sys_failed(r)) what = "fchmodat(upper)", r = SYS4(__NR_fchmodat, tm, "upper", st.stx_mode & 07777, 0);
  if (!sys_failed(r))
    what = "openat(upper)", r = upper = static_cast<int>(SYS3(__NR_openat, tm, "upper", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!sys_failed(r))
    what = "openat(work)", r = work = static_cast<int>(SYS3(__NR_openat, tm, "work", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!sys_failed(r)) what = "fsopen(overlay)", r = ov = SYS2(__NR_fsopen, "overlay", FSOPEN_CLOEXEC);
  if (!sys_failed(r)) what = "fsconfig(lowerdir+)", r = overlay_layer(ov, "lowerdir+", "lowerdir", static_cast<int>(lower));
  if (!sys_failed(r)) what = "fsconfig(upperdir)", r = overlay_layer(ov, "upperdir", "upperdir", upper);
  if (!sys_failed(r)) what = "fsconfig(workdir)", r = overlay_layer(ov, "workdir", "workdir", work);
  if (!sys_failed(r)) what = "fsconfig(FSCONFIG_CMD_CREATE)", r = SYS5(__NR_fsconfig, ov, FSCONFIG_CMD_CREATE, 0, 0, 0);
  if (!sys_failed(r)) what = "fsmount(overlay)", r = SYS3(__NR_fsmount, ov, FSMOUNT_CLOEXEC, op->attr_set);
  if (!sys_failed(r)) *mnt = static_cast<int>(r);
  if (sys_failed(r)) {
    /* The step's detail: the call that failed, then the kernel's own words from the context, if any. */
    unsigned n = 0;
    for (const char *p = what; *p && n + 1 < log_size; p++) log[n++] = *p;
    if (ov >= 0 && !sys_failed(ov) && n + 3 < log_size) {
      log[n++] = ':';
      log[n++] = ' ';
      long got = SYS3(__NR_read, ov, log + n, log_size - 1 - n);
      if (got > 0) {
        n += static_cast<unsigned>(got);
        if (log[n - 1] == '\n') n--;
      } else {
        n -= 2;
      }
    }
    log[n] = '\0';
  }
  /* The overlay holds its layers: the tmpfs lives as long as the overlay's mount does. */
  for (long fd : {static_cast<long>(upper), static_cast<long>(work), ov, lower})
    if (fd >= 0 && !sys_failed(fd)) SYS1(__NR_close, fd);
  if (sys_failed(r)) {
    if (tm >= 0 && !sys_failed(tm)) SYS1(__NR_close, tm);
    return r;
  }
  /* On top of the tmpfs, the top of the stack at the rootfs's path. */
  r = attach(*mnt, static_cast<int>(tm));
  SYS1(__NR_close, tm);
  if (sys_failed(r)) {
    unsigned n = 0;
    for (const char *p = "move_mount"; *p; p++) log[n++] = *p;
    log[n] = '\0';
  }
  return r;
}

/* OP_MKPOINT (make_mount_point, see mount_point in the planner). */
long do_mkpoint(const struct child_config *cfg, const struct mount_op *op) {
  int dir = cfg->mount_fds[op->base];
  long r = 0;
  if (op->source[0]) {
    struct open_how how = {O_PATH | O_DIRECTORY | O_CLOEXEC, 0,
                           RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
    r = SYS4(__NR_openat2, dir, op->source, &how, sizeof how);
    if (sys_failed(r)) return r;
    dir = static_cast<int>(r);
  }
  if (op->flags & MKPOINT_DIR) {
    r = SYS3(__NR_mkdirat, dir, op->data, 0755);
  } else {
    r = SYS4(__NR_openat, dir, op->data, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (!sys_failed(r)) r = SYS1(__NR_close, r);
  }
  if (op->source[0]) SYS1(__NR_close, dir);
  return r == -EEXIST ? 0 : r;
}

/*
 * OP_MKPATH (make_path): every missing component of `at`, made one at a
 * time. Each existing prefix is looked up from the root with
 * RESOLVE_IN_ROOT (symlinks followed, but "/" and ".." are the rootfs), and
 * the next name is made in what that lookup returned, by descriptor:
 * mkdirat(2), or for the last component of a file's mount point
 * openat(2) O_CREAT|O_EXCL|O_NOFOLLOW. A name made meanwhile (EEXIST) is
 * fine: the mount's own lookup checks what is there. Paths are at most 4095
 * bytes (PATH_MAX), on this stack.
 */
long do_mkpath(const struct child_config *cfg, const struct mount_op *op) {
  char buf[4096];
  unsigned len = 0;
  while (op->at[len]) {
    if (len + 1 >= sizeof buf) return -ENAMETOOLONG;
    buf[len] = op->at[len];
    len++;
  }
  buf[len] = '\0';
  const int root = cfg->mount_fds[op->base];
  struct open_how how = {O_PATH | O_CLOEXEC, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
  unsigned start = 0;
  while (start < len) {
    unsigned end = start;
    while (end < len && buf[end] != '/') end++;
    if (end == start) { /* "//" */
      start++;
      continue;
    }
    const bool last = end == len;
    char saved = buf[end];
    buf[end] = '\0';
    long r = SYS4(__NR_openat2, root, buf, &how, sizeof how);
    if (sys_failed(r) && r != -ENOENT) return r;
    if (!sys_failed(r)) {
      SYS1(__NR_close, r);
    } else {
      /* The parent: the prefix before this component, or the root itself. */
      long parent = root;
      if (start > 0) {
        buf[start - 1] = '\0';
        parent = SYS4(__NR_openat2, root, buf, &how, sizeof how);
        buf[start - 1] = '/';
        if (sys_failed(parent)) return parent;
      }
      const char *name = buf + start;
      if (!last || (op->flags & MKPOINT_DIR)) {
        r = SYS3(__NR_mkdirat, parent, name, 0755);
      } else {
        r = SYS4(__NR_openat, parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (!sys_failed(r)) r = SYS1(__NR_close, r);
      }
      if (parent != root) SYS1(__NR_close, parent);
      if (sys_failed(r) && r != -EEXIST) return r;
    }
    buf[end] = saved;
    start = end + 1;
  }
  return 0;
}

/* The directory `source` inside the root (OP_MKNODAT), by descriptor; "" is the root. */
long open_in_root(const struct child_config *cfg, const struct mount_op *op, const char *rel, int dir_only) {
  const int root = cfg->mount_fds[op->base];
  struct open_how how = {static_cast<uint64_t>(O_PATH | O_CLOEXEC | (dir_only ? O_DIRECTORY : 0)), 0,
                         RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
  return SYS4(__NR_openat2, root, rel[0] ? rel : ".", &how, sizeof how);
}

/*
 * OP_MKNODAT (make_oci_device): mknodat(2) in the device's directory,
 * resolved inside the root first: a relative mknodat on a path with
 * slashes would follow an absolute symlink to the host's root (we have not
 * pivoted yet). An existing node is left (runc does the same); the mode is
 * set exactly (fchmodat(2), not subject to the umask) and the owner given.
 */
long do_mknodat(const struct child_config *cfg, const struct mount_op *op) {
  long dir = open_in_root(cfg, op, op->source, 1);
  if (sys_failed(dir)) return dir;
  long r = SYS4(__NR_mknodat, dir, op->data, op->flags, op->attr_set);
  if (r == -EEXIST) r = 0;
  else if (!sys_failed(r)) {
    r = SYS4(__NR_fchmodat, dir, op->data, op->flags & 07777, 0);
    if (!sys_failed(r)) r = SYS5(__NR_fchownat, dir, op->data, op->uid, op->gid, AT_SYMLINK_NOFOLLOW);
  }
  SYS1(__NR_close, dir);
  return r;
}

/*
 * OP_SYSCTL (write_sysctl): the file under the container's /proc/sys, opened
 * with no symlink and no magic link on the way, written in one write(2).
 * The proc mount is the container's, in its own namespaces, so a namespaced
 * value (net.*, kernel.shm*) changes only the container's.
 */
long do_sysctl(const struct child_config *cfg, const struct mount_op *op) {
  const int root = cfg->mount_fds[op->base];
  struct open_how how = {O_WRONLY | O_CLOEXEC, 0, RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
  long fd = SYS4(__NR_openat2, root, op->at, &how, sizeof how);
  if (sys_failed(fd)) return fd;
  long r = SYS3(__NR_write, fd, op->source, c_strlen(op->source));
  SYS1(__NR_close, fd);
  return r;
}

/*
 * OP_MASK (mask_path): what runc does for linux.maskedPaths: the host's
 * /dev/null bound over a file (looked up in the child's copy of the host's
 * mounts, before pivot_root), an empty read-only tmpfs over a directory.
 */
long do_mask(const struct mount_op *op, int target) {
  struct statx st;
  long r = fd_statx(target, &st);
  if (sys_failed(r)) return r;
  long mnt;
  if (S_ISDIR(st.stx_mode)) {
    long fs = SYS2(__NR_fsopen, "tmpfs", FSOPEN_CLOEXEC);
    if (sys_failed(fs)) return fs;
    r = SYS5(__NR_fsconfig, fs, FSCONFIG_SET_STRING, "size", "0", 0);
    if (!sys_failed(r)) r = SYS5(__NR_fsconfig, fs, FSCONFIG_SET_STRING, "mode", "0555", 0);
    if (!sys_failed(r)) r = SYS5(__NR_fsconfig, fs, FSCONFIG_CMD_CREATE, 0, 0, 0);
    if (!sys_failed(r)) r = SYS3(__NR_fsmount, fs, FSMOUNT_CLOEXEC, op->attr_set);
    SYS1(__NR_close, fs);
    mnt = r;
  } else {
    mnt = SYS3(__NR_open_tree, AT_FDCWD, "/dev/null", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  }
  if (sys_failed(mnt)) return mnt;
  r = attach(static_cast<int>(mnt), target);
  SYS1(__NR_close, mnt);
  return r;
}

/*
 * An OCI mount whose target, once resolved, is inside a procfs although its
 * destination does not name /proc/...: a symlink in the rootfs led there (an
 * image can carry one). Mounting over /proc's files is how runc's
 * CVE-2019-19921 disabled a security module; refuse it (EPERM), whatever
 * the link says. A destination that names /proc/... was checked by name in
 * src/oci/mounts.ts (lxcfs's files only).
 */
long oci_target_check(const struct mount_op *op, int target) {
  if (op->step != STEP_mount_oci) return 0;
  struct statfs_buf {
    long f_type, rest[15];
  } st;
  long r = SYS2(__NR_fstatfs, target, &st);
  if (sys_failed(r)) return r;
  const char *t = op->target;
  const bool named = t[0] == '/' && t[1] == 'p' && t[2] == 'r' && t[3] == 'o' && t[4] == 'c' && t[5] == '/';
  return st.f_type == 0x9fa0 /* PROC_SUPER_MAGIC */ && !named ? -EPERM : 0;
}

/* The propagation an OCI mount asks for, on the mount now attached at its target (looked up again). */
long set_propagation(const struct child_config *cfg, const struct mount_op *op) {
  int target = -1, owned = 0;
  open_target(cfg, op, &target, &owned);
  struct mount_attr attr = {0, 0, op->propagation & ~static_cast<uint64_t>(MS_REC), 0};
  long r = SYS5(__NR_mount_setattr, target, "", AT_EMPTY_PATH | ((op->propagation & MS_REC) ? AT_RECURSIVE : 0),
                &attr, sizeof attr);
  if (owned) SYS1(__NR_close, target);
  return r;
}

}  // namespace

void child_mounts(const struct child_config *cfg) {
  for (int i = 0; i < MOUNT_FD_COUNT; i++) cfg->mount_fds[i] = -1;
  char log[CAPSULE_DETAIL_MAX]; /* the kernel's reason when mount_overlay fails */
  log[0] = '\0';
  for (unsigned i = 0; i < cfg->n_mount_ops; i++) {
    const struct mount_op *op = &cfg->mount_ops[i];
    int dir = op->base == MOUNT_FD_HOST ? AT_FDCWD : cfg->mount_fds[op->base];
    int target = -1, owned = 0, made = -1;
    long r = 0;
    switch (op->kind) {
      case OP_MOUNT:
        r = SYS5(__NR_mount, op->source, op->target, op->fstype, op->flags, op->data);
        break;
      case OP_MKFILE:
        r = SYS4(__NR_openat, dir, op->at, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (!sys_failed(r)) r = SYS1(__NR_close, r);
        break;
      case OP_MKDIR:
        r = SYS3(__NR_mkdirat, dir, op->at, 0755);
        break;
      case OP_SYMLINK:
        r = SYS3(__NR_symlinkat, op->source, dir, op->at);
        break;
      case OP_MKNOD:
        r = SYS4(__NR_mknodat, dir, op->at, op->flags, op->attr_set);
        break;
      case OP_UMASK:
        r = SYS1(__NR_umask, op->flags);
        if (r >= 0) r = 0; /* umask returns the old mask */
        break;
      case OP_SETATTR: {
        open_target(cfg, op, &target, &owned);
        /* attr_set, and a propagation type when one is given (OCI's host_mounts: MS_PRIVATE). */
        struct mount_attr attr = {op->attr_set, 0, op->propagation & ~static_cast<uint64_t>(MS_REC), 0};
        if (target >= 0)
          r = SYS5(__NR_mount_setattr, target, "", AT_EMPTY_PATH | (op->recursive ? AT_RECURSIVE : 0), &attr,
                   sizeof attr);
        break;
      }
      case OP_BIND:
        open_target(cfg, op, &target, &owned);
        if (target >= 0) r = oci_target_check(op, target);
        if (target >= 0 && !sys_failed(r)) r = do_bind(cfg, op, target, &made);
        break;
      case OP_FSMOUNT:
        open_target(cfg, op, &target, &owned);
        r = oci_target_check(op, target);
        if (sys_failed(r)) break;
        r = do_fsmount(op, target, &made);
        break;
      case OP_OVERLAY:
        r = do_overlay(cfg->mount_fds[MOUNT_FD_ROOT], op, &made, log, sizeof log);
        break;
      case OP_MKPOINT:
        r = do_mkpoint(cfg, op);
        break;
      case OP_MKPATH:
        r = do_mkpath(cfg, op);
        break;
      case OP_MASK:
        open_target(cfg, op, &target, &owned);
        if (target >= 0) r = do_mask(op, target);
        break;
      case OP_SYSCTL:
        r = do_sysctl(cfg, op);
        break;
      case OP_MKNODAT:
        r = do_mknodat(cfg, op);
        break;
    }
    if (target < 0 && op->skip_missing && (op->kind == OP_MASK || op->kind == OP_BIND || op->kind == OP_SETATTR)) {
      /* maskedPaths, readonlyPaths: this kernel or rootfs has no such path. */
      child_trace(cfg, op->step, static_cast<int>(i));
      continue;
    }
    if (!sys_failed(r) && op->propagation && (op->kind == OP_BIND || op->kind == OP_FSMOUNT)) {
      if (owned) SYS1(__NR_close, target);
      owned = 0;
      r = set_propagation(cfg, op);
    }
    if (owned) SYS1(__NR_close, target);
    if (sys_failed(r) && op->kind == OP_OVERLAY && log[0]) child_fail(cfg, op->step, r, log);
    if (sys_failed(r)) child_fail(cfg, op->step, r, op->detail);
    /* Keep the new mount's descriptor when later steps resolve in it; the parent's trees are the parent's. */
    if (op->save >= 0) {
      if (cfg->mount_fds[op->save] >= 0) SYS1(__NR_close, cfg->mount_fds[op->save]);
      cfg->mount_fds[op->save] = made;
    }
    else if (made >= 0 && !(op->flags & BIND_FROM_PARENT && op->kind == OP_BIND))
      SYS1(__NR_close, made);
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
 * put_old directory in the rootfs. The working directory is the rootfs's
 * descriptor from bind_rootfs (fchdir(2)), not its path looked up again.
 */
void child_pivot_root(const struct child_config *cfg) {
  long r = SYS1(__NR_fchdir, cfg->mount_fds[MOUNT_FD_ROOT]);
  if (sys_failed(r)) child_fail(cfg, STEP_pivot_root, r, cfg->rootfs);
  r = SYS2(__NR_pivot_root, ".", ".");
  if (sys_failed(r)) child_fail(cfg, STEP_pivot_root, r, cfg->rootfs);
  child_trace(cfg, STEP_pivot_root, -1);
  /* detach_old_root: MNT_DETACH, since our own cwd still pins it (umount(2)). */
  r = SYS2(__NR_umount2, ".", MNT_DETACH);
  if (sys_failed(r)) child_fail(cfg, STEP_detach_old_root, r, "/");
  child_trace(cfg, STEP_detach_old_root, -1);
  child_enter_cwd(cfg);
}

/*
 * Once the rootfs is the root (pivot_root, or OCI's chroot_root): the mount phase's
 * descriptors are done with, closed before arrange_fds reuses low numbers; then change_dir,
 * the program's working directory, resolved inside the new root.
 */
void child_enter_cwd(const struct child_config *cfg) {
  for (int i = 0; i < MOUNT_FD_COUNT; i++)
    if (cfg->mount_fds[i] >= 0) SYS1(__NR_close, cfg->mount_fds[i]);
  long r = SYS1(__NR_chdir, cfg->cwd);
  if (sys_failed(r)) child_fail(cfg, STEP_change_dir, r, cfg->cwd);
  child_trace(cfg, STEP_change_dir, -1);
}
