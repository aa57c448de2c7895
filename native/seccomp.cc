/*
 * seccomp, parent half: a profile in, a BPF program out.
 *
 * libseccomp (seccomp_init(3), seccomp_rule_add(3)) turns named system calls
 * and argument comparisons into the classic-BPF program the kernel runs on
 * every system call (seccomp(2)). It does the parts that are easy to get
 * wrong by hand: the architecture check first (a filter that reads the
 * syscall number without checking AUDIT_ARCH can be bypassed through another
 * ABI's numbering), the x32 check (on x86_64, x32 calls arrive with the same
 * AUDIT_ARCH and __X32_SYSCALL_BIT set in the number), and 64-bit argument
 * comparisons as two 32-bit ones.
 *
 * The program is exported with seccomp_export_bpf(3) into a memfd and sealed
 * (memfd_create(2), F_ADD_SEALS in fcntl(2)): nothing can change it after
 * this, so one memfd serves every run with that profile. The child gets it
 * at CAPSULE_FD_SECCOMP and capsule-init reads it with pread, which has no
 * file offset to share between concurrent sandboxes. Compiling costs
 * milliseconds; loading costs microseconds: src/seccomp/cache.ts compiles
 * each distinct profile once per process, as crun caches by hash.
 */
#include "seccomp.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <fcntl.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>

namespace {

/* BPF_MAXINSNS in <linux/bpf_common.h>: the kernel rejects longer classic-BPF programs. */
constexpr unsigned kMaxInstructions = 4096;

uint32_t to_libseccomp(const SeccompAction &a) {
  switch (a.kind) {
    case SeccompActionKind::Allow: return SCMP_ACT_ALLOW;
    case SeccompActionKind::Errno: return SCMP_ACT_ERRNO(a.value);
    case SeccompActionKind::KillProcess: return SCMP_ACT_KILL_PROCESS;
    case SeccompActionKind::KillThread: return SCMP_ACT_KILL_THREAD;
    case SeccompActionKind::Trap: return SCMP_ACT_TRAP;
    case SeccompActionKind::Trace: return SCMP_ACT_TRACE(a.value);
    case SeccompActionKind::Log: return SCMP_ACT_LOG;
    case SeccompActionKind::Notify: return SCMP_ACT_NOTIFY;
  }
  return SCMP_ACT_KILL_PROCESS;
}

bool to_op(const std::string &s, scmp_compare &op) {
  static const struct {
    const char *name;
    scmp_compare op;
  } ops[] = {{"eq", SCMP_CMP_EQ}, {"ne", SCMP_CMP_NE}, {"lt", SCMP_CMP_LT}, {"le", SCMP_CMP_LE},
             {"gt", SCMP_CMP_GT}, {"ge", SCMP_CMP_GE}, {"masked_eq", SCMP_CMP_MASKED_EQ}};
  for (const auto &o : ops) {
    if (s == o.name) {
      op = o.op;
      return true;
    }
  }
  return false;
}

struct CtxDeleter {
  void operator()(void *ctx) const { seccomp_release(ctx); }
};

/* A memfd for an export; sealed by the caller once written. */
int export_memfd(const char *name) { return memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING); }

std::string read_all(int fd) {
  std::string s;
  char buf[4096];
  off_t off = 0;
  ssize_t n;
  while ((n = pread(fd, buf, sizeof buf, off)) > 0) {
    s.append(buf, static_cast<size_t>(n));
    off += n;
  }
  return s;
}

bool fail(SeccompCompiled &out, const std::string &what, int neg_errno) {
  out.ok = false;
  out.error = what + ": " + strerror(-neg_errno);
  return false;
}

/*
 * runc's ENOSYS stub, prepended to libseccomp's program: on the native ABI, a
 * call numbered above `last` returns ENOSYS, as the kernel does for a call it
 * does not have; anything else (another ABI, x32's numbers from
 * __X32_SYSCALL_BIT up) falls through to the filter proper, which starts
 * over with its own architecture check. runc prepends the same (patchbpf,
 * generateEnosysStub) whenever the default action is not allow, log or trace.
 */
bool write_enosys_stub(int fd, uint32_t native_arch, uint32_t last) {
  const struct sock_filter stub[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 4 /* offsetof(struct seccomp_data, arch) */),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, native_arch, 0, 4),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0 /* offsetof(struct seccomp_data, nr) */),
      BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000 /* __X32_SYSCALL_BIT */, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, last, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
  };
  return write(fd, stub, sizeof stub) == static_cast<ssize_t>(sizeof stub);
}

