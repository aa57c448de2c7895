/*
 * User namespaces made ahead of time, each with the host id it is leased for.
 *
 * Why: a sandbox's own host uid (`hostIds: 'unique'`) costs a user namespace per run, made
 * before clone by a helper task (userns.cc, step make_userns): 0.09-0.10 ms on the run's path
 * at p50, and one of the steps a run waits longest on when the two CPUs are busy (a 2% tail
 * of serial runs spent 0.7 ms in it on average, once 12 ms: docs/performance.md). A thread of
 * its own keeps a few ready: it leases the next host id (host_id_claim, the same flock lease
 * as the main thread's) and makes the namespace for it with the same helper, so a run that
 * finds one ready takes both and skips make_userns.
 *
 * Nothing is shared: each entry is one lease and one namespace, handed out once; the run's
 * child joins the namespace (set_userns) and the lease ends when the run does, as with a
 * lease taken on the main thread. Entries are made for one shape (lock directory, id range,
 * inside uid and gid); a take for another shape ends them first, so ids held ahead never
 * stand in the way of a run. The thread starts on the second take of a shape, so a process
 * that runs one sandbox (every `capsule run`) makes none it would not use. Small ranges
 * (under kMinRange ids) are never pooled: there, ids held ahead could leave another process
 * without one. CAPSULE_USERNS_POOL=0 turns the pool off.
 */
#ifndef CAPSULE_USERNS_POOL_H
#define CAPSULE_USERNS_POOL_H

#include <stdint.h>

#include <string>
#include <vector>

struct UsernsPoolKey {
  std::string dir;
  uint32_t first = 0, count = 0, inside_uid = 0, inside_gid = 0;
  bool operator==(const UsernsPoolKey &o) const {
    return dir == o.dir && first == o.first && count == o.count && inside_uid == o.inside_uid &&
           inside_gid == o.inside_gid;
  }
};

struct UsernsPoolEntry {
  uint32_t id = 0;
  int lease_fd = -1;  /* the flock'd /run/capsule/ids/ID: host_id_release ends it */
  int userns_fd = -1; /* /proc/HELPER/ns/user of the namespace owned by host uid `id` */
};

/* Read CAPSULE_USERNS_POOL (0: no pool). On the main thread, once. */
void userns_pool_configure();

/*
 * A ready entry of this shape, moved to `out` (the caller owns both descriptors), or false:
 * then lease and make them inline. Entries of another shape are ended first.
 */
bool userns_pool_take(const UsernsPoolKey &key, UsernsPoolEntry &out);

/* The descriptors the pool holds now (for leak checks). */
std::vector<int> userns_pool_fds();

/*
 * End every ready entry; with `stop`, make no more (the process is exiting), else only until
 * the next take (a run ran out of descriptors: these are given back).
 */
void userns_pool_drain(bool stop);

#endif
