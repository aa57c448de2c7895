/**
 * capsule's built-in profiles, written in the OCI/Docker format that
 * `--seccomp-profile` reads, so they take the same path (profile.ts).
 *
 * - `default`: an allow-list, as Docker's has been since 2016. The calls
 *   Docker's default profile allows a container without capabilities, less
 *   the ones capsule denies on top (below); everything else, and so every
 *   call added to the kernel after this list was written, fails with ENOSYS.
 *   ENOSYS and not EPERM: it is what the kernel answers for a call it does
 *   not have, so libcs and runtimes fall back to an older call (glibc from
 *   clone3 to clone, from faccessat2 to faccessat, from statx to fstatat),
 *   where EPERM is taken as a real error (Docker's EPERM for faccessat2 broke
 *   glibc 2.33 images in 2021; runc has answered ENOSYS for calls newer than
 *   the profile since 1.0, podman's profile defaults to ENOSYS). The calls
 *   capsule denies by name get EPERM, so a program sees an ordinary error.
 *   Namespaces, capabilities and the read-only mounts already stop most of
 *   these calls; the filter takes the kernel code behind them out of reach,
 *   which is what matters for the next kernel bug (io_uring, bpf, userfaultfd
 *   and keyctl each had several).
 * - `default-kill`: the same lists, but a call capsule denies by name ends the
 *   run with a SECURITY_VIOLATION verdict naming it (an unknown call still
 *   gets ENOSYS, so that libcs can fall back).
 * - `compile`: for the compile phase of a judge, and any build of untrusted
 *   source: `default-kill` (compilers start processes: gcc runs cc1, as and
 *   ld; go build its compile and link tools), where a socket of another
 *   family than AF_UNIX fails with EACCES. No compiler needs the network,
 *   and code that runs at compile time (Rust's procedural macros and build
 *   scripts, Java's annotation processors, a Makefile) must not reach out
 *   even where the sandbox is given one. An error, not a violation: javac's
 *   JVM opens an AF_INET and an AF_INET6 socket at start to probe IPv6
 *   support, and goes on without.
 * - `strict`: an allow-list for judge submissions (C, C++, Python, Go, Java,
 *   JavaScript on node, Rust): files already open or in the rootfs, memory,
 *   time, signals to oneself, threads, but no new process. Anything else ends
 *   the run with SECURITY_VIOLATION ("forbidden syscall: socket").
 */
import type { OciSeccompProfile, OciSyscallRule } from './profile.js';

export const BUILTIN_PROFILES = ['default', 'default-kill', 'strict', 'compile', 'none'] as const;
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

/*
 * The unconditional allow rule of Docker's default profile (moby/profiles,
 * seccomp/default.json, 2026), less what capsule denies below and less
 * statmount, listmount (mount-table queries: capsule's mounts are not the
 * program's business), memfd_secret (secret memory: kernel surface no
 * program here needs) and the names of 32-bit ABIs (chown32, mmap2,
 * socketcall, the *_time64 calls), which capsule's filter kills anyway. ioctl, socket, personality and clone are allowed
 * with conditions (the rules below). Names this machine's libseccomp does
 * not know are left out of the filter, so those calls get ENOSYS too.
 */
