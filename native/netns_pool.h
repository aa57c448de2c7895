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
 * Start the pool's thread now, before the first take (a process about to run its first
 * sandbox: the namespace is made while it prepares the rest, and that run can have it).
 */
void netns_pool_start();

/*
 * A descriptor of a fresh network namespace (O_CLOEXEC) with lo up, or -1:
 * then use CLONE_NEWNET (and the child raises lo). Starts the pool's thread
 * on first use.
 */
int netns_pool_take();

#endif
