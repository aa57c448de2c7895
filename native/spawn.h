/*
 * The parent half of a sandbox launch: prepare, clone, and learn whether the
 * child reached capsule-init. Called on a libuv pool thread (addon.cc).
 */
#ifndef CAPSULE_SPAWN_H
#define CAPSULE_SPAWN_H

#include "mounts.h"

/* Process-wide state, set up once by configure() in addon.cc. */
struct Runtime {
  int init_fd = -1;      /* sealed memfd holding capsule-init */
  int self_pidfd = -1;   /* pidfd of this process, for check_parent */
  int last_cap = 40;     /* /proc/sys/kernel/cap_last_cap */
};

struct SpawnResult {
  bool ok = false;
  capsule_error_record error{}; /* when !ok: step, errno, detail */
  int pid = -1;
  int pidfd = -1;
  int error_fd = -1;  /* read end: a late record means the program's exec failed */
  int status_fd = -1; /* read end: capsule-init's report */
  int stdio[3] = {-1, -1, -1}; /* parent ends of the pipes we made, -1 where the caller passed an fd */
  int tty_master = -1; /* with a terminal: the pty's master (close-on-exec), for capsule's side */
  int go_fd = -1; /* made ahead (prepared): capsule's end of the socketpair the run is sent on */
  /* CLOCK_MONOTONIC just before clone and when it returned (capsule-init exec'd), for --explain. */
  uint64_t clone_start_ns = 0, clone_end_ns = 0;
  /* The same around make_userns, 0 when there was none. */
  uint64_t userns_start_ns = 0, userns_end_ns = 0;
  bool parent_pidfd_thread = false; /* check_parent polled the cloning thread's pidfd, not the process's */
  /* OCI with a joined PID namespace: the container's process, which capsule-init forked and left (init.c); 0 otherwise. */
  int container_pid = 0;
};

/*
 * The pidfd the child's check_parent polls: this thread's own (PIDFD_THREAD)
 * where the kernel has it, `process_pidfd` otherwise (signals.cc). Owned by
 * this thread: never close it. `thread` says which.
 */
int parent_pidfd(int process_pidfd, bool &thread);

/* CLOCK_MONOTONIC in ns. */
uint64_t monotonic_ns();

void spawn_sandbox(const Runtime &rt, const SandboxOptions &opts, Plan &plan, SpawnResult &out);

/* Read one fixed-size record from a non-blocking pipe; false if none is there. */
bool read_record(int fd, void *buf, unsigned long size);

#endif