const DOCKER_ALLOWED = [
  'accept',
  'accept4',
  'access',
  'alarm',
  'bind',
  'brk',
  'cachestat',
  'capget',
  'capset',
  'chdir',
  'chmod',
  'chown',
  'clock_getres',
  'clock_gettime',
  'clock_nanosleep',
  'close',
  'close_range',
  'connect',
  'copy_file_range',
  'creat',
  'dup',
  'dup2',
  'dup3',
  'epoll_create',
  'epoll_create1',
  'epoll_ctl',
  'epoll_ctl_old',
  'epoll_pwait',
  'epoll_pwait2',
  'epoll_wait',
  'epoll_wait_old',
  'eventfd',
  'eventfd2',
  'execve',
  'execveat',
  'exit',
  'exit_group',
  'faccessat',
  'faccessat2',
  'fadvise64',
  'fallocate',
  'fanotify_mark',
  'fchdir',
  'fchmod',
  'fchmodat',
  'fchmodat2',
  'fchown',
  'fchownat',
  'fcntl',
  'fdatasync',
  'fgetxattr',
  'flistxattr',
  'flock',
  'fork',
  'fremovexattr',
  'fsetxattr',
  'fstat',
  'fstatfs',
  'fsync',
  'ftruncate',
  'futex',
  'futex_requeue',
  'futex_wait',
  'futex_waitv',
  'futex_wake',
  'futimesat',
  'getcpu',
  'getcwd',
  'getdents',
  'getdents64',
  'getegid',
  'geteuid',
  'getgid',
  'getgroups',
  'getitimer',
  'getpeername',
  'getpgid',
  'getpgrp',
  'getpid',
  'getppid',
  'getpriority',
  'getrandom',
  'getresgid',
  'getresuid',
  'getrlimit',
  'get_robust_list',
  'getrusage',
  'getsid',
  'getsockname',
  'getsockopt',
  'get_thread_area',
  'gettid',
  'gettimeofday',
  'getuid',
  'getxattr',
  'getxattrat',
  'inotify_add_watch',
  'inotify_init',
  'inotify_init1',
  'inotify_rm_watch',
  'io_cancel',
  'io_destroy',
  'io_getevents',
  'io_pgetevents',
  'ioprio_get',
  'ioprio_set',
  'io_setup',
  'io_submit',
  'kill',
  'landlock_add_rule',
  'landlock_create_ruleset',
  'landlock_restrict_self',
  'lchown',
  'lgetxattr',
  'link',
  'linkat',
  'listen',
  'listxattr',
  'listxattrat',
  'llistxattr',
  'lremovexattr',
  'lseek',
  'lsetxattr',
  'lstat',
  'madvise',
  'map_shadow_stack',
  'membarrier',
  'memfd_create',
  'mincore',
  'mkdir',
  'mkdirat',
  'mknod',
  'mknodat',
  'mlock',
  'mlock2',
  'mlockall',
  'mmap',
  'mprotect',
  'mq_getsetattr',
  'mq_notify',
  'mq_open',
  'mq_timedreceive',
  'mq_timedsend',
  'mq_unlink',
  'mremap',
  'mseal',
  'msgctl',
  'msgget',
  'msgrcv',
  'msgsnd',
  'msync',
  'munlock',
  'munlockall',
  'munmap',
  'nanosleep',
  'newfstatat',
  'open',
  'openat',
  'openat2',
  'pause',
  'pidfd_open',
  'pidfd_send_signal',
  'pipe',
  'pipe2',
  'pkey_alloc',
  'pkey_free',
  'pkey_mprotect',
  'poll',
  'ppoll',
  'prctl',
  'pread64',
  'preadv',
  'preadv2',
  'prlimit64',
  'process_mrelease',
  'pselect6',
  'pwrite64',
  'pwritev',
  'pwritev2',
  'read',
  'readahead',
  'readlink',
  'readlinkat',
  'readv',
  'recvfrom',
  'recvmmsg',
  'recvmsg',
  'remap_file_pages',
  'removexattr',
  'removexattrat',
  'rename',
  'renameat',
  'renameat2',
  'restart_syscall',
  'rmdir',
  'rseq',
  'rt_sigaction',
  'rt_sigpending',
  'rt_sigprocmask',
  'rt_sigqueueinfo',
  'rt_sigreturn',
  'rt_sigsuspend',
  'rt_sigtimedwait',
  'rt_tgsigqueueinfo',
  'sched_getaffinity',
  'sched_getattr',
  'sched_getparam',
  'sched_get_priority_max',
  'sched_get_priority_min',
  'sched_getscheduler',
  'sched_rr_get_interval',
  'sched_setaffinity',
  'sched_setattr',
  'sched_setparam',
  'sched_setscheduler',
  'sched_yield',
  'seccomp',
  'select',
  'semctl',
  'semget',
  'semop',
  'semtimedop',
  'sendfile',
  'sendmmsg',
  'sendmsg',
  'sendto',
  'setfsgid',
  'setfsuid',
  'setgid',
  'setgroups',
  'setitimer',
  'setpgid',
  'setpriority',
  'setregid',
  'setresgid',
  'setresuid',
  'setreuid',
  'setrlimit',
  'set_robust_list',
  'setsid',
  'setsockopt',
  'set_thread_area',
  'set_tid_address',
  'setuid',
  'setxattr',
  'setxattrat',
  'shmat',
  'shmctl',
  'shmdt',
  'shmget',
  'shutdown',
  'sigaltstack',
  'signalfd',
  'signalfd4',
  'socketpair',
  'splice',
  'stat',
  'statfs',
  'statx',
  'symlink',
  'symlinkat',
  'sync',
  'sync_file_range',
  'syncfs',
  'sysinfo',
  'tee',
  'tgkill',
  'time',
  'timer_create',
  'timer_delete',
  'timer_getoverrun',
  'timer_gettime',
  'timer_settime',
  'timerfd_create',
  'timerfd_gettime',
  'timerfd_settime',
  'times',
  'tkill',
  'truncate',
  'umask',
  'uname',
  'unlink',
  'unlinkat',
  'uretprobe',
  'utime',
  'utimensat',
  'utimes',
  'vfork',
  'vmsplice',
  'wait4',
  'waitid',
  'write',
  'writev',
];

