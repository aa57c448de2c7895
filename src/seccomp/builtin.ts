/**
 * capsule's built-in profiles, written in the OCI/Docker format that
 * `--seccomp-profile` reads, so they take the same path (profile.ts).
 *
 * - `default`: a deny-list. What Docker's default profile withholds from a
 *   container without capabilities, denied with EPERM so a program sees an
 *   ordinary error. Everything else is allowed. Namespaces, capabilities and
 *   the read-only mounts already stop most of these calls; the filter takes
 *   the kernel code behind them out of reach, which is what matters for the
 *   next kernel bug (io_uring, bpf, userfaultfd and keyctl each had several).
 * - `default-kill`: the same list, but a denied call ends the run with a
 *   SECURITY_VIOLATION verdict naming it.
 * - `strict`: an allow-list for judge submissions in C, C++ and Python:
 *   files already open or in the rootfs, memory, time, signals to oneself.
 *   Anything else ends the run with SECURITY_VIOLATION ("forbidden syscall: socket").
 */
import type { OciSeccompProfile, OciSyscallRule } from './profile.js';

export const BUILTIN_PROFILES = ['default', 'default-kill', 'strict', 'none'] as const;
export type BuiltinProfileName = (typeof BUILTIN_PROFILES)[number];

const ENOSYS = 38;
const EACCES = 13;
const AF_UNIX = 1;

/* clone(2) flags that create namespaces; CLONE_NEWTIME (0x80) shares its bit with CSIGNAL in clone's flags. */
const CLONE_NAMESPACE_FLAGS = {
  CLONE_NEWNS: 0x00020000,
  CLONE_NEWCGROUP: 0x02000000,
  CLONE_NEWUTS: 0x04000000,
  CLONE_NEWIPC: 0x08000000,
  CLONE_NEWUSER: 0x10000000,
  CLONE_NEWPID: 0x20000000,
  CLONE_NEWNET: 0x40000000,
};

/*
 * personality(2) bits a program could use against its own hardening:
 * ADDR_NO_RANDOMIZE (no ASLR), READ_IMPLIES_EXEC, MMAP_PAGE_ZERO, the address
 * layout bits. PER_LINUX (0), PER_LINUX32 (8), UNAME26 and the query
 * 0xffffffff stay allowed, as in Docker's profile.
 */
const PERSONALITY_UNSAFE = [0x0040000, 0x0100000, 0x0200000, 0x0400000, 0x0800000, 0x8000000];
const BIT31 = 0x80000000;

/*
 * Socket families the network namespace does not isolate, or that are kernel
 * surface and nothing a sandboxed program needs: AF_VSOCK reaches the
 * hypervisor and other VMs whatever the namespace (vsock(7)); AF_ALG is the
 * kernel's crypto API (af_alg bugs: CVE-2015-8970, CVE-2017-17805).
 */
const AF_ALG = 38;
const AF_VSOCK = 40;

/* TIOCSTI (push a byte into a terminal's input, CVE-2017-5226 in bubblewrap) and TIOCLINUX. */
const TIOCSTI = 0x5412;
const TIOCLINUX = 0x541c;

function deny(names: string[], comment: string): OciSyscallRule {
  return { names, action: 'SCMP_ACT_ERRNO', comment };
}

