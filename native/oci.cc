/*
 * OCI runtime mode: a container as an OCI bundle's config.json describes it
 * (src/oci), built with the same machinery as capsule's own sandbox.
 *
 * What differs from capsule's own layout, and why:
 *   - The mounts are config.json's, in its order: the engine (podman,
 *     containerd) decides what the container sees. Each target is resolved
 *     inside the rootfs with symlinks followed but confined to it
 *     (RESOLVE_IN_ROOT, the guarantee runc gets from securejoin), missing
 *     mount points are made in the rootfs, which belongs to the container
 *     (make_path), and every mount gets its flags before it is attached.
 *   - The namespaces are the ones config.json lists: a type it leaves out is
 *     the host's, and one with a path is entered (a pod's network namespace).
 *   - The identity is process.user and process.capabilities; no_new_privs
 *     only when asked. Without it the filter must be loaded while the child
 *     still holds CAP_SYS_ADMIN, so before the identity change, as runc does
 *     (load_seccomp_early); with it, last.
 *   - No parent-death signal: the container outlives `capsule-runc create`,
 *     and the engine, not capsule, owns its life.
 * The user namespace, when config.json asks for one, is made before clone
 * with its maps (userns.cc) and joined late (set_userns), as capsule's own
 * sandbox does: every other namespace stays owned by the initial user
 * namespace, so the container's root holds no capability over its mounts
 * or network (docs/oci.md).
 */
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <linux/prctl.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>

#include "mounts.h"
#include "sys.h"

/* ------------------------------ parent half ------------------------------ */

namespace {

std::string relative(const std::string &inside) {
  size_t i = 0;
  while (i < inside.size() && inside[i] == '/') i++;
  return inside.substr(i);
}

class OciPlanner {
 public:
  OciPlanner(const SandboxOptions &o, Plan &p) : opts_(o), oci_(o.oci), plan_(p) {}

  /* An operation on `inside` (a path in the container), resolved from the rootfs, symlinks confined to it. */
  mount_op in_root(mount_op_kind kind, capsule_step step, const std::string &inside, const std::string &detail) {
    mount_op o = new_mount_op(kind, step, MOUNT_FD_ROOT);
    o.target = plan_.keep(inside);
    o.at = plan_.keep(relative(inside));
    o.detail = plan_.keep(detail);
    o.follow = 1;
    return o;
  }
  void add(const mount_op &o) { plan_.mount_ops.push_back(o); }

  void mkpath(const std::string &inside, bool dir, const std::string &detail) {
    mount_op p = in_root(OP_MKPATH, STEP_make_path, inside, detail);
    p.flags = dir ? MKPOINT_DIR : 0;
    add(p);
  }

