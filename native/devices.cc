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
 * The devices cgroup checks the same open(2) again by number: v1's devices
 * controller (src/cgroup/v1.ts), or on v2 the BPF program below.
 *
 * Nested paths (/dev/nvidia-caps/nvidia-cap1) get their directories made in
 * the /dev tmpfs first, each once. src/devices/ checked every target: under
 * /dev, no "..", not a node every sandbox gets, not a path capsule makes
 * itself (/dev/pts, /dev/shm, /dev/fd, ...), no duplicates.
 */
#include <linux/bpf.h>
#include <linux/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <set>

#include <cstdlib>

#include "mounts.h"

void plan_devices(const SandboxOptions &opts, Plan &plan) {
  std::set<std::string> made_dirs;
  /* In the sandbox's fresh /dev tmpfs, by its descriptor (mounts.cc): `at` is relative to /dev. */
  auto in_dev = [&](mount_op_kind kind, const std::string &inside) {
    mount_op o = new_mount_op(kind, STEP_make_device_node, MOUNT_FD_DEV);
    o.target = o.detail = plan.keep(inside);
    o.at = plan.keep(inside.substr(5));
    return o;
  };
  for (const DeviceNode &d : opts.devices) {
    /* Parent directories below /dev, outermost first: /dev/a, then /dev/a/b. */
    for (size_t slash = d.target.find('/', 5); slash != std::string::npos;
         slash = d.target.find('/', slash + 1)) {
      std::string dir = d.target.substr(0, slash);
      if (!made_dirs.insert(dir).second) continue;
      plan.mount_ops.push_back(in_dev(OP_MKDIR, dir));
    }
    if (opts.rootless) {
      /*
       * bind_dev_node: rootless, no node can be made (a user namespace has no CAP_MKNOD over
       * devices, and nodes on a tmpfs it mounted would not open: SB_I_NODEV), so the host's
       * node is bound in, as the default nodes are (mounts.cc) and as bubblewrap's --dev-bind
       * does. Its path is resolved here, once; the child opens it with no symlink allowed and
       * clones it (BIND_IN_CHILD). The program may open it as the node's own mode lets the
       * caller; src/rootless.ts gives only 'rw' access so, as no bind can take one away.
       */
      plan.mount_ops.push_back(in_dev(OP_MKFILE, d.target));
      mount_op b = in_dev(OP_BIND, d.target);
      b.step = STEP_bind_dev_node;
      char *real = realpath(d.source.c_str(), nullptr);
      b.source = plan.keep(real ? real : d.source);
      free(real);
      b.flags = BIND_IN_CHILD;
      b.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC;
      b.detail = plan.keep(d.target + " (" + d.source + ", devices)");
      plan.mount_ops.push_back(b);
      continue;
    }
    /* The kernel's dev_t encoding (new_encode_dev in include/linux/kdev_t.h), as make_dev_node. */
    uint64_t dev = (d.minor & 0xff) | (d.major << 8) | (static_cast<uint64_t>(d.minor & ~0xffu) << 12);
    mount_op node = in_dev(OP_MKNOD, d.target);
    node.flags = (d.block ? S_IFBLK : S_IFCHR) | (d.mode & 0777);
    node.attr_set = dev;
    plan.mount_ops.push_back(node);
  }
}

/* ------------------- cgroup v2: a BPF device program -------------------- */

/*
 * cgroup v2 has no devices controller: a BPF_PROG_TYPE_CGROUP_DEVICE program
 * attached to the cgroup answers each open(2) and mknod(2) of a device node
 * instead, from the same {type, access, major, minor} the v1 controller sees
 * (cgroup-v2.rst, "Device controller"; kernel/bpf/cgroup.c
 * __cgroup_bpf_check_dev_permission). The program is built here, rule by rule,
 * the way crun (src/libcrun/ebpf.c) and systemd (bpf-devices.c) build theirs:
 *
 *   r2 = ctx->access_type & 0xffff    device type: BPF_DEVCG_DEV_CHAR or _BLOCK
 *   r3 = ctx->access_type >> 16       access asked: BPF_DEVCG_ACC_READ | _WRITE | _MKNOD
 *   r4 = ctx->major, r5 = ctx->minor
 *   for each rule:                    a rule that does not match jumps to the next
 *     if r2 != type goto next
 *     r1 = r3 & ~allowed; if r1 != 0 goto next      the access asked must be a subset
 *     if r4 != major goto next        (left out for '*')
 *     if r5 != minor goto next        (left out for '*')
 *     return 1                        allowed
 *   return 0                          anything else: EPERM
 *
 * Attached without BPF_F_ALLOW_MULTI, so attaching again replaces the program
 * (a pooled cgroup gets the next run's list, never both), and a cgroup below
 * cannot add a program of its own (bpf(2) BPF_PROG_ATTACH).
 */
