/*
 * Host devices the caller asked for (--device, --gpu): parent half only. The
 * child carries the operations out with the rest of the mount plan
 * (child_mounts in mounts.cc), between make_dev_node and remount_dev, while
 * the sandbox's /dev is still a writable tmpfs and the umask is 0.
 *
 * make_device_node: mknod(2) of a node with the host node's type and numbers,
 * not a bind mount of the host's node. The reasons are the ones make_dev_node
 * gives (a node costs a fraction of a mount and nothing to tear down; crun
 * and runc do the same outside a user namespace), plus one that matters here:
 * the node is ours, so its mode says what the caller allowed. A node asked
 * read-only is made 0444, write-only 0222, read-write 0666, owned by root.
 * The sandbox cannot change that: it holds no CAP_FOWNER or CAP_DAC_OVERRIDE,
 * and /dev is read-only once remount_dev has run (chmod(2) needs a writable
 * mount, even for the owner). A bind mount could not do this: the host's
 * inode would keep the host's mode, and a read-only mount does not stop
 * writes to a device node (the EROFS check in do_dentry_open() skips special
 * files), so a bound node's access could only be narrowed by a device cgroup.
 * The devices cgroup (v1) checks the same open(2) again: src/cgroup/v1.ts.
 *
 * Nested paths (/dev/nvidia-caps/nvidia-cap1) get their directories made in
 * the /dev tmpfs first, each once. src/devices/ checked every target: under
 * /dev, no "..", not a node every sandbox gets, not a path capsule makes
 * itself (/dev/pts, /dev/shm, /dev/fd, ...), no duplicates.
 */
#include <sys/stat.h>

#include <set>

#include "mounts.h"

void plan_devices(const SandboxOptions &opts, Plan &plan) {
  std::set<std::string> made_dirs;
  for (const DeviceNode &d : opts.devices) {
    /* Parent directories below /dev, outermost first: /dev/a, then /dev/a/b. */
    for (size_t slash = d.target.find('/', 5); slash != std::string::npos;
         slash = d.target.find('/', slash + 1)) {
      std::string dir = d.target.substr(0, slash);
      if (!made_dirs.insert(dir).second) continue;
      plan.mount_ops.push_back({OP_MKDIR, STEP_make_device_node, nullptr, plan.keep(opts.rootfs + dir), nullptr,
                                nullptr, 0, 0, 0});
    }
    /* The kernel's dev_t encoding (new_encode_dev in include/linux/kdev_t.h), as make_dev_node. */
    uint64_t dev = (d.minor & 0xff) | (d.major << 8) | (static_cast<uint64_t>(d.minor & ~0xffu) << 12);
    unsigned long mode = (d.block ? S_IFBLK : S_IFCHR) | (d.mode & 0777);
    plan.mount_ops.push_back({OP_MKNOD, STEP_make_device_node, nullptr, plan.keep(opts.rootfs + d.target),
                              nullptr, nullptr, mode, dev, 0});
  }
}