  void run() {
    /*
     * make_mounts_private: nothing mounted from here on may propagate back to
     * the host. linux.rootfsPropagation "private" gives MS_PRIVATE; every other
     * value starts as MS_SLAVE, which still receives the host's mounts (runc's
     * default, rslave) but sends none; "shared" and "unbindable" are set on
     * the root once everything is mounted, so the container's mounts form a
     * peer group of their own (mount_namespaces(7), "shared subtrees").
     */
    if (!oci_.host_mounts) {
      mount_op priv = new_mount_op(OP_MOUNT, STEP_make_mounts_private, MOUNT_FD_HOST);
      priv.target = priv.at = priv.detail = "/";
      priv.flags = MS_REC | ((oci_.root_propagation & (MS_PRIVATE | MS_SHARED | MS_UNBINDABLE)) ? MS_PRIVATE : MS_SLAVE);
      add(priv);
    }

    /* bind_rootfs: as for capsule's own sandbox (mounts.cc), the descriptor every lookup starts from. */
    mount_op root = new_mount_op(OP_BIND, STEP_bind_rootfs, MOUNT_FD_HOST);
    root.target = root.at = root.detail = plan_.keep(opts_.rootfs);
    root.flags = BIND_CHECK_ROOTFS | BIND_SOURCE_DIR;
    root.recursive = 1;
    root.save = MOUNT_FD_ROOT;
    add(root);

    /*
     * Without a mount namespace (host_mounts) these mounts are the host's, and the host's "/"
     * is left as it is: only the rootfs's own bind, just attached, is made private, through
     * its descriptor, with everything below it (mount_setattr(2) AT_RECURSIVE). Every mount
     * config.json asks for is made under it, so none propagates to the host's other mount
     * namespaces, and `delete` detaches the whole tree with one umount2(MNT_DETACH). Its
     * attach under a shared parent did propagate (mount_namespaces(7)): those copies go when
     * it is unmounted, as runc's do.
     */
    if (oci_.host_mounts) {
      mount_op priv = new_mount_op(OP_SETATTR, STEP_make_mounts_private, MOUNT_FD_ROOT);
      priv.target = priv.detail = plan_.keep(opts_.rootfs + " (the rootfs's bind, in the host's mount namespace)");
      priv.at = "";
      priv.propagation = MS_PRIVATE | MS_REC;
      priv.recursive = 1;
      add(priv);
    }

    bool dev_mounted = false, pts_mounted = false;
    for (size_t i = 0; i < oci_.mounts.size(); i++) {
      const OciMount &m = oci_.mounts[i];
      const std::string detail = "mounts[" + std::to_string(i) + "] (" + m.destination + ")";
      /* make_path: the mount point; for a bind, a file or a directory as the source is (open_mount_sources). */
      mkpath(m.destination, m.type != "bind", detail);
      mount_op o = in_root(m.type == "bind" ? OP_BIND : OP_FSMOUNT, STEP_mount_oci, m.destination, detail);
      o.attr_set = m.attrs;
      o.propagation = m.propagation;
      if (m.type == "bind") {
        /*
         * The source is the engine's host path (podman's /etc/hosts, a volume), resolved here
         * once, then opened and cloned by the child in config.json's order (BIND_IN_CHILD):
         * a tree cloned before clone would be an older mount than the ones made before it in
         * the child, and /proc/self/mountinfo, in mount-id order, would list it out of order.
         * The mount point is a file or a directory as the source is.
         */
        char *real = realpath(m.source.c_str(), nullptr);
        struct stat st;
        if (real && stat(real, &st) == 0 && S_ISDIR(st.st_mode)) plan_.mount_ops.back().flags |= MKPOINT_DIR;
        o.source = plan_.keep(real ? real : m.source);
        free(real);
        o.flags = BIND_IN_CHILD;
        o.recursive = m.recursive ? 1 : 0;
      } else {
        o.fstype = plan_.keep(m.type);
        std::vector<const char *> list = {"source", plan_.keep(m.source.empty() ? m.type : m.source)};
        std::string data;
        for (const auto &kv : m.data) {
          list.push_back(plan_.keep(kv.first));
          list.push_back(kv.second.first ? plan_.keep(kv.second.second) : nullptr);
          data += (data.empty() ? "" : ",") + kv.first + (kv.second.first ? "=" + kv.second.second : "");
        }
        list.push_back(nullptr);
        list.push_back(nullptr);
        plan_.lists.push_back(std::move(list));
        o.config = plan_.lists.back().data();
        o.data = plan_.keep(data);
        /* The mounts later steps work in: the container's /proc, /dev and its devpts. */
        const std::string dest = "/" + relative(m.destination);
        if (dest == "/proc" && m.type == "proc") o.save = MOUNT_FD_PROC;
        if (dest == "/dev" && m.type == "tmpfs") o.save = MOUNT_FD_DEV, dev_mounted = true;
        if (dest == "/dev/pts" && m.type == "devpts") o.save = MOUNT_FD_PTS, pts_mounted = true;
      }
      add(o);
    }

    devices(dev_mounted, pts_mounted);

    /* The working directory exists before the program starts in it (runc makes it too). */
    if (!opts_.cwd.empty() && relative(opts_.cwd) != "") mkpath(opts_.cwd, true, opts_.cwd + " (process.cwd)");

    for (const auto &kv : oci_.sysctl) {
      std::string path = "proc/sys/";
      const bool slashed = kv.first.find('/') != std::string::npos;
      for (char c : kv.first) path += c == '.' && !slashed ? '/' : c;
      mount_op s = in_root(OP_SYSCTL, STEP_write_sysctl, "/" + path, "linux.sysctl " + kv.first);
      s.follow = 0; /* OP_SYSCTL refuses every symlink itself */
      s.source = plan_.keep(kv.second);
      add(s);
    }
    const uint64_t ro = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    for (size_t i = 0; i < oci_.readonly_paths.size(); i++) {
      const std::string &p = oci_.readonly_paths[i];
      mount_op b = in_root(OP_BIND, STEP_remount_path_readonly, p,
                           p + " (linux.readonlyPaths[" + std::to_string(i) + "])");
      b.recursive = 1;
      b.attr_set = MOUNT_ATTR_RDONLY;
      b.skip_missing = 1;
      add(b);
    }
    for (size_t i = 0; i < oci_.masked_paths.size(); i++) {
      const std::string &p = oci_.masked_paths[i];
      mount_op m = in_root(OP_MASK, STEP_mask_path, p, p + " (linux.maskedPaths[" + std::to_string(i) + "])");
      m.attr_set = ro;
      m.skip_missing = 1;
      add(m);
    }
    if (oci_.root_readonly) {
      mount_op r = in_root(OP_SETATTR, STEP_remount_root_readonly, "/", "root.readonly");
      r.attr_set = MOUNT_ATTR_RDONLY;
      add(r);
    }
  }

