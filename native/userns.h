/*
 * A host uid and gid of the sandbox's own, through a user namespace
 * (user_namespaces(7)): parent half (userns_make, before clone), child half
 * (child_set_userns in config.h), and the leases that keep a host id unique
 * across every capsule process on the machine (host_id_claim).
 */
#ifndef CAPSULE_USERNS_H
#define CAPSULE_USERNS_H

#include <stdint.h>

#include <string>

namespace Napi {
class Env;
class Object;
}  // namespace Napi

/*
 * A user namespace owned by host uid `host_uid` (and group `host_gid`) that
 * maps the sandbox's `inside_uid` to `host_uid` and `inside_gid` to
 * `host_gid`, nothing else. Returns an O_CLOEXEC descriptor of it, or -1 with
 * `err` (errno) and `what` (the operation that failed). Runs on the thread
 * that will clone the sandbox, before clone.
 */
int userns_make(uint32_t inside_uid, uint32_t inside_gid, uint32_t host_uid, uint32_t host_gid, int &err,
                std::string &what);

/*
 * The same with whole maps (an OCI container's linux.uidMappings and
 * gidMappings, "inside outside count" lines), owned by host_uid/host_gid.
 */
int userns_make_maps(const std::string &uid_map, const std::string &gid_map, uint32_t host_uid, uint32_t host_gid,
                     int &err, std::string &what);

/*
 * Lease a host id from [first, first + count), trying from first + start on:
 * a file `dir`/ID held under flock(2). Returns its descriptor (keep it open
 * for the run) and sets `id`, or -1 with errno set (EAGAIN: every id is
 * leased) and `what` naming the operation.
 */
int host_id_claim(const std::string &dir, uint32_t first, uint32_t count, uint32_t start, uint32_t &id,
                  std::string &what);
/* Remove the files of `dir` that no live lease holds (left by a process that died). */
void host_id_sweep(const std::string &dir);
/* End a lease: unlink the file while still holding its lock, then close it. */
void host_id_release(const std::string &dir, uint32_t id, int fd);

/* claimHostId(dir, first, count, start) -> { id, fd }, releaseHostId(dir, id, fd), sweepHostIds(dir): for addon.cc's Init. */
void userns_exports(Napi::Env env, Napi::Object exports);

#endif