namespace {

bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  bpf_insn i;
  std::memset(&i, 0, sizeof i);
  i.code = code;
  i.dst_reg = dst & 0xf;
  i.src_reg = src & 0xf;
  i.off = off;
  i.imm = imm;
  return i;
}
bpf_insn load_ctx_u32(uint8_t dst, int16_t off) { return insn(BPF_LDX | BPF_W | BPF_MEM, dst, BPF_REG_1, off, 0); }
bpf_insn alu32_imm(uint8_t op, uint8_t dst, int32_t imm) { return insn(BPF_ALU | op | BPF_K, dst, 0, 0, imm); }
bpf_insn mov64_reg(uint8_t dst, uint8_t src) { return insn(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0); }
bpf_insn mov64_imm(uint8_t dst, int32_t imm) { return insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm); }
bpf_insn jne_imm(uint8_t dst, int32_t imm, int16_t off) { return insn(BPF_JMP | BPF_JNE | BPF_K, dst, 0, off, imm); }
bpf_insn exit_insn() { return insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0); }

long sys_bpf(int cmd, bpf_attr *attr) { return syscall(SYS_bpf, cmd, attr, sizeof *attr); }

}  // namespace

static std::vector<bpf_insn> device_program(const std::vector<DeviceRule> &rules) {
  std::vector<bpf_insn> p = {
      load_ctx_u32(BPF_REG_2, offsetof(bpf_cgroup_dev_ctx, access_type)),
      alu32_imm(BPF_AND, BPF_REG_2, 0xffff),
      load_ctx_u32(BPF_REG_3, offsetof(bpf_cgroup_dev_ctx, access_type)),
      alu32_imm(BPF_RSH, BPF_REG_3, 16),
      load_ctx_u32(BPF_REG_4, offsetof(bpf_cgroup_dev_ctx, major)),
      load_ctx_u32(BPF_REG_5, offsetof(bpf_cgroup_dev_ctx, minor)),
  };
  for (const DeviceRule &r : rules) {
    int32_t allowed = (r.read ? BPF_DEVCG_ACC_READ : 0) | (r.write ? BPF_DEVCG_ACC_WRITE : 0) |
                      (r.mknod ? BPF_DEVCG_ACC_MKNOD : 0);
    std::vector<bpf_insn> block = {
        jne_imm(BPF_REG_2, r.block ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR, 0),
        mov64_reg(BPF_REG_1, BPF_REG_3),
        alu32_imm(BPF_AND, BPF_REG_1, ~allowed),
        jne_imm(BPF_REG_1, 0, 0),
    };
    if (r.major >= 0) block.push_back(jne_imm(BPF_REG_4, r.major, 0));
    if (r.minor >= 0) block.push_back(jne_imm(BPF_REG_5, r.minor, 0));
    block.push_back(mov64_imm(BPF_REG_0, 1));
    block.push_back(exit_insn());
    /* Each "goto next" lands just past this block: its offset counts the instructions after it. */
    for (size_t i = 0; i < block.size(); i++)
      if (block[i].code == (BPF_JMP | BPF_JNE | BPF_K)) block[i].off = static_cast<int16_t>(block.size() - i - 1);
    p.insert(p.end(), block.begin(), block.end());
  }
  p.push_back(mov64_imm(BPF_REG_0, 0));
  p.push_back(exit_insn());
  return p;
}

int set_device_program(int cgroup_fd, const std::vector<DeviceRule> *rules, std::string &error) {
  bpf_attr attr;
  std::memset(&attr, 0, sizeof attr);
  if (rules == nullptr) {
    /* No list: detach what a previous run left, so the cgroup allows every device again. */
    attr.target_fd = cgroup_fd;
    attr.attach_type = BPF_CGROUP_DEVICE;
    if (sys_bpf(BPF_PROG_DETACH, &attr) == 0 || errno == ENOENT) return 0;
    error = std::string("bpf(BPF_PROG_DETACH, BPF_CGROUP_DEVICE): ") + strerror(errno);
    return -1;
  }
  std::vector<bpf_insn> prog = device_program(*rules);
  static char log[8192];
  log[0] = 0;
  attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  attr.insns = reinterpret_cast<uint64_t>(prog.data());
  attr.insn_cnt = static_cast<uint32_t>(prog.size());
  attr.license = reinterpret_cast<uint64_t>("GPL");
  attr.log_buf = reinterpret_cast<uint64_t>(log);
  attr.log_size = sizeof log;
  attr.log_level = 1;
  int fd = static_cast<int>(sys_bpf(BPF_PROG_LOAD, &attr));
  if (fd < 0 && errno == ENOSPC) {
    /* The verifier's log did not fit; load again without it for the real answer. */
    attr.log_buf = 0;
    attr.log_size = 0;
    attr.log_level = 0;
    fd = static_cast<int>(sys_bpf(BPF_PROG_LOAD, &attr));
  }
  if (fd < 0) {
    int e = errno;
    error = std::string("bpf(BPF_PROG_LOAD, BPF_PROG_TYPE_CGROUP_DEVICE): ") + strerror(e);
    if (log[0]) error += std::string(" (verifier: ") + std::string(log, strnlen(log, 300)) + ")";
    errno = e;
    return -1;
  }
  std::memset(&attr, 0, sizeof attr);
  attr.target_fd = cgroup_fd;
  attr.attach_bpf_fd = fd;
  attr.attach_type = BPF_CGROUP_DEVICE;
  long r = sys_bpf(BPF_PROG_ATTACH, &attr);
  int e = errno;
  close(fd); /* the cgroup holds its own reference to an attached program */
  if (r < 0) {
    error = std::string("bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE): ") + strerror(e);
    errno = e;
    return -1;
  }
  return 0;
}
