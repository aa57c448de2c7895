/*
 * The ordered list of everything capsule does to build a sandbox.
 *
 * This list is the one place step names are written. The C enum below, the
 * TypeScript union in src/steps.ts (generated from this file by
 * scripts/gen-steps.mjs), error messages, --explain and docs/internals.md all
 * use these tokens. Each step is named verb_object after the system call it
 * wraps, so a failure points straight at a man page.
 *
 * STEP(name, syscall, man page, why it is there)
 *
 * The order is the order they run in. Steps marked "init" run inside the
 * sandbox in capsule-init (native/init.c), after the privileged setup is over.
 */
#ifndef CAPSULE_STEPS_H
#define CAPSULE_STEPS_H

#define CAPSULE_STEPS(STEP)                                                                        \
  /* parent */                                                                                     \
  STEP(prepare, "pipe2", "pipe(2)", "make the pipes and buffers the child needs, before clone")   \
  STEP(set_cgroup_limits, "write", "cgroups(7)", "the sandbox's own cgroup: limits written, counters reset, before clone") \
  STEP(make_userns, "unshare", "user_namespaces(7)", "a user namespace owned by the sandbox's own host uid, mapping its uid and gid to host ones") \
  STEP(clone, "clone", "clone(2)", "start the child in new PID, network, mount, IPC, UTS namespaces") \
  /* child, privileged */                                                                          \
  STEP(set_pdeathsig, "prctl", "PR_SET_PDEATHSIG(2const)", "the sandbox dies if capsule dies")     \
  STEP(check_parent, "poll", "pidfd_open(2)", "close the race where capsule died before pdeathsig was set") \
  STEP(reset_signals, "rt_sigaction", "sigaction(2)", "undo Node's handlers and SIG_IGN (SIGPIPE) so the program starts clean") \
  STEP(map_user_ids, "write", "user_namespaces(7)", "rootless: map the sandbox's ids in the user namespace clone made: the caller's uid and gid alone (setgroups denied), or a subordinate range through newuidmap and newgidmap") \
  STEP(join_namespace, "setns", "setns(2)", "OCI: enter a namespace config.json names by path (a pod's network, IPC or UTS namespace)") \
  STEP(set_netns, "setns", "setns(2)", "join a fresh network namespace made ahead of time (only lo)") \
  STEP(set_loopback_up, "ioctl", "netdevice(7)", "lo up in the sandbox's own network namespace: 127.0.0.1 works, nothing routes out") \
  STEP(join_box, "setns", "setns(2)", "a session's command: enter the box's mount, network, IPC, UTS and PID namespaces through its PID 1's pidfd, all at once") \
  STEP(join_cgroup, "write", "cgroups(7)", "enter the sandbox's cgroups before anything untrusted runs") \
  STEP(unshare_cgroupns, "unshare", "cgroup_namespaces(7)", "a cgroup namespace rooted at the sandbox's cgroup: /proc/self/cgroup shows /, not the host's paths") \
  STEP(make_mounts_private, "mount", "mount_namespaces(7)", "stop mounts propagating back to the host") \
  STEP(open_mount_target, "openat2", "openat2(2)", "resolve a mount point inside the rootfs once, by descriptor, refusing any symlink on the way") \
  STEP(bind_rootfs, "move_mount", "open_tree(2)", "make the rootfs a mount point so pivot_root accepts it") \
  STEP(mount_overlay, "fsmount", "overlayfs(5)", "the root as an overlay of the read-only rootfs and a size-capped tmpfs, when a mount point is missing or overlay is asked: the host directory is never written") \
  STEP(make_mount_point, "mkdirat", "mkdir(2)", "a missing mount point, made in the overlay's tmpfs (or in the box) in a directory resolved by descriptor") \
  STEP(remount_root, "mount_setattr", "mount_setattr(2)", "read-only, nosuid, nodev root")         \
  STEP(make_path, "mkdirat", "mkdir(2)", "OCI: a missing mount point or working directory, made in the container's rootfs, resolved inside it") \
  STEP(mount_oci, "move_mount", "mount(8)", "OCI: one of config.json's mounts, its target resolved inside the rootfs, its options set before it is attached") \
  STEP(mount_proc, "fsmount", "proc(5)", "a /proc that shows only the sandbox's PID namespace")    \
  STEP(mask_proc_path, "move_mount", "proc(5)", "hide /proc entries that leak or control the host (kcore, keys, kpageflags, slabinfo, ...)") \
  STEP(remount_proc_path, "mount_setattr", "proc(5)", "read-only /proc/sys, /proc/irq, /proc/bus, /proc/fs, /proc/sysrq-trigger") \
  STEP(mount_sys, "fsmount", "sysfs(5)", "a read-only /sys when asked, /sys/firmware and powercap masked") \
  STEP(mount_dev, "fsmount", "tmpfs(5)", "a /dev with only the nodes the sandbox is given")        \
  STEP(make_dev_node, "mknodat", "mknod(2)", "the device nodes every sandbox gets: null, zero, full, random, urandom, tty") \
  STEP(bind_dev_node, "move_mount", "user_namespaces(7)", "rootless: the host's null, zero, full, random, urandom, tty bound in, as a user namespace cannot mknod") \
  STEP(make_device_node, "mknodat", "mknod(2)", "a host device the caller asked for (--device, --gpu), its mode the access asked") \
  STEP(make_oci_device, "mknodat", "mknod(2)", "OCI: a node of linux.devices, made in its directory resolved inside the rootfs") \
  STEP(link_dev, "symlink", "symlink(2)", "/dev/fd, /dev/stdin and friends")                       \
  STEP(mount_dev_pts, "fsmount", "pts(4)", "a private devpts instance, when asked")                \
  STEP(mount_dev_shm, "fsmount", "shm_overview(7)", "a private, size- and inode-capped, noexec /dev/shm, when asked") \
  STEP(remount_dev, "mount_setattr", "mount_setattr(2)", "freeze /dev once its nodes are in place") \
  STEP(mount_tmp, "fsmount", "tmpfs(5)", "a private, size- and inode-capped, writable /tmp")     \
  STEP(mount_box, "fsmount", "tmpfs(5)", "a writable, size- and inode-capped work directory owned by the sandbox's uid, when asked") \
  STEP(bind_mount, "move_mount", "move_mount(2)", "a host path the caller asked for, opened once before clone") \
  STEP(remount_bind, "mount_setattr", "mount_setattr(2)", "make a bind read-only, nosuid, nodev, private before it is attached") \
  STEP(write_sysctl, "write", "sysctl.d(5)", "OCI: a linux.sysctl value, written under the container's own /proc/sys") \
  STEP(remount_path_readonly, "mount_setattr", "mount_setattr(2)", "OCI: a read-only bind of each of linux.readonlyPaths over itself") \
  STEP(mask_path, "move_mount", "proc(5)", "OCI: /dev/null or an empty read-only tmpfs over each of linux.maskedPaths") \
  STEP(remount_root_readonly, "mount_setattr", "mount_setattr(2)", "OCI: root.readonly, once everything is mounted") \
  STEP(open_pty, "ioctl", "pts(4)", "with a terminal: a pty from the private devpts (ptmx, TIOCSPTLCK, TIOCGPTPEER), the slave the program's") \
  STEP(send_pty_master, "sendmsg", "unix(7)", "with a terminal: the pty's master to capsule over a socketpair made before clone (SCM_RIGHTS)") \
  STEP(wait_for_hooks, "read", "pipe(2)", "OCI: stop before pivot_root while capsule-runc runs the prestart and createRuntime hooks in the runtime's namespaces, the container's pid in their state") \
  STEP(run_create_container_hook, "execve", "execve(2)", "OCI: hooks.createContainer, in the container's namespaces before pivot_root (the path is the runtime's), the state on stdin") \
  STEP(pivot_root, "pivot_root", "pivot_root(2)", "make the rootfs / (chroot alone can be escaped)") \
  STEP(detach_old_root, "umount2", "umount(2)", "drop every path back to the host's filesystem")   \
  STEP(chroot_root, "chroot", "chroot(2)", "OCI without a mount namespace: the rootfs as this process's / (the host's mounts are shared, so no pivot_root)") \
  STEP(set_root_propagation, "mount", "mount_namespaces(7)", "OCI: linux.rootfsPropagation shared or unbindable, on the new root (pivot_root refuses a shared one)") \
  STEP(change_dir, "chdir", "chdir(2)", "the program's working directory inside the sandbox")      \
  STEP(set_hostname, "sethostname", "sethostname(2)", "a hostname of the sandbox's own (UTS namespace)") \
  STEP(new_session, "setsid", "setsid(2)", "no controlling terminal, so no TIOCSTI keystroke injection") \
  STEP(set_rlimits, "prlimit64", "getrlimit(2)", "per-process limits: CPU, file size, open files, stack, core") \
  STEP(set_userns, "setns", "setns(2)", "join that user namespace: the kernel counts per-user limits per sandbox") \
  STEP(arrange_fds, "dup3", "dup(2)", "put stdio and capsule's pipes at fixed numbers")            \
  STEP(close_fds, "close_range", "close_range(2)", "no inherited file descriptor leaks in")        \
  STEP(load_seccomp_early, "seccomp", "seccomp(2)", "OCI without noNewPrivileges: linux.seccomp loaded while the filter may still be installed (CAP_SYS_ADMIN), as runc does") \
  STEP(set_securebits, "prctl", "capabilities(7)", "uid 0 gets no capabilities back on exec")      \
  STEP(drop_bounding_caps, "prctl", "PR_CAPBSET_DROP(2const)", "no capability can ever be regained") \
  STEP(set_groups, "setgroups", "setgroups(2)", "no supplementary groups")                         \
  STEP(set_gid, "setresgid", "setresgid(2)", "the sandbox's group (nogroup)")                      \
  STEP(set_uid, "setresuid", "setresuid(2)", "the sandbox's user (nobody)")                        \
  STEP(drop_caps, "capset", "capset(2)", "empty effective, permitted, inheritable, ambient sets")   \
  STEP(set_caps, "capset", "capset(2)", "OCI: process.capabilities' effective, permitted, inheritable and ambient sets") \
  STEP(set_umask, "umask", "umask(2)", "OCI: process.user.umask") \
  STEP(set_no_new_privs, "prctl", "PR_SET_NO_NEW_PRIVS(2const)", "setuid binaries cannot raise privilege") \
  STEP(exec_init, "execveat", "execveat(2)", "become capsule-init, PID 1 of the sandbox")          \
  /* inside the sandbox, capsule-init */                                                           \
  STEP(receive_run, "recvmsg", "unix(7)", "a sandbox made ahead of time (createRunner): wait for its run's argv, environment and stdio, sent over a socketpair when the run is asked for (SCM_RIGHTS)") \
  STEP(fork_program, "fork", "fork(2)", "PID 1 stays to reap zombies and forward signals")         \
  STEP(set_controlling_tty, "ioctl", "TIOCSCTTY(2const)", "with a terminal: the program leads a new session (setsid) whose controlling terminal is its pty, in the foreground") \
  STEP(load_seccomp, "seccomp", "seccomp(2)", "filter the program's system calls, last before exec") \
  STEP(exec, "execve", "execve(2)", "run the program")

