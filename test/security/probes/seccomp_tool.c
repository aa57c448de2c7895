/*
 * seccomp_tool: a helper, not a probe. One system call pattern per command,
 * for the seccomp tests and the benchmark:
 *
 *   hello                  write a line and exit 0 (what a judged program does)
 *   socket                 socket(AF_INET, SOCK_STREAM): "socket: ok" or the errno name
 *   mount                  mount(2) of a bogus type: the errno name
 *   raise-sigsys           kill itself with SIGSYS, as a program forging a violation would
 *   fork-socket            fork; the child calls socket(2); the parent waits
 *   own-filter             install an allow-everything filter of its own, then unshare(CLONE_NEWUSER)
 *   own-listener           install a filter of its own with a user-notification listener
 *   personality HEX...     personality(2) with each value: "ok" or the errno name, in order
 *   socket-family HEX...   socket(2) with each 64-bit value as the family (SOCK_SEQPACKET): "ok" or the errno name
 *   getppid N              N getppid(2) calls: the cheapest system call, for the filter's per-call cost
 *   threads-socket         a second thread calls socket(2) while the first sleeps
 *   clone-thread HEX...    clone(2) with each value | CLONE_SETTLS and a kernel address as the TLS,
 *                          which the kernel refuses (EPERM, x86_64's copy_thread) once seccomp let
 *                          the call through: the errno name, in order; a filter that refuses kills first
 *   clone3                 clone3(2) with no arguments: the kernel's EINVAL, or the filter's errno
 *   vfork                  vfork(2); the child _exits at once
 *   spawn                  posix_spawn(3) of /escape/seccomp_tool hello (glibc: clone3, then clone(CLONE_VM|CLONE_VFORK))
 */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "escape.h"

static void *socket_thread(void *unused) {
  (void)unused;
  socket(AF_INET, SOCK_STREAM, 0);
  return NULL;
}

int main(int argc, char **argv) {
  const char *cmd = arg(argc, argv, 1, "hello");
  if (!strcmp(cmd, "hello")) {
    printf("hello\n");
    return 0;
  }
  if (!strcmp(cmd, "socket")) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    printf("socket: %s\n", s >= 0 ? "ok" : err());
    return 0;
  }
  if (!strcmp(cmd, "mount")) {
    mount("none", "/", "capsule-no-such-fs", 0, NULL);
    printf("mount: %s\n", err());
    return 0;
  }
  if (!strcmp(cmd, "raise-sigsys")) {
    raise(SIGSYS); /* tgkill(2), which strict allows */
    return 0;
  }
  if (!strcmp(cmd, "fork-socket")) {
    pid_t pid = fork();
    if (pid == 0) {
      socket(AF_INET, SOCK_STREAM, 0);
      _exit(0);
    }
    waitpid(pid, NULL, 0);
    printf("child done\n");
    return 0;
  }
  if (!strcmp(cmd, "own-filter")) {
    struct sock_filter allow[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
    struct sock_fprog prog = {1, allow};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) printf("own filter: %s\n", err());
    printf("unshare: %s\n", unshare(CLONE_NEWUSER) == 0 ? "ok" : err());
    return 0;
  }
  if (!strcmp(cmd, "own-listener")) {
    struct sock_filter allow[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
    struct sock_fprog prog = {1, allow};
    long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    printf("own listener: %s\n", fd >= 0 ? "ok" : err());
    return 0;
  }
  if (!strcmp(cmd, "personality")) {
    /* each argument a persona in hex; prints what the kernel (or the filter) said to each */
    for (int i = 2; i < argc; i++) {
      unsigned long v = strtoul(argv[i], NULL, 16);
      long r = syscall(SYS_personality, v);
      printf("%s%s", i > 2 ? " " : "", r < 0 ? err() : "ok");
      if (r >= 0 && v != 0xffffffff) syscall(SYS_personality, 0);
    }
    printf("\n");
    return 0;
  }
  if (!strcmp(cmd, "socket-family")) {
    /* the kernel reads the family as an int: the upper 32 bits are dropped after the filter has looked */
    for (int i = 2; i < argc; i++) {
      unsigned long v = strtoul(argv[i], NULL, 16);
      long r = syscall(SYS_socket, v, SOCK_SEQPACKET, 0L);
      printf("%s%s", i > 2 ? " " : "", r < 0 ? err() : "ok");
      if (r >= 0) close((int)r);
    }
    printf("\n");
    return 0;
  }
  if (!strcmp(cmd, "getppid")) {
    long n = atol(arg(argc, argv, 2, "1000000"));
    for (long i = 0; i < n; i++) syscall(SYS_getppid);
    return 0;
  }
  if (!strcmp(cmd, "threads-socket")) {
    pthread_t t;
    pthread_create(&t, NULL, socket_thread, NULL);
    pthread_join(t, NULL);
    printf("joined\n");
    return 0;
  }
  if (!strcmp(cmd, "clone-thread")) {
    for (int i = 2; i < argc; i++) {
      unsigned long flags = strtoul(argv[i], NULL, 16) | CLONE_SETTLS;
      /* x86_64's argument order: flags, stack, parent_tid, child_tid, tls (clone(2), NOTES) */
      long r = syscall(SYS_clone, flags, NULL, NULL, NULL, 0xffff800000000000UL);
      if (r == 0) _exit(0); /* not reached: the TLS address is refused */
      printf("%s%s", i > 2 ? " " : "", r < 0 ? err() : "created");
    }
    printf("\n");
    return 0;
  }
  if (!strcmp(cmd, "clone3")) {
    long r = syscall(SYS_clone3, NULL, 0L);
    printf("clone3: %s\n", r < 0 ? err() : "ok");
    return 0;
  }
  if (!strcmp(cmd, "vfork")) {
    pid_t pid = vfork();
    if (pid == 0) _exit(0);
    waitpid(pid, NULL, 0);
    printf("vfork: %s\n", pid > 0 ? "ok" : err());
    return 0;
  }
  if (!strcmp(cmd, "spawn")) {
    extern char **environ;
    char *args[] = {"/escape/seccomp_tool", "hello", NULL};
    pid_t pid;
    int e = posix_spawn(&pid, args[0], NULL, NULL, args, environ);
    if (e == 0) waitpid(pid, NULL, 0);
    printf("spawn: %s\n", e == 0 ? "ok" : strerrorname_np(e));
    return 0;
  }
  fprintf(stderr, "seccomp_tool: unknown command %s\n", cmd);
  return 2;
}