/*
 * Calls Docker gives only with a capability, or by architecture, that capsule
 * allowed before it was an allow-list and that act on the calling process
 * alone: arch_prctl (x86_64's TLS register; Docker: amd64 only), the NUMA
 * memory policy calls (Docker: CAP_SYS_NICE; the JVM and node probe them; the
 * kernel checks CAP_SYS_NICE itself for moving other processes' pages).
 */
const CAPSULE_ALLOWED = ['arch_prctl', 'get_mempolicy', 'set_mempolicy', 'mbind', 'set_mempolicy_home_node'];

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
    names: ['clone3'],
    action: 'SCMP_ACT_ERRNO',
    errnoRet: ENOSYS,
    comment:
      'clone3 passes its flags in memory, which seccomp cannot read: ENOSYS makes glibc fall back to clone, which is filtered (Docker does the same)',
  },
];

const CLONE_NAMESPACE_MASK = Object.values(CLONE_NAMESPACE_FLAGS).reduce((a, b) => a | b, 0);
const LOW32 = 0xffffffff;

/**
 * clone(2): allowed without a namespace flag, denied with one, one rule per
 * flag (a rule ANDs its comparisons, so "any of" takes several rules). The
 * kernel reads the low 32 bits of the flags (kernel/fork.c), which both masks
 * keep to.
 */