 private:
  /*
   * The runtime spec's default devices (config-linux.md, "Default Devices"),
   * then linux.devices. /dev/ptmx is the devpts's own, and /dev/fd and the
   * stdio links point into /proc, as runc makes them. Only in a /dev the
   * config mounted: a rootfs's own /dev is left as it is.
   */
  void devices(bool dev_mounted, bool pts_mounted) {
    struct Default {
      const char *path;
      uint32_t major, minor;
    };
    static const Default defaults[] = {{"/dev/null", 1, 3},    {"/dev/zero", 1, 5}, {"/dev/full", 1, 7},
                                       {"/dev/random", 1, 8}, {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0}};
    std::vector<OciDevice> all;
    if (dev_mounted) {
      for (const Default &d : defaults) {
        bool listed = false;
        for (const OciDevice &x : oci_.devices) listed |= "/" + relative(x.path) == d.path;
        if (!listed) all.push_back({d.path, 'c', d.major, d.minor, 0666, 0, 0});
      }
    }
    for (const OciDevice &d : oci_.devices) all.push_back(d);
    for (size_t i = 0; i < all.size(); i++) {
      const OciDevice &d = all[i];
      const std::string rel = relative(d.path);
      const size_t slash = rel.rfind('/');
      const std::string dir = slash == std::string::npos ? "" : rel.substr(0, slash);
      const std::string detail = d.path + (i + oci_.devices.size() >= all.size()
                                               ? " (linux.devices)"
                                               : " (a default device of the runtime spec)");
      if (!dir.empty()) mkpath("/" + dir, true, detail);
      mount_op n = in_root(OP_MKNODAT, STEP_make_oci_device, d.path, detail);
      n.source = plan_.keep(dir);
      n.data = plan_.keep(slash == std::string::npos ? rel : rel.substr(slash + 1));
      const uint32_t type = d.type == 'b' ? S_IFBLK : d.type == 'p' ? S_IFIFO : S_IFCHR;
      n.flags = type | (d.file_mode & 07777);
      /* The kernel's dev_t encoding (new_encode_dev in include/linux/kdev_t.h). */
      n.attr_set = (d.minor & 0xff) | (static_cast<uint64_t>(d.major) << 8) |
                   (static_cast<uint64_t>(d.minor & ~0xffu) << 12);
      n.uid = d.uid;
      n.gid = d.gid;
      add(n);
    }
    if (!dev_mounted) return;
    static const char *const links[][2] = {{"/proc/self/fd", "/dev/fd"},
                                           {"/proc/self/fd/0", "/dev/stdin"},
                                           {"/proc/self/fd/1", "/dev/stdout"},
                                           {"/proc/self/fd/2", "/dev/stderr"},
                                           {"pts/ptmx", "/dev/ptmx"}};
    for (const auto &link : links) {
      if (!pts_mounted && std::string(link[1]) == "/dev/ptmx") continue;
      mount_op l = new_mount_op(OP_SYMLINK, STEP_link_dev, MOUNT_FD_DEV);
      l.target = l.detail = link[1];
      l.at = link[1] + 5; /* below /dev */
      l.source = link[0];
      l.skip_missing = 1; /* not an open: an existing name (EEXIST) is an error all the same */
      add(l);
    }
  }

  const SandboxOptions &opts_;
  const OciOptions &oci_;
  Plan &plan_;
};

}  // namespace

