/*
 * See netns_pool.h. unshare(CLONE_NEWNET) moves only the calling thread into
 * the new namespace (namespaces belong to tasks, not processes: unshare(2)),
 * so this thread can make one after another while Node's other threads stay
 * where they are; /proc/thread-self/ns/net then names the one just made.
 *
 * The thread itself stays in the last namespace it made until it makes the
 * next, which it does as soon as one is taken. It opens no socket but the one
 * that raises lo, sends nothing, and from inside a sandbox (another PID
 * namespace) it cannot be seen; it only keeps that namespace alive a little
 * longer.
 */
#include "netns_pool.h"
#include "pool_thread.h"

#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <mutex>

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
  bool enabled = true; /* CAPSULE_NETNS_POOL, read once by netns_pool_configure */
  bool started = false;
};
Pool &pool() {
  static Pool *p = new Pool();
  return *p;
}

/*
 * lo up in the namespace this thread is in now: a new network namespace has
 * only a loopback device, and it is down (network_namespaces(7)); raising it
 * lets a program reach itself on 127.0.0.1 and routes nothing out
 * (netdevice(7): SIOCGIFFLAGS, then SIOCSIFFLAGS with IFF_UP). The socket
 * belongs to the namespace of the thread that creates it.
 */
bool loopback_up() {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, "lo", 3);
  bool ok = ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
  if (ok) {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    ok = ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
  }
  close(fd);
  return ok;
}

void *fill(void *) {
  Pool &p = pool();
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(p.mu);
      p.wanted.wait(lk, [&] { return p.ready.size() < kReady; });
    }
    /*
     * Any failure (no CAP_SYS_ADMIN, a namespace limit, lo refusing to come
     * up) ends the pool: clone makes its own namespace and the child raises lo.
     */
    if (unshare(CLONE_NEWNET) != 0 || !loopback_up()) return nullptr;
    int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return nullptr;
    std::lock_guard<std::mutex> lk(p.mu);
    p.ready.push_back(fd);
  }
}

}  // namespace

void netns_pool_configure() {
  /* CAPSULE_NETNS_POOL=0 turns the pool off: every clone makes its own namespace. */
  const char *env = getenv("CAPSULE_NETNS_POOL");
  Pool &p = pool();
  std::lock_guard<std::mutex> lk(p.mu);
  p.enabled = !(env && env[0] == '0');
}

/* Start the pool's thread; with the pool's lock held. False when it is off or cannot start. */
static bool start_locked(Pool &p) {
  if (!p.enabled) return false;
  if (p.started) return true;
  p.started = true;
  /* Without it the pool stays empty: clone makes each namespace as it would without one. */
  if (!start_pool_thread(fill)) p.enabled = false;
  return p.enabled;
}

void netns_pool_start() {
  Pool &p = pool();
  std::lock_guard<std::mutex> lk(p.mu);
  start_locked(p);
}

int netns_pool_take() {
  Pool &p = pool();
  std::lock_guard<std::mutex> lk(p.mu);
  if (!p.started) {
    start_locked(p);
    return -1; /* a run does not wait for the pool */
  }
  if (!p.enabled || p.ready.empty()) return -1;
  int fd = p.ready.front();
  p.ready.pop_front();
  p.wanted.notify_one();
  return fd;
}