/** The calls the default profile denies, and why, in the order Docker's profile explains them. */
const DENIED: OciSyscallRule[] = [
  deny(
    [
      'mount',
      'umount',
      'umount2',
      'pivot_root',
      'chroot',
      'fsopen',
      'fsconfig',
      'fsmount',
      'fspick',
      'move_mount',
      'open_tree',
      'mount_setattr',
    ],
    'the filesystem tree is fixed before the program starts (CAP_SYS_ADMIN in Docker)',
  ),
  deny(['unshare', 'setns'], 'new namespaces, a user namespace above all, reopen what capabilities closed'),
  deny(
    ['ptrace', 'process_vm_readv', 'process_vm_writev', 'kcmp', 'pidfd_getfd', 'process_madvise'],
    "reading and writing other processes' memory and descriptors (CAP_SYS_PTRACE in Docker)",
  ),
  deny(
    ['kexec_load', 'kexec_file_load', 'init_module', 'finit_module', 'delete_module', 'create_module'],
    'loading a kernel or kernel modules',
  ),
  deny(['bpf'], 'eBPF programs: a large, often exploited attack surface (CAP_BPF/CAP_SYS_ADMIN)'),
  deny(['perf_event_open'], 'performance counters leak kernel addresses and timing (CAP_PERFMON)'),
  deny(['keyctl', 'add_key', 'request_key'], 'the kernel keyring is not namespaced'),
  deny(['reboot'], 'rebooting the host (CAP_SYS_BOOT)'),
  deny(['swapon', 'swapoff'], 'swap devices (CAP_SYS_ADMIN)'),
  deny(['acct'], 'process accounting (CAP_SYS_PACCT)'),
  deny(
    ['clock_settime', 'clock_adjtime', 'settimeofday', 'adjtimex', 'stime'],
    'the clock is not namespaced: setting it sets the host time (CAP_SYS_TIME)',
  ),
  deny(
    ['open_by_handle_at', 'name_to_handle_at'],
    'file handles open files outside the root: the 2014 "shocker" escape (CAP_DAC_READ_SEARCH)',
  ),
  deny(['userfaultfd'], 'stalls kernel page faults at will: the tool of many kernel exploits'),
  deny(
    ['io_uring_setup', 'io_uring_enter', 'io_uring_register'],
    'io_uring: a kernel attack surface that also bypasses this filter (its operations are not system calls)',
  ),
  deny(
    [
      'quotactl',
      'quotactl_fd',
      'lookup_dcookie',
      'nfsservctl',
      'syslog',
      'sysfs',
      '_sysctl',
      'uselib',
      'ustat',
      'vhangup',
    ],
    'obsolete or host-wide administration calls (Docker denies them all)',
  ),
  deny(['iopl', 'ioperm', 'vm86', 'vm86old', 'modify_ldt'], 'direct I/O port access and old x86 modes'),
  deny(['fanotify_init'], 'filesystem-wide event monitoring (CAP_SYS_ADMIN)'),
  deny(['sethostname', 'setdomainname'], 'the sandbox has its own UTS namespace, set up by capsule'),
  {
    names: ['clone'],
    action: 'SCMP_ACT_ERRNO',
    comment: 'clone(2) with a namespace flag, one rule per flag (a rule ANDs its comparisons)',
    args: [],
  },
  {
    names: ['clone3'],
    action: 'SCMP_ACT_ERRNO',
    errnoRet: ENOSYS,
    comment:
      'clone3 passes its flags in memory, which seccomp cannot read: ENOSYS makes glibc fall back to clone, which is filtered (Docker does the same)',
  },
];

function namespaceCloneRules(action: string): OciSyscallRule[] {
  return Object.entries(CLONE_NAMESPACE_FLAGS).map(([name, flag]) => ({
    names: ['clone'],
    action,
    comment: `clone(2) with ${name}`,
    args: [{ index: 0, value: flag, valueTwo: flag, op: 'SCMP_CMP_MASKED_EQ' }],
  }));
}

/**
 * personality(2) with an unsafe bit. One comparison per argument per rule,
 * so: each unsafe bit with bit 31 clear (which keeps the 0xffffffff query
 * out), bit 31 set without every other bit (no valid persona sets it), and
 * any value above 32 bits (the kernel truncates to unsigned int).
 */
function personalityRules(action: string): OciSyscallRule[] {
  const rule = (value: number | bigint, valueTwo: number | bigint, op = 'SCMP_CMP_MASKED_EQ') => ({
    names: ['personality'],
    action,
    args: [{ index: 0, value, valueTwo, op }],
  });
  const rules: OciSyscallRule[] = PERSONALITY_UNSAFE.map((bit) => rule(bit + BIT31, bit));
  for (let b = 0; b < 31; b++) rules.push(rule(BIT31 + 2 ** b, BIT31));
  rules.push({ names: ['personality'], action, args: [{ index: 0, value: 0xffffffff, op: 'SCMP_CMP_GT' }] });
  return rules;
}

/* ioctl(2) commands are 32-bit: compare only the low half, or 0x1_00005412 would pass an EQ. */
function ioctlRules(action: string): OciSyscallRule[] {
  return [TIOCSTI, TIOCLINUX].map((cmd) => ({
    names: ['ioctl'],
    action,
    comment: 'TIOCSTI/TIOCLINUX: typing into a terminal the sandbox shares',
    args: [{ index: 1, value: 0xffffffff, valueTwo: cmd, op: 'SCMP_CMP_MASKED_EQ' }],
  }));
}

function socketRules(action: string): OciSyscallRule[] {
  return [AF_VSOCK, AF_ALG].map((family) => ({
    names: ['socket'],
    action,
    comment: family === AF_VSOCK ? 'AF_VSOCK: not network-namespaced' : 'AF_ALG: kernel crypto API',
    args: [{ index: 0, value: family, op: 'SCMP_CMP_EQ' }],
  }));
}

