/*
 * Rootless runs (rootless.cc): the user namespace clone makes with the
 * others, mapped either by the child itself (one id each) or, when
 * /etc/subuid and /etc/subgid grant the caller a range, by newuidmap(1) and
 * newgidmap(1) run from a helper thread of the parent.
 */
#ifndef CAPSULE_ROOTLESS_H
#define CAPSULE_ROOTLESS_H

#include <string>

#include "mounts.h"

/*
 * Parent half, before clone: fills the child's rootless fields of plan.cfg.
 * With opts.newuidmap set it also starts the id-map helper (IdMapHelper,
 * rootless.cc) the child will ask; false with err and what set when that
 * could not be started.
 */
bool rootless_prepare(const SandboxOptions &opts, Plan &plan, int &err, std::string &what);

/*
 * Parent half, after clone returned (the child has exec'd or exited, so its
 * end of the helper's socket is closed): wait for the helper thread to end.
 */
void rootless_after_clone(Plan &plan);

/*
 * chownInBox's kernel half (src/session.ts copyIn, rootless): give `fd`, a
 * file the caller made in a box, to the box's uid and gid, from a child
 * that entered the box's user namespace (pidfd names its PID 1). 0, or an
 * errno with `what` naming the call that failed.
 */
int rootless_chown_in_box(int pidfd, int fd, uint32_t uid, uint32_t gid, const char *&what);

#endif
