/*
 * Rootless runs (rootless.cc): the user namespace clone makes with the
 * others, and the child's own single-id maps.
 */
#ifndef CAPSULE_ROOTLESS_H
#define CAPSULE_ROOTLESS_H

#include <string>

#include "mounts.h"

/* Parent half, before clone: the uid_map and gid_map lines (sandbox id -> the caller's). */
void rootless_prepare(const SandboxOptions &opts, std::string &uid_map, std::string &gid_map);

#endif