function defaultProfile(kill: boolean): OciSeccompProfile {
  const action = kill ? 'SCMP_ACT_KILL_PROCESS' : 'SCMP_ACT_ERRNO';
  const rules: OciSyscallRule[] = [];
  for (const r of DENIED) {
    if (r.names[0] === 'clone') continue;
    /* clone3's ENOSYS is not a denial but a redirection to clone: it stays ENOSYS. */
    rules.push(r.names[0] === 'clone3' ? r : { ...r, action });
  }
  rules.push(
    ...namespaceCloneRules(action),
    ...personalityRules(action),
    ...ioctlRules(action),
    ...socketRules(action),
  );
  return { defaultAction: 'SCMP_ACT_ALLOW', architectures: [nativeArch()], syscalls: rules };
}

/**
 * The strict allow-list. It is what a compiled C/C++ program and CPython's
 * startup need (checked with strace on glibc 2.36 and Python 3.11), and
 * nothing that reaches outside the process: no socket, no fork or clone, no
 * kill of anyone else, no ptrace, no new files outside /tmp by policy of the mounts.
 */
const STRICT_ALLOWED = [
  /* I/O on descriptors */
  'read',
  'write',
  'readv',
  'writev',
  'pread64',
  'pwrite64',
  'lseek',
  'close',
  'dup',
  'dup2',
  'dup3',
  'fcntl',
  'fstat',
  'newfstatat',
  'statx',
  'stat',
  'lstat',
  'fstatfs',
  'statfs',
  'ftruncate',
  'fsync',
  'fdatasync',
  /* files by name (the mounts decide what is writable) */
  'open',
  'openat',
  'access',
  'faccessat',
  'faccessat2',
  'readlink',
  'readlinkat',
  'getcwd',
  'getdents64',
  'unlink',
  'unlinkat',
  'mkdir',
  'mkdirat',
  'rename',
  'renameat',
  'renameat2',
  'chdir',
  'fchdir',
  'pipe',
  'pipe2',
  'poll',
  'ppoll',
  'select',
  'pselect6',
  /* memory */
  'brk',
  'mmap',
  'munmap',
  'mremap',
  'mprotect',
  'madvise',
  'mlock',
  'munlock',
  /* the process itself */
  'execve',
  'exit',
  'exit_group',
  'arch_prctl',
  'set_tid_address',
  'set_robust_list',
  'get_robust_list',
  'rseq',
  'prlimit64',
  'getrlimit',
  'getrusage',
  'times',
  'uname',
  'sysinfo',
  'getrandom',
  'umask',
  'getpid',
  'gettid',
  'getppid',
  'getuid',
  'geteuid',
  'getgid',
  'getegid',
  'getgroups',
  'getresuid',
  'getresgid',
  'getpgrp',
  'getpgid',
  'getsid',
  'sched_getaffinity',
  'sched_yield',
  'sched_getparam',
  'sched_getscheduler',
  /* time */
  'clock_gettime',
  'clock_getres',
  'gettimeofday',
  'time',
  'nanosleep',
  'clock_nanosleep',
  /* signals to oneself and futexes (abort, raise, C++ exceptions, CPython's GIL) */
  'rt_sigaction',
  'rt_sigprocmask',
  'rt_sigreturn',
  'sigaltstack',
  'tgkill',
  'futex',
  'futex_waitv',
];

function strictProfile(): OciSeccompProfile {
  return {
    defaultAction: 'SCMP_ACT_KILL_PROCESS',
    architectures: [nativeArch()],
    syscalls: [
      { names: STRICT_ALLOWED, action: 'SCMP_ACT_ALLOW' },
      /*
       * glibc's name service functions (getpwuid, which CPython's startup
       * calls) first try nscd over an AF_UNIX socket and fall back to
       * /etc/passwd when that fails: an error, not a violation. Every other
       * socket is one.
       */
      {
        names: ['socket'],
        action: 'SCMP_ACT_ERRNO',
        errnoRet: EACCES,
        args: [{ index: 0, value: AF_UNIX, op: 'SCMP_CMP_EQ' }],
      },
      /*
       * Only what isatty() and CPython make: TCGETS, TIOCGWINSZ, FIONREAD, and
       * FIOCLEX/FIONCLEX (CPython sets close-on-exec with them).
       */
      ...[0x5401, 0x5413, 0x541b, 0x5450, 0x5451].map((cmd) => ({
        names: ['ioctl'],
        action: 'SCMP_ACT_ALLOW',
        args: [{ index: 1, value: 0xffffffff, valueTwo: cmd, op: 'SCMP_CMP_MASKED_EQ' }],
      })),
    ],
  };
}

function nativeArch(): string {
  return process.arch === 'arm64' ? 'SCMP_ARCH_AARCH64' : 'SCMP_ARCH_X86_64';
}

/** A built-in profile in the OCI format; null for `none`. */
export function builtinProfile(name: BuiltinProfileName): OciSeccompProfile | null {
  switch (name) {
    case 'default':
      return defaultProfile(false);
    case 'default-kill':
      return defaultProfile(true);
    case 'strict':
      return strictProfile();
    case 'none':
      return null;
  }
}
