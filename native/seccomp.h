/*
 * seccomp, parent half: compile a profile with libseccomp into a sealed memfd
 * holding the raw BPF program, which capsule-init loads (native/init.c, child
 * half). The profile arrives validated and normalized by src/seccomp/.
 */
#ifndef CAPSULE_SECCOMP_H
#define CAPSULE_SECCOMP_H

#include <cstdint>
#include <string>
#include <vector>

/* What a rule (or the default) does; src/seccomp/profile.ts has the same names. */
enum class SeccompActionKind { Allow, Errno, KillProcess, KillThread, Trap, Trace, Log, Notify };

struct SeccompAction {
  SeccompActionKind kind = SeccompActionKind::Allow;
  uint32_t value = 0; /* the errno for Errno, the message for Trace */
};

/* One comparison on a system call argument (seccomp_rule_add(3)). */
struct SeccompArg {
  unsigned index;  /* 0..5 */
  std::string op;  /* "eq", "ne", "lt", "le", "gt", "ge", "masked_eq" */
  uint64_t value;  /* the datum; for masked_eq, the mask */
  uint64_t value_two; /* for masked_eq, the datum compared after masking */
};

struct SeccompRule {
  std::string syscall;
  SeccompAction action;
  std::vector<SeccompArg> args; /* all must hold (AND); at most one per argument index */
};

struct SeccompProfile {
  SeccompAction default_action;
  SeccompAction bad_arch_action; /* for x32, int 0x80 and any other ABI than the native one */
  std::vector<SeccompRule> rules;
  /*
   * runc's ENOSYS stub (libcontainer/seccomp/patchbpf): a native call numbered
   * above every call these names resolve to gets ENOSYS, not the default
   * action, so libcs fall back from calls newer than the profile. Empty: none.
   */
  std::vector<std::string> enosys_after;
  bool want_pfc = false; /* also return libseccomp's pseudo-code, for docs and tests */
};

struct SeccompCompiled {
  bool ok = false;
  std::string error;                /* when !ok: which rule, and libseccomp's errno text */
  int fd = -1;                      /* sealed memfd: struct sock_filter[instructions] */
  unsigned instructions = 0;
  std::vector<std::string> ignored; /* names of calls this architecture does not have (i386's stime on x86_64) */
  std::vector<std::string> unknown; /* names this libseccomp does not know at all, in rules that allow them */
  std::string pfc;
};

/* Compile with libseccomp; on success the caller owns out.fd. Parent only: it allocates. */
void seccomp_compile(const SeccompProfile &profile, SeccompCompiled &out);

/*
 * A sealed memfd holding `size` bytes of a filter compiled earlier (struct
 * sock_filter[]); -1 with errno and `error` naming the call that failed.
 */
int seccomp_filter_from_bytes(const uint8_t *bytes, size_t size, std::string &error);

/* libseccomp's run-time version, "major.minor.micro": precompiled filters are keyed by it. */
std::string libseccomp_version();

/* The name of system call `nr` of the ABI `audit_arch` (AUDIT_ARCH_*), or "" when unknown. */
std::string seccomp_syscall_name(int nr, uint32_t audit_arch);

#endif
