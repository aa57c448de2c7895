/*
 * See netns_pool.h. unshare(CLONE_NEWNET) moves only the calling thread into
 * the new namespace (namespaces belong to tasks, not processes: unshare(2)),
 * so this thread can make one after another while Node's other threads stay
 * where they are; /proc/thread-self/ns/net then names the one just made.
 *
 * The thread itself stays in the last namespace it made until it makes the
 * next, which it does as soon as one is taken. It opens no socket and sends
 * nothing, and from inside a sandbox (another PID namespace) it cannot be
 * seen; it only keeps that namespace alive a little longer.
 */
#include "netns_pool.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sched.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace {

constexpr size_t kReady = 2; /* enough for back-to-back runs, 2 at once on 2 cores */

/*
 * On the heap and never freed: at exit, a static condition variable would be
 * destroyed while the pool thread waits on it, and glibc's
 * pthread_cond_destroy waits for its waiters, so the process would never end.
 */
struct Pool {
  std::mutex mu;
  std::condition_variable wanted;
  std::deque<int> ready;
  bool started = false;
};
Pool &pool() {
  static Pool *p = new Pool();
  return *p;
}

void fill() {
  Pool &p = pool();
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(p.mu);
      p.wanted.wait(lk, [&] { return p.ready.size() < kReady; });
    }
    /* Any failure (no CAP_SYS_ADMIN, a namespace limit) ends the pool: clone makes its own. */
    if (unshare(CLONE_NEWNET) != 0) return;
    int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    std::lock_guard<std::mutex> lk(p.mu);
    p.ready.push_back(fd);
  }
}

}  // namespace

int netns_pool_take() {
  Pool &p = pool();
  std::lock_guard<std::mutex> lk(p.mu);
  if (!p.started) {
    /* CAPSULE_NETNS_POOL=0 turns the pool off: every clone makes its own namespace. */
    const char *env = getenv("CAPSULE_NETNS_POOL");
    if (env && env[0] == '0') return -1;
    p.started = true;
    std::thread(fill).detach();
    return -1; /* the first run does not wait for the pool */
  }
  if (p.ready.empty()) return -1;
  int fd = p.ready.front();
  p.ready.pop_front();
  p.wanted.notify_one();
  return fd;
}