enum capsule_step {
#define CAPSULE_STEP_ENUM(name, syscall, man, why) STEP_##name,
  CAPSULE_STEPS(CAPSULE_STEP_ENUM)
#undef CAPSULE_STEP_ENUM
      STEP__COUNT
};

/*
 * The record a failing step writes to the error pipe. Fixed size, so the
 * parent reads it in one read(2) and the child never allocates.
 */
#define CAPSULE_DETAIL_MAX 240
struct capsule_error_record {
  unsigned int magic; /* CAPSULE_ERROR_MAGIC: guards against garbage on the pipe */
  unsigned int step;  /* enum capsule_step */
  int err;            /* errno, positive */
  unsigned int pad;
  char detail[CAPSULE_DETAIL_MAX]; /* a path or value that names what failed */
};
#define CAPSULE_ERROR_MAGIC 0x63617073u /* "caps" */

/*
 * What capsule-init reports when the program has ended, on the status pipe.
 */
struct capsule_init_report {
  unsigned int magic; /* CAPSULE_REPORT_MAGIC */
  int wait_status;    /* the program's status as waitpid(2) returns it */
  /*
   * getrusage(RUSAGE_CHILDREN) of capsule-init once everything is reaped: the
   * program and every descendant. capsule-init's own rusage would not do: it
   * began life on the Node process's memory (CLONE_VM), so its peak RSS is
   * Node's, and its CPU time includes the sandbox's setup.
   */
  long long user_cpu_us, system_cpu_us, max_rss_kib;
  /*
   * A system call the seccomp filter denies with a kill action: capsule-init
   * received it from the kernel as a user notification (seccomp_unotify(2)),
   * killed the sandbox and reports it here. violation_arch is the AUDIT_ARCH_*
   * of the call's ABI, 0 when there was none; violation_nr is its number.
   */
  unsigned int violation_arch;
  int violation_nr;
  /* For --explain: CLOCK_MONOTONIC when capsule-init began, and when the program was forked. */
  long long started_ns, forked_ns;
};
#define CAPSULE_REPORT_MAGIC 0x696e6974u /* "init" */
/* OCI modes (init.c): capsule-init has found the program and the container is created. */
#define CAPSULE_READY_MAGIC 0x72656479u /* "redy" */
/* In a ready record, wait_status is the container's pid when it is not capsule-init's (a joined PID namespace), else 0. */
/*
 * A sandbox made ahead (init.c receive_run): capsule-init has read its run, and the program
 * is forked only after this record. Without it, a capsule-init that died read nothing, so
 * nothing of the run began (src/ahead.ts launches it again).
 */
