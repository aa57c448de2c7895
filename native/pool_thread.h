/*
 * The thread of a pool of things made ahead (netns_pool.cc, userns_pool.cc): detached, with
 * every signal blocked (a new thread inherits its creator's mask, pthread_create(3)), so no
 * handler of Node's ever runs on it or in a helper task it clones.
 *
 * pthread_create, not std::thread: the addon is built with -fno-exceptions, so std::thread's
 * failure (EAGAIN at a thread limit) would abort Node. A thread that cannot start leaves its
 * pool empty: each run makes what it needs itself, as it would without one.
 */
#ifndef CAPSULE_POOL_THREAD_H
#define CAPSULE_POOL_THREAD_H

#include <pthread.h>
#include <signal.h>

/* False when the thread could not be started. */
inline bool start_pool_thread(void *(*fn)(void *)) {
  pthread_attr_t attr;
  if (pthread_attr_init(&attr) != 0) return false;
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t t;
  bool ok = pthread_create(&t, &attr, fn, nullptr) == 0;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_attr_destroy(&attr);
  return ok;
}

#endif
