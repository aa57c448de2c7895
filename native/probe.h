/*
 * Kernel feature probes for `capsule doctor` (src/doctor.ts): system calls
 * asked with arguments the kernel rejects once it knows the call, namespaces
 * unshared by a throwaway child, and libseccomp's version. Nothing is left
 * behind.
 */
#ifndef CAPSULE_PROBE_H
#define CAPSULE_PROBE_H

namespace Napi {
class Env;
class Object;
}  // namespace Napi

/* probeSyscalls(), probeUnshare(flags, map), seccompLibrary(): for addon.cc's Init. */
void probe_exports(Napi::Env env, Napi::Object exports);

#endif