function cloneRules(action: string): OciSyscallRule[] {
  return [
    {
      names: ['clone'],
      action: 'SCMP_ACT_ALLOW',
      args: [{ index: 0, value: CLONE_NAMESPACE_MASK, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
    },
    ...Object.entries(CLONE_NAMESPACE_FLAGS).map(([name, flag]) => ({
      names: ['clone'],
      action,
      comment: `clone(2) with ${name}`,
      args: [{ index: 0, value: flag, valueTwo: flag, op: 'SCMP_CMP_MASKED_EQ' }],
    })),
  ];
}

/**
 * personality(2) with an unsafe bit. One comparison per argument per rule,
 * so: each unsafe bit with bit 31 clear (which keeps the 0xffffffff query
 * out), bit 31 set without every other bit (no valid persona sets it), and
 * any value above 32 bits (the kernel truncates to unsigned int). The allow
 * rules are the exact complement: the query, and values below 2^31 without
 * an unsafe bit. The rules for one call must not overlap: libseccomp does not
 * order rules with different actions.
 */
function personalityRules(action: string): OciSyscallRule[] {
  const rule = (
    act: string,
    value: number | bigint,
    valueTwo: number | bigint,
    op = 'SCMP_CMP_MASKED_EQ',
  ) => ({
    names: ['personality'],
    action: act,
    args: [{ index: 0, value, valueTwo, op }],
  });
  const unsafe = PERSONALITY_UNSAFE.reduce((a, b) => a | b, 0);
  const rules: OciSyscallRule[] = [
    rule('SCMP_ACT_ALLOW', LOW32, 0, 'SCMP_CMP_EQ'),
    rule('SCMP_ACT_ALLOW', 0xffffffff80000000n | BigInt(unsafe), 0),
  ];
  rules.push(...PERSONALITY_UNSAFE.map((bit) => rule(action, bit + BIT31, bit)));
  for (let b = 0; b < 31; b++) rules.push(rule(action, BIT31 + 2 ** b, BIT31));
  rules.push(rule(action, LOW32, 0, 'SCMP_CMP_GT'));
  return rules;
}

/**
 * MASKED_EQ patterns on the low 32 bits that match every value but
 * `excluded`: for each bit, the values that share the excluded ones' prefix
 * above it and leave them there (a walk down a binary trie). The kernel reads
 * an int or unsigned int argument's low 32 bits only, so the upper half is
 * left out of every mask: 0x1_00005412 is TIOCSTI to the kernel.
 */
function allBut(excluded: number[]): { mask: number; value: number }[] {
  const out: { mask: number; value: number }[] = [];
  const walk = (prefix: number, bit: number, left: number[]) => {
    const mask = bit === 31 ? 0 : (LOW32 - (2 ** (bit + 1) - 1)) >>> 0;
    if (left.length === 0) return void out.push({ mask, value: prefix });
    if (bit < 0) return;
    const b = 2 ** bit;
    walk(
      prefix,
      bit - 1,
      left.filter((v) => (v & b) === 0),
    );
    walk(
      (prefix + b) >>> 0,
      bit - 1,
      left.filter((v) => (v & b) !== 0),
    );
  };
  walk(
    0,
    31,
    excluded.map((v) => v >>> 0),
  );
  return out;
}

/** A call allowed except for some values of one argument, which `action` denies. */
function allowAllBut(
  name: string,
  index: number,
  denied: { value: number; comment: string }[],
  action: string,
): OciSyscallRule[] {
  return [
    ...allBut(denied.map((d) => d.value)).map(({ mask, value }) => ({
      names: [name],
      action: 'SCMP_ACT_ALLOW',
      args: [{ index, value: mask, valueTwo: value, op: 'SCMP_CMP_MASKED_EQ' }],
    })),
    ...denied.map((d) => ({
      names: [name],
      action,
      comment: d.comment,
      args: [{ index, value: LOW32, valueTwo: d.value, op: 'SCMP_CMP_MASKED_EQ' }],
    })),
  ];
}

function defaultProfile(kill: boolean): OciSeccompProfile {
  const action = kill ? 'SCMP_ACT_KILL_PROCESS' : 'SCMP_ACT_ERRNO';
  const rules: OciSyscallRule[] = [
    { names: [...DOCKER_ALLOWED, ...CAPSULE_ALLOWED], action: 'SCMP_ACT_ALLOW' },
  ];
  for (const r of DENIED) {
    /* clone3's ENOSYS is not a denial but a redirection to clone: it stays ENOSYS. */
    rules.push(r.names[0] === 'clone3' ? r : { ...r, action });
  }
  rules.push(
    ...cloneRules(action),
    ...personalityRules(action),
    ...allowAllBut(
      'ioctl',
      1,
      [
        { value: TIOCSTI, comment: 'TIOCSTI: typing into a terminal the sandbox shares (CVE-2017-5226)' },
        { value: TIOCLINUX, comment: 'TIOCLINUX: the same through the Linux console' },
      ],
      action,
    ),
    ...allowAllBut(
      'socket',
      0,
      [
        { value: AF_VSOCK, comment: 'AF_VSOCK: not network-namespaced' },
        { value: AF_ALG, comment: 'AF_ALG: the kernel crypto API' },
      ],
      action,
    ),
  );
  return {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: ENOSYS,
    architectures: [nativeArch()],
    syscalls: rules,
  };
}

/**
 * `compile`: default-kill's lists, with socket(2) allowed for AF_UNIX alone
 * (glibc's name service probes nscd over one: javac's JVM, gcc's getpwuid)
 * and every other family EACCES. The rules for one call must not overlap
 * (see personalityRules): AF_UNIX exactly, and allBut's patterns for every
 * other value of the low 32 bits, which is what the kernel reads.
 */
function compileProfile(): OciSeccompProfile {
  const p = defaultProfile(true);
  const rules = (p.syscalls ?? []).filter((r) => !r.names.includes('socket'));
  rules.push(
    {
      names: ['socket'],
      action: 'SCMP_ACT_ALLOW',
      args: [{ index: 0, value: LOW32, valueTwo: AF_UNIX, op: 'SCMP_CMP_MASKED_EQ' }],
    },
    ...allBut([AF_UNIX]).map(({ mask, value }) => ({
      names: ['socket'],
      action: 'SCMP_ACT_ERRNO',
      errnoRet: EACCES,
      comment: 'compilers need no network',
      args: [{ index: 0, value: mask, valueTwo: value, op: 'SCMP_CMP_MASKED_EQ' }],
    })),
  );
  return { ...p, syscalls: rules };
}

/**
 * The strict allow-list. It is what a compiled C/C++ program, CPython's
 * startup, a Go binary, the JVM and node need (checked with strace on glibc
 * 2.36, Python 3.11, Go 1.19, OpenJDK 17 and node 20), and nothing that
 * reaches outside the process: no socket, no new process (threads only, see
 * threadCloneRule), no kill of anyone else, no ptrace, no new files outside
 * /tmp by policy of the mounts.
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
  /*
   * What threaded runtimes add, all on the process's own descriptors and
   * memory: event loops (node's libuv, Go's netpoller: epoll, eventfd),
   * node's probe of memory protection keys (pkey_*) and of its own
   * capabilities (capget, read-only), a thread's own name (prctl, below).
   */
  'epoll_create1',
  'epoll_ctl',
  'epoll_wait',
  'epoll_pwait',
  'epoll_pwait2',
  'eventfd2',
  'pkey_alloc',
  'pkey_free',
  'pkey_mprotect',
  'capget',
  /*
   * The JVM locks its performance-data file in /tmp (hsperfdata) at start;
   * without flock it warns on stderr, or needs -XX:-UsePerfData. An advisory
   * lock on a descriptor the program opened: another program meets it only
   * if it locks the same file.
   */
  'flock',
];

/* clone(2) flags (<linux/sched.h>). */
const CLONE_VM = 0x100;
const CLONE_SIGHAND = 0x800;
const CLONE_THREAD = 0x10000;
/**
 * The flags thread libraries pass to clone(2) for a new thread:
 * - glibc 2.34+ pthread_create (sysdeps/unix/sysv/linux/pthread_create.c,
 *   when clone3 is ENOSYS): VM, FS, FILES, SYSVSEM, SIGHAND, THREAD, SETTLS,
 *   PARENT_SETTID, CHILD_CLEARTID (0x3d0f00);
 * - musl pthread_create: the same and CLONE_DETACHED (0x400000, ignored by
 *   the kernel since 2.6.2);
 * - Go's runtime (runtime/os_linux.go, cloneFlags): VM, FS, FILES, SIGHAND,
 *   SYSVSEM, THREAD (0x50f00; Go sets its TLS with arch_prctl);
 * - CLONE_CHILD_SETTID, which Bionic and some green-thread runtimes add.
 * None of them makes a process: CLONE_THREAD puts the child in the caller's
 * thread group, so it shares its pid, memory, limits and fate (clone(2)).
 */
const THREAD_FLAGS_ALLOWED =
  CLONE_VM |
  0x200 /* CLONE_FS */ |
  0x400 /* CLONE_FILES */ |
  CLONE_SIGHAND |
  CLONE_THREAD |
  0x40000 /* CLONE_SYSVSEM */ |
  0x80000 /* CLONE_SETTLS */ |
  0x100000 /* CLONE_PARENT_SETTID */ |
  0x200000 /* CLONE_CHILD_CLEARTID */ |
  0x400000 /* CLONE_DETACHED */ |
  0x1000000; /* CLONE_CHILD_SETTID */
/* The kernel refuses CLONE_THREAD without CLONE_SIGHAND, and CLONE_SIGHAND without CLONE_VM (clone(2), EINVAL). */
const THREAD_FLAGS_REQUIRED = CLONE_VM | CLONE_SIGHAND | CLONE_THREAD;

/**
 * clone(2) for a thread, and nothing else: one masked comparison checks both
 * that no flag outside THREAD_FLAGS_ALLOWED is set (no namespace, no
 * CLONE_VFORK, CLONE_PARENT, CLONE_PTRACE, CLONE_PIDFD, no exit signal in
 * the low byte, which a thread does not have) and that the required ones
 * are. The mask covers the low 32 bits only, as the kernel reads them
 * (kernel/fork.c: lower_32_bits(clone_flags)). fork(2), vfork(2), glibc's
 * fork() and posix_spawn() (clone without CLONE_THREAD) get the default: a
 * violation.
 */
function threadCloneRule(): OciSyscallRule {
  return {
    names: ['clone'],
    action: 'SCMP_ACT_ALLOW',
    comment: 'clone(2) of a thread',
    args: [
      {
        index: 0,
        value: ((LOW32 & ~THREAD_FLAGS_ALLOWED) | THREAD_FLAGS_REQUIRED) >>> 0,
        valueTwo: THREAD_FLAGS_REQUIRED,
        op: 'SCMP_CMP_MASKED_EQ',
      },
    ],
  };
}

/* prctl(2) options a thread library or runtime calls on itself: the JVM, Rust and glibc name their threads. */
const PR_SET_NAME = 15;
const PR_GET_NAME = 16;

function strictProfile(): OciSeccompProfile {
  return {
    defaultAction: 'SCMP_ACT_KILL_PROCESS',
    architectures: [nativeArch()],
    syscalls: [
      { names: STRICT_ALLOWED, action: 'SCMP_ACT_ALLOW' },
      threadCloneRule(),
      /*
       * clone3 passes its flags in memory, where seccomp cannot read them, so
       * it cannot be allowed for threads only: ENOSYS, as the kernel answers
       * for a call it lacks, makes glibc (2.34+) and others fall back to
       * clone, which the rule above checks. The default profile does the same.
       */
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
      ...[PR_SET_NAME, PR_GET_NAME].map((option) => ({
        names: ['prctl'],
        action: 'SCMP_ACT_ALLOW',
        args: [{ index: 0, value: LOW32, valueTwo: option, op: 'SCMP_CMP_MASKED_EQ' }],
      })),
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
       * Only what isatty() and CPython make: TCGETS, TIOCGWINSZ, FIONREAD,
       * FIOCLEX/FIONCLEX (CPython sets close-on-exec with them), and FIONBIO
       * (libuv makes its descriptors non-blocking with it: fcntl's O_NONBLOCK).
       */
      ...[0x5401, 0x5413, 0x541b, 0x5450, 0x5451, 0x5421].map((cmd) => ({
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
    case 'compile':
      return compileProfile();
    case 'none':
      return null;
  }
}