#define CAPSULE_RECEIVED_MAGIC 0x72637664u /* "rcvd" */

/*
 * A sandbox made ahead of time ("capsule-prepared", init.c): the one message
 * capsule sends it on its stdin, a SOCK_SEQPACKET socket, when the run is
 * asked for. The header, then `bytes` of NUL-terminated strings: the
 * program's argv (argc of them), then its environment (envc). Three
 * descriptors ride along (SCM_RIGHTS, unix(7)): the program's stdin, stdout
 * and stderr. At most CAPSULE_GO_MAX bytes of strings; a bigger run is
 * launched the ordinary way (src/ahead.ts).
 */
struct capsule_go_header {
  unsigned int magic; /* CAPSULE_GO_MAGIC */
  unsigned int argc, envc;
  unsigned int bytes;
};
#define CAPSULE_GO_MAGIC 0x676f2121u /* "go!!" */
#define CAPSULE_GO_MAX (64 * 1024)

/* The fixed descriptor numbers capsule-init finds its pipes at. */
#define CAPSULE_FD_ERROR 3
#define CAPSULE_FD_STATUS 4
#define CAPSULE_FD_SECCOMP 5 /* optional: a compiled BPF program, see native/seccomp.cc */
#define CAPSULE_FD_INIT_EXE 6 /* only until exec_init: closed on exec */
#define CAPSULE_FD_PARENT 7   /* capsule's pidfd, for check_parent: closed on exec */
#define CAPSULE_FD_FIRST_FREE 8

/*
 * The signal capsule sends capsule-init to end the run (wall time, output cap,
 * cancel): it kills everything, reaps, and still writes its report, so the
 * CPU time and peak memory of a killed run are known. Not forwarded.
 */
#define CAPSULE_SIG_TERMINATE 36 /* SIGRTMIN + 2 under glibc, which keeps 32 and 33 */
/* The signal `start` sends a created OCI container's PID 1 (init.c "capsule-oci"). */
#define CAPSULE_SIG_START 37 /* SIGRTMIN + 3 */
/*
 * The signal capsule-init's main thread sends its own watcher thread at the end of a run, to
 * end its last SECCOMP_IOCTL_NOTIF_RECV (init.c, drain_watcher). Never sent by capsule.
 */
#define CAPSULE_SIG_WAKE 38 /* SIGRTMIN + 4 */

#endif
