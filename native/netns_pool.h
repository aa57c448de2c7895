/*
 * Network namespaces made ahead of time.
 *
 * Creating a network namespace is the dearest part of clone: 0.49 ms at p50
 * for all five namespaces against 0.18 ms without CLONE_NEWNET, measured on
 * this project's VM (every per-net subsystem initializes its state for the
 * new namespace). A thread of its own keeps a few fresh ones ready, each held
 * only by a file descriptor; a sandbox's child joins one with setns(2) and
 * the parent closes its descriptor, so each is used exactly once and dies
 * with its sandbox. When none is ready, clone makes one as before.
 * Each comes with its loopback up, as the child would leave it.
 */
#ifndef CAPSULE_NETNS_POOL_H
#define CAPSULE_NETNS_POOL_H

/* Read CAPSULE_NETNS_POOL (0: no pool). On the main thread, once: getenv races setenv elsewhere. */
void netns_pool_configure();

/*
 * A descriptor of a fresh network namespace (O_CLOEXEC) with lo up, or -1:
 * then use CLONE_NEWNET (and the child raises lo). Starts the pool's thread
 * on first use.
 */
int netns_pool_take();

/*
 * A sandbox's mount namespace let go off the event loop.
 *
 * When a sandbox's last process exits, the kernel tears its mount namespace
 * down before the parent is told (exit_task_namespaces comes before
 * exit_notify, kernel/exit.c), and unmounting waits for an RCU grace period
 * (namespace_unlock's synchronize_rcu_expedited, fs/namespace.c). Measured on
 * this project's VM (bench/exit-ns.c), a child with 4 mounts after pivot_root, from its _exit to
 * the parent's waitpid: 0.09-0.11 ms p50 and 3.8-6.7 ms p99 when the exit tears
 * the namespace down, 0.03 ms p50 and 0.15-0.21 ms p99 when the parent holds it.
 * So the parent holds a descriptor of each sandbox's mount namespace (spawn.cc)
 * and, once the sandbox is reaped, hands it here: a thread of its own closes it,
 * and the teardown and its wait happen there, after the result.
 *
 * The thread has a descriptor table of its own (unshare(CLONE_FILES), every
 * inherited copy closed), and the descriptor reaches it over a socket
 * (SCM_RIGHTS, unix(7)): from the moment of this call it is in no table of the
 * process, so /proc/self/fd shows nothing held. Takes ownership of `fd`; -1 is
 * ignored. Without the thread (it could not start) the descriptor is closed
 * here, as before.
 */
void ns_release_later(int fd);

#endif
