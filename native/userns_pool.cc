/*
 * See userns_pool.h. The thread below makes entries; takes and drains happen on the main
 * thread. One mutex guards the pool's state; the slow work (a lease, a helper task, the maps)
 * happens outside it, and an entry made for a shape that changed meanwhile is ended, not kept.
 */
#include "userns_pool.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sys/resource.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <mutex>

#include "pool_thread.h"
#include "userns.h"

namespace {

/* How many entries wait ready: enough for a run and the next, as the netns pool. */
constexpr size_t kReady = 2;
/* Ranges below this many ids are not pooled (userns_pool.h). */
constexpr uint32_t kMinRange = 64;
/*
 * An entry holds two descriptors. None is made unless this many would still be free under
 * RLIMIT_NOFILE: a process near its limit needs every descriptor for its runs (a run needs
 * about a dozen; test/concurrency.test.ts runs at 64).
 */
constexpr long kFdHeadroom = 256;

/* Descriptors free under the soft RLIMIT_NOFILE, counted in /proc/self/fd (this thread, off any run's path). */
long free_descriptors() {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  DIR *d = opendir("/proc/self/fd");
  if (!d) return 0;
  long open = 0;
  while (readdir(d)) open++;
  closedir(d);
  open -= 2; /* . and .. (the directory's own descriptor counts: it is open while we count) */
  if (rl.rlim_cur == RLIM_INFINITY) return kFdHeadroom;
  return static_cast<long>(rl.rlim_cur) - open;
}

struct Pool {
  std::mutex mu;
  std::condition_variable wanted;
  bool enabled = true;   /* CAPSULE_USERNS_POOL, and false for good after a failure */
  bool started = false;  /* the thread exists */
  bool stopped = false;  /* drained at exit: make nothing more */
  bool starved = false;  /* every id of the range leased: wait for the next take */
  bool have_key = false; /* a shape was asked twice: fill for it */
  UsernsPoolKey key;     /* the shape entries are made for (or last asked) */
  unsigned takes = 0;    /* takes of `key` so far */
  uint64_t gen = 0;      /* bumped when `key` changes or the pool is drained */
  uint32_t cursor = 0;   /* where the next lease search starts, past the last id leased */
  std::deque<UsernsPoolEntry> ready;
};

Pool &pool() {
  static Pool *p = new Pool(); /* never destroyed: the thread may outlive static destructors */
  return *p;
}

void end_entry(const std::string &dir, UsernsPoolEntry &e) {
  if (e.userns_fd >= 0) close(e.userns_fd);
  if (e.lease_fd >= 0) host_id_release(dir, e.id, e.lease_fd);
  e.userns_fd = e.lease_fd = -1;
}

void *fill(void *) {
  Pool &p = pool();
  for (;;) {
    UsernsPoolKey key;
    uint64_t gen;
    uint32_t start;
    {
      std::unique_lock<std::mutex> lk(p.mu);
      p.wanted.wait(lk, [&] {
        return !p.enabled || p.stopped || (p.have_key && !p.starved && p.ready.size() < kReady);
      });
      if (!p.enabled || p.stopped) return nullptr;
      /* Near the descriptor limit: make nothing until the next take asks again. */
      if (free_descriptors() < kFdHeadroom) {
        p.starved = true;
        continue;
      }
      key = p.key;
      gen = p.gen;
      start = p.cursor;
    }
    /* The lease first, as acquireHostIds takes it (src/ids.ts); then its namespace (userns.cc). */
    uint32_t id = 0;
    std::string what;
    int lease = host_id_claim(key.dir, key.first, key.count, start % key.count, id, what);
    if (lease < 0) {
      const int e = errno;
      std::lock_guard<std::mutex> lk(p.mu);
      /*
       * Every id leased (EAGAIN), or no descriptor free (EMFILE, ENFILE): try again after the
       * next take. Anything else (the lock directory unusable): no pool; runs lease inline.
       */
      if (e == EAGAIN || e == EMFILE || e == ENFILE) p.starved = true;
      else p.enabled = false;
      continue;
    }
    int err = 0;
    int userns = userns_make(key.inside_uid, key.inside_gid, id, id, err, what);
    UsernsPoolEntry e;
    e.id = id;
    e.lease_fd = lease;
    e.userns_fd = userns;
    std::unique_lock<std::mutex> lk(p.mu);
    p.cursor = id - key.first + 1;
    if (userns < 0 || p.gen != gen || p.stopped) {
      /* A namespace the kernel refuses is the inline path's to report (make_userns): no pool. */
      if (userns < 0) p.enabled = false;
      lk.unlock();
      end_entry(key.dir, e);
      continue;
    }
    p.ready.push_back(e);
  }
}

/* Start the thread; with the pool's lock held. */
void start_locked(Pool &p) {
  if (p.started || !p.enabled) return;
  p.started = true;
  /* Its helper tasks (userns.cc) inherit the blocked signals too. */
  if (!start_pool_thread(fill)) p.enabled = false;
}

}  // namespace

void userns_pool_configure() {
  const char *env = getenv("CAPSULE_USERNS_POOL");
  Pool &p = pool();
  std::lock_guard<std::mutex> lk(p.mu);
  if (env && env[0] == '0') p.enabled = false;
}

bool userns_pool_take(const UsernsPoolKey &key, UsernsPoolEntry &out) {
  Pool &p = pool();
  std::deque<UsernsPoolEntry> ended;
  std::string ended_dir;
  bool got = false;
  {
    std::lock_guard<std::mutex> lk(p.mu);
    if (p.stopped) return false;
    if (!(p.key == key)) {
      /*
       * Another shape: what was made for the last one goes first, whatever this one is, so
       * none of its ids stays held against this run (a range of one id inside the last).
       */
      ended.swap(p.ready);
      ended_dir = p.key.dir;
      p.key = key;
      p.have_key = false;
      p.takes = 0;
      p.gen++;
    }
    /* A small range is never pooled; after a failure the thread is gone, but what it made is good. */
    if (key.count >= kMinRange && !p.ready.empty()) {
      out = p.ready.front();
      p.ready.pop_front();
      got = true;
    }
    if (key.count >= kMinRange && p.enabled) {
      if (++p.takes >= 2) p.have_key = true;
      p.starved = false;
      if (p.have_key) start_locked(p);
    }
  }
  for (UsernsPoolEntry &e : ended) end_entry(ended_dir, e);
  p.wanted.notify_one();
  return got;
}

std::vector<int> userns_pool_fds() {
  Pool &p = pool();
  std::lock_guard<std::mutex> lk(p.mu);
  std::vector<int> fds;
  for (const UsernsPoolEntry &e : p.ready) {
    fds.push_back(e.lease_fd);
    fds.push_back(e.userns_fd);
  }
  return fds;
}

void userns_pool_drain(bool stop) {
  Pool &p = pool();
  std::deque<UsernsPoolEntry> ended;
  std::string dir;
  {
    std::lock_guard<std::mutex> lk(p.mu);
    if (stop) p.stopped = true;
    else p.starved = true; /* nothing more until the next take */
    p.gen++;
    ended.swap(p.ready);
    dir = p.key.dir;
  }
  for (UsernsPoolEntry &e : ended) end_entry(dir, e);
  p.wanted.notify_one();
}