void plan_oci(const SandboxOptions &opts, Plan &plan) {
  if (opts.join_pidfd < 0) OciPlanner(opts, plan).run();
  const OciOptions &o = opts.oci;
  oci_child &c = plan.oci;
  c = oci_child{};
  plan.oci_join_fds.clear();
  plan.oci_join_types.clear();
  for (const auto &j : o.joins) {
    if (j.first == CLONE_NEWUSER) continue; /* joined late, as set_userns (spawn.cc) */
    plan.oci_join_types.push_back(j.first);
    plan.oci_join_fds.push_back(j.second);
  }
  c.join_fds = plan.oci_join_fds.data();
  c.join_types = plan.oci_join_types.data();
  c.n_join = static_cast<unsigned>(plan.oci_join_fds.size());
  c.new_netns = (o.new_namespaces & CLONE_NEWNET) != 0;
  c.new_cgroupns = (o.new_namespaces & CLONE_NEWCGROUP) != 0;
  c.set_hostname = o.set_hostname;
  c.no_new_privs = o.no_new_privs;
  c.umask = o.umask;
  c.root_propagation = o.root_propagation & (MS_SHARED | MS_UNBINDABLE) ? o.root_propagation : 0;
  c.host_mounts = o.host_mounts;
  c.join_root_fd = o.join_root_fd;
  /* The hook point and hooks.createContainer: argv and envp as execve(2) takes them, built here. */
  c.hook_read_fd = o.hook_read_fd;
  c.hook_write_fd = o.hook_write_fd;
  c.hook_close_fds = o.hook_close_fds.data();
  c.n_hook_close_fds = static_cast<unsigned>(o.hook_close_fds.size());
  plan.oci_hooks.clear();
  for (size_t i = 0; i < o.create_container_hooks.size(); i++) {
    const OciOptions::Hook &h = o.create_container_hooks[i];
    auto list = [&](const std::vector<std::string> &v) {
      std::vector<const char *> l;
      for (const auto &x : v) l.push_back(plan.keep(x));
      l.push_back(nullptr);
      plan.lists.push_back(std::move(l));
      return const_cast<char *const *>(plan.lists.back().data());
    };
    oci_hook hook{};
    hook.path = plan.keep(h.path);
    hook.argv = list(h.argv);
    hook.envp = list(h.env);
    hook.timeout = h.timeout;
    hook.detail = plan.keep("hooks.createContainer[" + std::to_string(i) + "] " + h.path);
    plan.oci_hooks.push_back(hook);
  }
  c.hooks = plan.oci_hooks.data();
  c.n_hooks = static_cast<unsigned>(plan.oci_hooks.size());
  if (c.hook_read_fd >= 0) {
    plan.oci_hook_state.assign(1u << 20, 0); /* the state JSON: 1 MiB, annotations and all */
    plan.oci_hook_stack.assign(64u << 10, 0);
  }
  c.hook_state = plan.oci_hook_state.data();
  c.hook_state_cap = static_cast<unsigned>(plan.oci_hook_state.size());
  c.hook_stack = plan.oci_hook_stack.data();
  c.hook_stack_size = plan.oci_hook_stack.size();
  c.cap_bounding = o.caps[0];
  c.cap_effective = o.caps[1];
  c.cap_permitted = o.caps[2];
  c.cap_inheritable = o.caps[3];
  c.cap_ambient = o.caps[4];
  c.groups = o.groups.data();
  c.n_groups = static_cast<unsigned>(o.groups.size());
}

/* ------------------------------- child half ------------------------------- */