bool compile(const SeccompProfile &p, SeccompCompiled &out) {
  std::unique_ptr<void, CtxDeleter> ctx(seccomp_init(to_libseccomp(p.default_action)));
  if (!ctx) return fail(out, "seccomp_init", -EINVAL);
  /*
   * Only the native architecture is added, so every other ABI the CPU can
   * enter the kernel through (int 0x80 and sysenter for i386 on x86_64, x32,
   * AArch32 on aarch64) takes the bad-architecture action.
   */
  int r = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, to_libseccomp(p.bad_arch_action));
  if (r < 0) return fail(out, "seccomp_attr_set(SCMP_FLTATR_ACT_BADARCH)", r);
  /* A binary tree of syscall numbers instead of a linear list: fewer instructions per call. */
  r = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_OPTIMIZE, 2);
  if (r < 0) return fail(out, "seccomp_attr_set(SCMP_FLTATR_CTL_OPTIMIZE)", r);

  for (size_t i = 0; i < p.rules.size(); i++) {
    const SeccompRule &rule = p.rules[i];
    int nr = seccomp_syscall_resolve_name(rule.syscall.c_str());
    /*
     * A name this libseccomp does not know (a call newer than its tables, or
     * a typo) has no number to filter on. Left out of a rule that allows, it
     * is refused by the default action: safe, and what Docker and runc do.
     * Left out of a rule that denies, the call would be allowed while the
     * profile says it is denied: refused here, before anything runs.
     */
    if (nr == __NR_SCMP_ERROR) {
      if (rule.action.kind != SeccompActionKind::Allow) {
        out.ok = false;
        out.error = "\"" + rule.syscall +
                    "\" is a system call name this libseccomp does not know, in a rule that denies it: the rule "
                    "would deny nothing. Remove the name from the profile, or build capsule against a newer "
                    "libseccomp";
        return false;
      }
      out.unknown.push_back(rule.syscall);
      continue;
    }
    /* A pseudo-number (negative): a call of another architecture, which this one does not have. */
    if (nr < 0) {
      out.ignored.push_back(rule.syscall);
      continue;
    }
    std::vector<scmp_arg_cmp> cmps;
    for (const SeccompArg &a : rule.args) {
      scmp_compare op;
      if (!to_op(a.op, op))
        return fail(out, "rule " + std::to_string(i) + " (" + rule.syscall + "): op " + a.op, -EINVAL);
      cmps.push_back({a.index, op, a.value, a.value_two});
    }
    r = seccomp_rule_add_array(ctx.get(), to_libseccomp(rule.action), nr, static_cast<unsigned>(cmps.size()),
                               cmps.empty() ? nullptr : cmps.data());
    if (r < 0) return fail(out, "rule " + std::to_string(i) + " (" + rule.syscall + ")", r);
  }

  int last = -1;
  for (const std::string &name : p.enosys_after) {
    int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr > last) last = nr;
  }

  int fd = export_memfd("capsule-seccomp");
  if (fd < 0) return fail(out, "memfd_create", -errno);
  /* The stub goes first; seccomp_export_bpf(3) write(2)s the filter after it. */
  if (last >= 0 && !write_enosys_stub(fd, seccomp_arch_native(), static_cast<uint32_t>(last))) {
    int e = errno;
    close(fd);
    return fail(out, "writing the ENOSYS stub", -e);
  }
  r = seccomp_export_bpf(ctx.get(), fd);
  struct stat st;
  if (r < 0 || fstat(fd, &st) < 0) {
    close(fd);
    return fail(out, "seccomp_export_bpf", r < 0 ? r : -errno);
  }
  unsigned instructions = static_cast<unsigned>(st.st_size / 8); /* sizeof(struct sock_filter) */
  if (instructions == 0 || instructions > kMaxInstructions) {
    close(fd);
    return fail(out,
                "the filter has " + std::to_string(instructions) + " instructions; the kernel takes 1 to 4096",
                -E2BIG);
  }
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
    int e = errno;
    close(fd);
    return fail(out, "sealing the filter's memfd", -e);
  }
  if (p.want_pfc) {
    int pfd = export_memfd("capsule-seccomp-pfc");
    if (pfd >= 0) {
      if (seccomp_export_pfc(ctx.get(), pfd) == 0) out.pfc = read_all(pfd);
      close(pfd);
    }
  }
  out.fd = fd;
  out.instructions = instructions;
  out.ok = true;
  return true;
}

}  // namespace

void seccomp_compile(const SeccompProfile &profile, SeccompCompiled &out) { compile(profile, out); }

/*
 * A filter compiled earlier (at build time, by scripts/precompile-seccomp.mjs,
 * from the same profile and this same libseccomp version) into a sealed memfd,
 * as seccomp_compile leaves its own: only the bytes differ in where they came
 * from. The kernel checks the program again when capsule-init loads it
 * (seccomp(2) verifies every BPF program), so a bad file fails there, named.
 */
int seccomp_filter_from_bytes(const uint8_t *bytes, size_t size, std::string &error) {
  if (size == 0 || size % 8 != 0 || size / 8 > kMaxInstructions) {
    error = "a precompiled filter of " + std::to_string(size) + " bytes is not 1 to 4096 instructions of 8 bytes";
    errno = EINVAL;
    return -1;
  }
  int fd = export_memfd("capsule-seccomp");
  if (fd < 0) {
    error = "memfd_create";
    return -1;
  }
  size_t done = 0;
  while (done < size) {
    ssize_t n = write(fd, bytes + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = n < 0 ? errno : EIO;
      close(fd);
      error = "writing the precompiled filter into its memfd";
      errno = e;
      return -1;
    }
    done += static_cast<size_t>(n);
  }
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
    int e = errno;
    close(fd);
    error = "sealing the filter's memfd";
    errno = e;
    return -1;
  }
  return fd;
}

std::string libseccomp_version() {
  const struct scmp_version *v = seccomp_version();
  return std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->micro);
}

std::string seccomp_syscall_name(int nr, uint32_t audit_arch) {
  /* libseccomp's architecture tokens are the AUDIT_ARCH_* values; x32 shares x86_64's. */
  uint32_t token = audit_arch;
  if (audit_arch == SCMP_ARCH_X86_64 && (nr & 0x40000000)) token = SCMP_ARCH_X32;
  char *name = seccomp_syscall_resolve_num_arch(token, nr);
  if (!name) return "";
  std::string s(name);
  free(name);
  return s;
}