namespace {

void load_filter(const struct child_config *cfg, enum capsule_step step) {
  const struct oci_child *oci = cfg->oci;
  if (oci->filter_len == 0) return;
  struct sock_fprog prog = {oci->filter_len,
                            const_cast<struct sock_filter *>(static_cast<const struct sock_filter *>(oci->filter))};
  long r = SYS3(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
  if (sys_failed(r)) child_fail(cfg, step, r, "seccomp(SECCOMP_SET_MODE_FILTER) of linux.seccomp");
  child_trace(cfg, step, -1);
}

/*
 * process.user and process.capabilities, in runc's order (capabilities(7)):
 *
 *   drop_bounding_caps  the bounding set to process.capabilities.bounding; needs CAP_SETPCAP
 *   PR_SET_KEEPCAPS     so the permitted set survives the change to a non-zero uid
 *   set_groups, set_gid, set_uid
 *   set_caps            effective, permitted, inheritable; then ambient (each must be
 *                       permitted and inheritable, PR_CAP_AMBIENT(2const))
 *   set_umask, set_no_new_privs, load_seccomp
 *
 * A uid 0 program gets the bounding set back on execve whatever the other
 * sets say, as under runc: for root the bounding set is what counts.
 */
void oci_identity(const struct child_config *cfg) {
  const struct oci_child *oci = cfg->oci;
  if (!oci->no_new_privs) load_filter(cfg, STEP_load_seccomp_early);

  long r;
  for (int cap = 0; cap <= cfg->last_cap; cap++) {
    if (oci->cap_bounding & (1ull << cap)) continue;
    r = SYS5(__NR_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0);
    if (sys_failed(r)) child_fail(cfg, STEP_drop_bounding_caps, r, "PR_CAPBSET_DROP");
  }
  child_trace(cfg, STEP_drop_bounding_caps, -1);

  r = SYS5(__NR_prctl, PR_SET_KEEPCAPS, 1, 0, 0, 0);
  if (sys_failed(r)) child_fail(cfg, STEP_set_caps, r, "PR_SET_KEEPCAPS");
  if (!cfg->rootless) {
    r = SYS2(__NR_setgroups, oci->n_groups, oci->groups);
    if (sys_failed(r)) child_fail(cfg, STEP_set_groups, r, "setgroups (process.user.additionalGids)");
    child_trace(cfg, STEP_set_groups, -1);
  }
  r = SYS3(__NR_setresgid, cfg->gid, cfg->gid, cfg->gid);
  if (sys_failed(r)) child_fail(cfg, STEP_set_gid, r, "setresgid (process.user.gid)");
  child_trace(cfg, STEP_set_gid, -1);
  r = SYS3(__NR_setresuid, cfg->uid, cfg->uid, cfg->uid);
  if (sys_failed(r)) child_fail(cfg, STEP_set_uid, r, "setresuid (process.user.uid)");
  child_trace(cfg, STEP_set_uid, -1);
  r = SYS5(__NR_prctl, PR_SET_KEEPCAPS, 0, 0, 0, 0);
  if (sys_failed(r)) child_fail(cfg, STEP_set_caps, r, "PR_SET_KEEPCAPS");

  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  for (int i = 0; i < 2; i++) {
    data[i].effective = static_cast<uint32_t>(oci->cap_effective >> (32 * i));
    data[i].permitted = static_cast<uint32_t>(oci->cap_permitted >> (32 * i));
    data[i].inheritable = static_cast<uint32_t>(oci->cap_inheritable >> (32 * i));
  }
  r = SYS2(__NR_capset, &hdr, data);
  if (sys_failed(r)) child_fail(cfg, STEP_set_caps, r, "capset (process.capabilities)");
  r = SYS5(__NR_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  if (sys_failed(r)) child_fail(cfg, STEP_set_caps, r, "PR_CAP_AMBIENT_CLEAR_ALL");
  for (int cap = 0; cap <= cfg->last_cap; cap++) {
    if (!(oci->cap_ambient & (1ull << cap))) continue;
    r = SYS5(__NR_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
    if (sys_failed(r)) child_fail(cfg, STEP_set_caps, r, "PR_CAP_AMBIENT_RAISE (process.capabilities.ambient)");
  }
  child_trace(cfg, STEP_set_caps, -1);

  SYS1(__NR_umask, oci->umask >= 0 ? oci->umask : 022);
  child_trace(cfg, STEP_set_umask, -1);

  if (oci->no_new_privs) {
    r = SYS5(__NR_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    if (sys_failed(r)) child_fail(cfg, STEP_set_no_new_privs, r, "PR_SET_NO_NEW_PRIVS");
    child_trace(cfg, STEP_set_no_new_privs, -1);
    load_filter(cfg, STEP_load_seccomp);
  }
}

/* new_session, and the hostname when the container has a UTS namespace of its own (signals.cc). */
void oci_session(const struct child_config *cfg) {
  long r;
  if (cfg->oci->set_hostname) {
    r = SYS2(__NR_sethostname, cfg->hostname, c_strlen(cfg->hostname));
    if (sys_failed(r)) child_fail(cfg, STEP_set_hostname, r, "hostname");
    child_trace(cfg, STEP_set_hostname, -1);
  }
  r = SYS0(__NR_setsid);
  if (sys_failed(r)) child_fail(cfg, STEP_new_session, r, "setsid");
  child_trace(cfg, STEP_new_session, -1);
}

/*
 * /dev/console with a terminal (config-linux.md, "Default Devices"): the
 * pty's slave bound over an empty file in a /dev the config mounted, as
 * runc does: a clone of the slave's own mount entry (open_tree(2) on its
 * descriptor), never a name looked up again.
 */
void bind_console(const struct child_config *cfg, int slave) {
  const int dev = cfg->mount_fds[MOUNT_FD_DEV];
  if (dev < 0) return;
  long r = SYS4(__NR_openat, dev, "console", O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (!sys_failed(r)) SYS1(__NR_close, r);
  struct open_how how = {O_PATH | O_CLOEXEC, 0, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
  long target = sys_failed(r) ? r : SYS4(__NR_openat2, dev, "console", &how, sizeof how);
  long tree = sys_failed(target) ? target : SYS3(__NR_open_tree, slave, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
  if (!sys_failed(tree))
    r = SYS5(__NR_move_mount, tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
  else
    r = tree;
  if (!sys_failed(tree)) SYS1(__NR_close, tree);
  if (!sys_failed(target)) SYS1(__NR_close, target);
  if (sys_failed(r)) child_fail(cfg, STEP_open_pty, r, "/dev/console (the terminal's slave bound over it)");
}

/*
 * chroot_root: fchdir(2) to the directory and chroot(2) there, "." being the only path used.
 * Only for a container that shares the host's mount namespace (config.json has no mount
 * namespace): pivot_root(2) would move the root of every process in it. chroot(2) changes
 * this process's root alone, and is not a confinement against a process that holds
 * CAP_SYS_CHROOT (chroot(2), NOTES): src/oci/spec.ts warns of that when it reads such a config.
 */
void enter_root_by_fd(const struct child_config *cfg, int fd, const char *what) {
  long r = SYS1(__NR_fchdir, fd);
  if (!sys_failed(r)) r = SYS1(__NR_chroot, ".");
  if (sys_failed(r)) child_fail(cfg, STEP_chroot_root, r, what);
  child_trace(cfg, STEP_chroot_root, -1);
}

/* read(2) or write(2) all of n bytes, or the error; EINTR is retried (a signal may be pending). */
long read_full(int fd, char *p, unsigned long n) {
  unsigned long done = 0;
  while (done < n) {
    long r = SYS3(__NR_read, fd, p + done, n - done);
    if (r == -EINTR) continue;
    if (r <= 0) return r == 0 ? -EPIPE : r;
    done += static_cast<unsigned long>(r);
  }
  return 0;
}
long write_full(int fd, const char *p, unsigned long n) {
  unsigned long done = 0;
  while (done < n) {
    long r = SYS3(__NR_write, fd, p + done, n - done);
    if (r == -EINTR) continue;
    if (r < 0) return r;
    done += static_cast<unsigned long>(r);
  }
  return 0;
}

/* What a hook's clone gets: its memory is ours (CLONE_VM), so it reports exec's error here. */
struct hook_exec {
  const struct oci_hook *hook;
  int stdin_fd;
  long exec_err;
};

/* spawn.cc: clone3(2) whose child runs fn(arg) on the stack clone_args gives, then exits. */
extern "C" long capsule_clone3(struct clone_args *args, size_t size, int (*fn)(void *), void *arg);

/* The hook's side of clone: the state on stdin, then execve(2) by the runtime's path. */
int hook_exec_child(void *arg) {
  struct hook_exec *a = static_cast<struct hook_exec *>(arg);
  long r = SYS3(__NR_dup3, a->stdin_fd, 0, 0); /* dup3 without O_CLOEXEC: stdin stays open across exec */
  if (!sys_failed(r)) r = SYS3(__NR_execve, a->hook->path, a->hook->argv, a->hook->envp);
  a->exec_err = r;
  for (;;) SYS1(__NR_exit, 127);
}

/* "... exited with N" or "... was killed by signal N", for a hook's wait status. */
void hook_status_detail(char *out, unsigned cap, const char *what, int status) {
  const char *how = (status & 0x7f) == 0 ? " exited with " : " was killed by signal ";
  unsigned code = (status & 0x7f) == 0 ? (static_cast<unsigned>(status) >> 8) & 0xff : status & 0x7f;
  unsigned n = 0;
  for (const char *p = what; *p && n + 1 < cap; p++) out[n++] = *p;
  for (const char *p = how; *p && n + 1 < cap; p++) out[n++] = *p;
  char digits[4];
  unsigned d = 0;
  do digits[d++] = static_cast<char>('0' + code % 10), code /= 10;
  while (code && d < sizeof digits);
  while (d && n + 1 < cap) out[n++] = digits[--d];
  out[n] = 0;
}

/*
 * The hook point, before pivot_root (config.md "POSIX-platform Hooks", runtime.md "Lifecycle"
 * steps 4-6): the container's namespaces and mounts are made, the rootfs not yet its root.
 *
 * wait_for_hooks: tell capsule-runc the container's pid, as the host sees it: readlink(2) of
 * /proc/self, which is still the host's procfs here (the container's /proc is mounted in the
 * rootfs, not yet at /). capsule-runc runs the prestart and createRuntime hooks, which must be
 * in the runtime's namespaces, and answers with the state JSON (4 bytes of length, then the
 * JSON); end of file instead means a hook failed, and create stops here.
 *
 * run_create_container_hook: each of hooks.createContainer, in order, in the container's
 * namespaces and cgroup, as root with every capability the child still has (the identity
 * comes later, as runc runs them). The path resolves in the runtime's mount namespace, which
 * this namespace still shows before pivot_root. The state is on its stdin (a memfd, so its
 * size does not matter); clone3(2) with CLONE_VM|CLONE_VFORK on a stack of its own, and
 * CLONE_PIDFD to wait for it with `timeout` (poll(2) on the pidfd, then SIGKILL).
 */
void oci_hooks(const struct child_config *cfg) {
  const struct oci_child *oci = cfg->oci;
  if (oci->hook_read_fd < 0) return;
  for (unsigned i = 0; i < oci->n_hook_close_fds; i++) SYS1(__NR_close, oci->hook_close_fds[i]);
  char pid[24];
  long r = SYS4(__NR_readlinkat, AT_FDCWD, "/proc/self", pid, sizeof pid - 1);
  if (sys_failed(r)) child_fail(cfg, STEP_wait_for_hooks, r, "readlink /proc/self (the container's pid on the host)");
  pid[r] = '\n';
  r = write_full(oci->hook_write_fd, pid, static_cast<unsigned long>(r) + 1);
  SYS1(__NR_close, oci->hook_write_fd);
  if (sys_failed(r)) child_fail(cfg, STEP_wait_for_hooks, r, "the container's pid to capsule-runc");
  uint32_t len = 0;
  r = read_full(oci->hook_read_fd, reinterpret_cast<char *>(&len), sizeof len);
  if (r == -EPIPE)
    child_fail(cfg, STEP_wait_for_hooks, -ECANCELED, "a prestart or createRuntime hook failed: capsule-runc says which");
  if (!sys_failed(r) && len > oci->hook_state_cap) r = -E2BIG;
  if (!sys_failed(r)) r = read_full(oci->hook_read_fd, oci->hook_state, len);
  SYS1(__NR_close, oci->hook_read_fd);
  if (sys_failed(r)) child_fail(cfg, STEP_wait_for_hooks, r, "the container's state from capsule-runc");
  child_trace(cfg, STEP_wait_for_hooks, -1);

  for (unsigned i = 0; i < oci->n_hooks; i++) {
    const struct oci_hook *hook = &oci->hooks[i];
    long memfd = SYS2(__NR_memfd_create, "capsule-hook-state", MFD_CLOEXEC);
    if (!sys_failed(memfd)) r = write_full(static_cast<int>(memfd), oci->hook_state, len);
    if (!sys_failed(memfd) && !sys_failed(r)) r = SYS3(__NR_lseek, memfd, 0, SEEK_SET);
    if (sys_failed(memfd) || sys_failed(r))
      child_fail(cfg, STEP_run_create_container_hook, sys_failed(memfd) ? memfd : r, "the state for the hook's stdin");
    struct hook_exec a = {hook, static_cast<int>(memfd), 0};
    int pidfd = -1;
    /* clone3(2) through spawn.cc's capsule_clone3: the raw system call, the hook's task on a stack of its own. */
    struct clone_args args;
    for (unsigned long k = 0; k < sizeof args; k++) reinterpret_cast<char *>(&args)[k] = 0; /* no memset: see sys.h */
    args.flags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD;
    args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
    args.exit_signal = SIGCHLD;
    args.stack = reinterpret_cast<uint64_t>(oci->hook_stack);
    args.stack_size = oci->hook_stack_size;
    long pid = capsule_clone3(&args, sizeof args, hook_exec_child, &a);
    SYS1(__NR_close, memfd);
    if (sys_failed(pid)) child_fail(cfg, STEP_run_create_container_hook, pid, hook->detail);
    if (a.exec_err) {
      SYS4(__NR_wait4, pid, 0, 0, 0);
      child_fail(cfg, STEP_run_create_container_hook, a.exec_err, hook->detail);
    }
    if (hook->timeout) {
      struct pollfd p = {pidfd, POLLIN, 0};
      struct timespec t = {static_cast<long>(hook->timeout), 0};
      do r = SYS5(__NR_ppoll, &p, 1, &t, 0, 0);
      while (r == -EINTR);
      if (r == 0) {
        SYS4(__NR_pidfd_send_signal, pidfd, SIGKILL, 0, 0);
        SYS4(__NR_wait4, pid, 0, 0, 0);
        child_fail(cfg, STEP_run_create_container_hook, -ETIMEDOUT, hook->detail);
      }
    }
    int status = 0;
    do r = SYS4(__NR_wait4, pid, &status, 0, 0);
    while (r == -EINTR);
    SYS1(__NR_close, pidfd);
    if (sys_failed(r)) child_fail(cfg, STEP_run_create_container_hook, r, hook->detail);
    if (status != 0) {
      char detail[CAPSULE_DETAIL_MAX];
      hook_status_detail(detail, sizeof detail, hook->detail, status);
      child_fail(cfg, STEP_run_create_container_hook, 0, detail);
    }
    child_trace(cfg, STEP_run_create_container_hook, -1);
  }
}

/* child_pivot_root's counterpart without a mount namespace of the container's own. */
void child_chroot_root(const struct child_config *cfg) {
  enter_root_by_fd(cfg, cfg->mount_fds[MOUNT_FD_ROOT], cfg->rootfs);
  child_enter_cwd(cfg);
}

}  // namespace

/*
 * An OCI container's child, as child.cc's table of contents with config.json's
 * choices. The order is capsule's own: namespaces, cgroup, mounts, pivot_root,
 * then identity; exec_init leaves capsule-init ("capsule-oci") waiting for start.
 */
void child_oci(const struct child_config *cfg) {
  const struct oci_child *oci = cfg->oci;
  child_reset_signals(cfg); /* no set_pdeathsig: the container outlives `create` */

  /* join_namespace: a namespace config.json names by path, before anything is done in it (setns(2)). */
  for (unsigned i = 0; i < oci->n_join; i++) {
    long r = SYS2(__NR_setns, oci->join_fds[i], oci->join_types[i]);
    if (sys_failed(r)) child_fail(cfg, STEP_join_namespace, r, "linux.namespaces[].path");
  }
  if (oci->n_join) child_trace(cfg, STEP_join_namespace, -1);

  if (oci->new_netns) child_set_netns(cfg);
  child_join_cgroups(cfg);
  if (oci->new_cgroupns) child_unshare_cgroupns(cfg);
  child_mounts(cfg);
  const int tty_fd = child_open_pty(cfg);
  if (tty_fd >= 0) bind_console(cfg, tty_fd);
  oci_hooks(cfg);
  if (oci->host_mounts)
    child_chroot_root(cfg);
  else
    child_pivot_root(cfg);
  /*
   * set_root_propagation: "shared" or "unbindable" from linux.rootfsPropagation, on the new
   * root once it is one: pivot_root(2) refuses a shared new root, so runc sets it here too.
   * Everything was made private or slave first (make_mounts_private), so a shared root is
   * a peer group of the container's own, never the host's.
   */
  if (oci->root_propagation) {
    long r = SYS5(__NR_mount, 0, "/", 0, oci->root_propagation, 0);
    if (sys_failed(r)) child_fail(cfg, STEP_set_root_propagation, r, "linux.rootfsPropagation");
    child_trace(cfg, STEP_set_root_propagation, -1);
  }
  oci_session(cfg);
  child_rlimits(cfg);
  child_set_userns(cfg);
  child_fds(cfg, tty_fd);
  oci_identity(cfg);
  child_exec_init(cfg);
}

/*
 * `exec` into a container: child.cc's join_box with the container's
 * identity. setns(2) through the pidfd of its PID 1 enters its mount, network,
 * IPC, UTS, PID and cgroup namespaces at once (one the container shares with
 * the host is entered as well: it is ours already). A terminal comes from the
 * container's own devpts, looked up once inside its root.
 */
void child_oci_join(const struct child_config *cfg) {
  child_reset_signals(cfg);
  long r = SYS2(__NR_setns, cfg->join_pidfd,
                CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID | CLONE_NEWCGROUP);
  if (sys_failed(r)) child_fail(cfg, STEP_join_box, r, "the container's PID 1 (pidfd)");
  child_trace(cfg, STEP_join_box, -1);
  /*
   * A container without a mount namespace shares ours, and setns(2) of a mount namespace puts
   * the caller at that namespace's root, the host's: its root is a chroot, entered again here
   * through the descriptor of its PID 1's /proc/PID/root, opened by the caller before clone.
   */
  if (cfg->oci->join_root_fd >= 0) enter_root_by_fd(cfg, cfg->oci->join_root_fd, "the container's root (/proc/PID/root)");
  child_join_cgroups(cfg);
  r = SYS1(__NR_chdir, cfg->cwd);
  if (sys_failed(r)) child_fail(cfg, STEP_change_dir, r, cfg->cwd);
  child_trace(cfg, STEP_change_dir, -1);
  r = SYS0(__NR_setsid);
  if (sys_failed(r)) child_fail(cfg, STEP_new_session, r, "setsid");
  child_trace(cfg, STEP_new_session, -1);
  int tty_fd = -1;
  if (cfg->tty_socket >= 0) {
    struct open_how how = {O_PATH | O_DIRECTORY | O_CLOEXEC, 0, RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
    long pts = SYS4(__NR_openat2, AT_FDCWD, "/dev/pts", &how, sizeof how);
    if (sys_failed(pts)) child_fail(cfg, STEP_open_pty, pts, "/dev/pts in the container");
    cfg->mount_fds[MOUNT_FD_PTS] = static_cast<int>(pts);
    tty_fd = child_open_pty(cfg);
    SYS1(__NR_close, pts);
    cfg->mount_fds[MOUNT_FD_PTS] = -1;
  }
  child_rlimits(cfg);
  child_set_userns(cfg);
  child_fds(cfg, tty_fd);
  oci_identity(cfg);
  child_exec_init(cfg);
}
