/*
 * probe: a small static program the tests run inside the sandbox to see it
 * from the inside. Isolation is asserted from what the probe observes, not
 * inferred from outside. Built static by test/global-setup.ts.
 *
 *   probe info                 JSON: pid, ids, capabilities, fds, env, net, mounts...
 *   probe exit N               exit with code N
 *   probe signal N             kill itself with signal N
 *   probe cat                  copy stdin to stdout
 *   probe sleep MS [marker]    sleep
 *   probe burn MS              spin on the CPU for MS of CPU time
 *   probe orphans N            leave N orphans that exit later; report zombies seen
 *   probe daemon MARKER        leave a setsid'd child sleeping 60 s, exit at once
 *   probe open PATH            try to open PATH for reading; print errno name or "ok"
 *   probe write PATH           try to create PATH; print errno name or "ok"
 *   probe fill-tmp MIB         write MIB MiB to /tmp; print bytes written and errno
 *   probe mem MIB              allocate and touch MIB MiB, then exit 0
 *   probe threads N MS         N threads, each burning MS ms of its own CPU time
 *   probe forkbomb             fork forever (children too)
 *   probe spew                 write to stdout forever
 *   probe fsize BYTES          write BYTES to /tmp/f
 *   probe dev PATH...          JSON per path: stat (type, major, minor, mode) and open for read, for write
 *   probe mknod PATH MAJ MIN   try to make a character device; print errno name or "ok"
 *   probe forge SIG            send SIG to PID 1 by kill, tgkill and rt_sigqueueinfo (si_pid 0), exit 0
 *   probe hide MIB MS          SIGCHLD ignored: a child allocates MIB MiB and burns MS ms, reaped by the kernel
 *   probe withdraw N           N threads signal a thread that calls mount(2); print what the call returned
 *   probe forbidden            call mount(2) once from the only thread; print what it returned
 *   probe loopback             TCP server and client on 127.0.0.1; then connect to 10.0.0.1: errno names
 *   probe securebits           print prctl(PR_GET_SECUREBITS) in decimal
 *   probe inotify N [MS]       make up to N inotify instances; print "COUNT ERRNO-NAME|ok"; hold them MS ms
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <pthread.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void json_str(const char *s) {
  putchar('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') printf("\\%c", *s);
    else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
    else putchar(*s);
  }
  putchar('"');
}

/* The value of "Key:" in /proc/self/status, trimmed. */
static void status_field(const char *key, char *out, size_t n) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  out[0] = 0;
  if (!f) return;
  size_t kl = strlen(key);
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
      char *v = line + kl + 1;
      while (*v == ' ' || *v == '\t') v++;
      v[strcspn(v, "\n")] = 0;
      snprintf(out, n, "%s", v);
    }
  }
  fclose(f);
}

static const char *errname(int e) {
  switch (e) {
    case 0: return "ok";
    case EROFS: return "EROFS";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ENXIO: return "ENXIO";
    case ENOSPC: return "ENOSPC";
    case EFBIG: return "EFBIG";
    case EINTR: return "EINTR";
    case ENETUNREACH: return "ENETUNREACH";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EMFILE: return "EMFILE";
    default: return strerror(e);
  }
}

static int count_zombies(void) {
  DIR *d = opendir("/proc");
  struct dirent *e;
  int z = 0;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    char path[300], buf[256];
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    int fd = open(path, O_RDONLY);
    if (fd < 0) continue;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) continue;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (p && p[1] == ' ' && p[2] == 'Z') z++;
  }
  if (d) closedir(d);
  return z;
}

static void info(void) {
  char buf[256], host[256];
  printf("{\"pid\":%d,\"ppid\":%d,\"uid\":%d,\"euid\":%d,\"gid\":%d,\"egid\":%d", getpid(), getppid(), getuid(),
         geteuid(), getgid(), getegid());
  gid_t groups[64];
  int ng = getgroups(64, groups);
  printf(",\"groups\":%d", ng);
  const char *keys[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"};
  for (unsigned i = 0; i < sizeof keys / sizeof *keys; i++) {
    status_field(keys[i], buf, sizeof buf);
    printf(",\"%s\":", keys[i]);
    json_str(buf);
  }
  gethostname(host, sizeof host);
  printf(",\"hostname\":");
  json_str(host);
  if (getcwd(buf, sizeof buf)) {
    printf(",\"cwd\":");
    json_str(buf);
  }
  printf(",\"sid\":%d", getsid(0));
  int tty = open("/dev/tty", O_RDWR);
  printf(",\"devTty\":\"%s\"", tty >= 0 ? "ok" : errname(errno));
  if (tty >= 0) close(tty);

  printf(",\"fds\":[");
  DIR *d = opendir("/proc/self/fd");
  int dfd = dirfd(d), first = 1;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.' || atoi(e->d_name) == dfd) continue;
    printf("%s%s", first ? "" : ",", e->d_name);
    first = 0;
  }
  closedir(d);
  printf("],\"env\":[");
  for (char **v = environ; *v; v++) {
    if (v != environ) putchar(',');
    json_str(*v);
  }
  printf("],\"netdevs\":[");
  FILE *f = fopen("/proc/net/dev", "r");
  first = 1;
  while (f && fgets(buf, sizeof buf, f)) {
    char *colon = strchr(buf, ':');
    if (!colon) continue;
    *colon = 0;
    char *name = buf;
    while (*name == ' ') name++;
    if (!first) putchar(',');
    json_str(name);
    first = 0;
  }
  if (f) fclose(f);
  printf("],\"procPids\":[");
  d = opendir("/proc");
  first = 1;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    printf("%s%s", first ? "" : ",", e->d_name);
    first = 0;
  }
  if (d) closedir(d);
  printf("],\"root\":[");
  d = opendir("/");
  first = 1;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    if (!first) putchar(',');
    json_str(e->d_name);
    first = 0;
  }
  if (d) closedir(d);
  int fd = open("/probe-write-test", O_WRONLY | O_CREAT, 0644);
  printf("],\"rootWrite\":\"%s\"", fd >= 0 ? "ok" : errname(errno));
  if (fd >= 0) {
    close(fd);
    unlink("/probe-write-test");
  }
  fd = open("/tmp/probe-write-test", O_WRONLY | O_CREAT, 0644);
  printf(",\"tmpWrite\":\"%s\"", fd >= 0 ? "ok" : errname(errno));
  if (fd >= 0) {
    close(fd);
    unlink("/tmp/probe-write-test");
  }
  struct sigaction sa;
  sigaction(SIGPIPE, NULL, &sa);
  printf(",\"sigpipe\":\"%s\"", sa.sa_handler == SIG_IGN ? "ignored" : "default");
  sigset_t mask;
  sigprocmask(SIG_SETMASK, NULL, &mask);
  printf(",\"sigmaskEmpty\":%s", sigisemptyset(&mask) ? "true" : "false");
  printf(",\"dumpable\":%d}\n", prctl(PR_GET_DUMPABLE));
}

/* What a program sees of a device node: its stat, and whether open(2) for read and for write pass. */
static void dev(int argc, char **argv) {
  putchar('[');
  for (int i = 2; i < argc; i++) {
    struct stat st;
    printf("%s{\"path\":", i > 2 ? "," : "");
    json_str(argv[i]);
    if (stat(argv[i], &st) != 0) {
      printf(",\"stat\":\"%s\"}", errname(errno));
      continue;
    }
    printf(",\"stat\":\"ok\",\"type\":\"%s\",\"major\":%u,\"minor\":%u,\"mode\":%u",
           S_ISCHR(st.st_mode) ? "c" : S_ISBLK(st.st_mode) ? "b" : "other", major(st.st_rdev), minor(st.st_rdev),
           (unsigned)(st.st_mode & 07777));
    const int flags[2] = {O_RDONLY, O_WRONLY};
    const char *names[2] = {"read", "write"};
    for (int k = 0; k < 2; k++) {
      int fd = open(argv[i], flags[k] | O_NONBLOCK);
      printf(",\"%s\":\"%s\"", names[k], fd >= 0 ? "ok" : errname(errno));
      if (fd >= 0) close(fd);
    }
    putchar('}');
  }
  printf("]\n");
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

static void burn_clock(clockid_t clock, long ms) {
  struct timespec t;
  for (;;) {
    clock_gettime(clock, &t);
    if (t.tv_sec * 1000 + t.tv_nsec / 1000000 >= ms) return;
  }
}
static void burn(long ms) { burn_clock(CLOCK_PROCESS_CPUTIME_ID, ms); }
static void *burn_thread(void *arg) {
  burn_clock(CLOCK_THREAD_CPUTIME_ID, (long)arg);
  return NULL;
}

/* withdraw: the victim thread makes one forbidden call while the others signal it without pause. */
static volatile pid_t victim_tid;
static volatile int signallers_ready, signallers_wanted, call_done;
static void on_signal(int sig) { (void)sig; }
static void *victim(void *out) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal; /* no SA_RESTART: an interrupted call returns EINTR */
  sigaction(SIGUSR1, &sa, NULL);
  victim_tid = (pid_t)syscall(SYS_gettid);
  while (signallers_ready < signallers_wanted) {
  }
  long r = syscall(SYS_mount, "none", "/tmp", "tmpfs", 0L, NULL);
  *(int *)out = r < 0 ? errno : 0;
  call_done = 1;
  return NULL;
}
static void *signaller(void *arg) {
  (void)arg;
  while (!victim_tid) {
  }
  __sync_fetch_and_add(&signallers_ready, 1);
  while (!call_done) syscall(SYS_tgkill, getpid(), victim_tid, SIGUSR1);
  return NULL;
}

/* loopback: a listener and a client on 127.0.0.1 in one process; prints "loopback: ok" or an errno name. */
static const char *loopback(void) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  int s = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0 || c < 0) return errname(errno);
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 1) < 0 ||
      getsockname(s, (struct sockaddr *)&a, &len) < 0)
    return errname(errno);
  if (connect(c, (struct sockaddr *)&a, sizeof a) < 0) return errname(errno);
  int conn = accept(s, NULL, NULL);
  if (conn < 0) return errname(errno);
  char buf[5] = {0};
  if (write(c, "ping", 4) != 4 || read(conn, buf, 4) != 4) return errname(errno);
  return strcmp(buf, "ping") ? "garbled" : "ok";
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  const char *cmd = argv[1];
  long n = argc > 2 ? atol(argv[2]) : 0;
  if (!strcmp(cmd, "info")) {
    info();
  } else if (!strcmp(cmd, "inotify")) {
    long made = 0;
    int e = 0;
    for (; made < n; made++)
      if (inotify_init1(IN_CLOEXEC) < 0) {
        e = errno;
        break;
      }
    printf("%ld %s\n", made, errname(e));
    fflush(stdout);
    if (argc > 3) sleep_ms(atol(argv[3]));
  } else if (!strcmp(cmd, "securebits")) {
    printf("%d\n", prctl(PR_GET_SECUREBITS));
  } else if (!strcmp(cmd, "exit")) {
    return (int)n;
  } else if (!strcmp(cmd, "signal")) {
    signal((int)n, SIG_DFL);
    kill(getpid(), (int)n);
    sleep_ms(1000);
    return 99;
  } else if (!strcmp(cmd, "cat")) {
    char buf[65536];
    ssize_t r;
    while ((r = read(0, buf, sizeof buf)) > 0) {
      for (ssize_t off = 0; off < r;) {
        ssize_t w = write(1, buf + off, r - off);
        if (w <= 0) return 3;
        off += w;
      }
    }
  } else if (!strcmp(cmd, "sleep")) {
    sleep_ms(n);
  } else if (!strcmp(cmd, "burn")) {
    burn(n);
  } else if (!strcmp(cmd, "orphans")) {
    for (long i = 0; i < n; i++) {
      if (fork() == 0) {
        if (fork() == 0) { /* the grandchild: orphaned when its parent exits, then exits itself */
          sleep_ms(50);
          _exit(0);
        }
        _exit(0);
      }
    }
    while (wait(NULL) > 0) {
    }
    sleep_ms(300); /* the orphans are long gone: reaped by PID 1, or zombies */
    printf("{\"zombies\":%d}\n", count_zombies());
  } else if (!strcmp(cmd, "daemon")) {
    if (fork() == 0) {
      setsid();
      sleep_ms(60000);
      _exit(0);
    }
    sleep_ms(50);
  } else if (!strcmp(cmd, "open")) {
    int fd = open(argv[2], O_RDONLY);
    printf("%s\n", fd >= 0 ? "ok" : errname(errno));
  } else if (!strcmp(cmd, "write")) {
    int fd = open(argv[2], O_WRONLY | O_CREAT, 0644);
    printf("%s\n", fd >= 0 ? "ok" : errname(errno));
  } else if (!strcmp(cmd, "dev")) {
    dev(argc, argv);
  } else if (!strcmp(cmd, "mknod")) {
    int r = mknod(argv[2], S_IFCHR | 0666, makedev(atoi(argv[3]), atoi(argv[4])));
    printf("%s\n", r == 0 ? "ok" : errname(errno));
  } else if (!strcmp(cmd, "fill-tmp")) {
    int fd = open("/tmp/fill", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    static char block[1 << 20];
    long total = 0;
    int err = 0;
    for (long i = 0; i < n; i++) {
      ssize_t w = write(fd, block, sizeof block);
      if (w < 0) {
        err = errno;
        break;
      }
      total += w;
      if (w < (ssize_t)sizeof block) {
        err = ENOSPC;
        break;
      }
    }
    printf("{\"bytes\":%ld,\"error\":\"%s\"}\n", total, errname(err));
  } else if (!strcmp(cmd, "mem")) {
    size_t size = (size_t)n << 20;
    char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return 3;
    for (size_t i = 0; i < size; i += 4096) p[i] = 1;
    printf("touched %ld MiB\n", n);
  } else if (!strcmp(cmd, "threads")) {
    long ms = atol(argv[3]);
    pthread_t t[64];
    for (long i = 0; i < n && i < 64; i++) pthread_create(&t[i], NULL, burn_thread, (void *)ms);
    for (long i = 0; i < n && i < 64; i++) pthread_join(t[i], NULL);
  } else if (!strcmp(cmd, "forkbomb")) {
    for (;;) fork();
  } else if (!strcmp(cmd, "spew")) {
    static char block[1 << 16];
    memset(block, 'x', sizeof block);
    for (;;)
      if (write(1, block, sizeof block) < 0) return 3;
  } else if (!strcmp(cmd, "fsize")) {
    int fd = open("/tmp/f", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    static char block[1 << 16];
    for (long left = n; left > 0;) {
      ssize_t w = write(fd, block, left < (long)sizeof block ? left : (long)sizeof block);
      if (w < 0) return 3;
      left -= w;
    }
  } else if (!strcmp(cmd, "forge")) {
    /* Each way a process can address PID 1; rt_sigqueueinfo also claims si_pid 0, as if from outside. */
    int sig = (int)n;
    printf("kill: %s\n", errname(kill(1, sig) ? errno : 0));
    printf("tgkill: %s\n", errname(syscall(SYS_tgkill, 1, 1, sig) ? errno : 0));
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_signo = sig;
    si.si_code = SI_QUEUE;
    si.si_pid = 0;
    si.si_uid = 0;
    printf("sigqueue: %s\n", errname(syscall(SYS_rt_sigqueueinfo, 1, sig, &si) ? errno : 0));
    fflush(stdout);
    sleep_ms(200); /* time for capsule-init to act on them, were it to */
  } else if (!strcmp(cmd, "hide")) {
    /* SIGCHLD ignored: the kernel reaps the child itself, so it never reaches RUSAGE_CHILDREN (wait(2)). */
    signal(SIGCHLD, SIG_IGN);
    pid_t child = fork();
    if (child == 0) {
      size_t size = (size_t)n << 20;
      char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) _exit(3);
      for (size_t i = 0; i < size; i += 4096) p[i] = 1;
      burn(atol(argv[3]));
      _exit(0);
    }
    while (wait(NULL) > 0 || errno == EINTR) {
    }
  } else if (!strcmp(cmd, "withdraw")) {
    pthread_t v, t[64];
    int err = -1;
    signallers_wanted = (int)(n < 64 ? n : 64);
    pthread_create(&v, NULL, victim, &err);
    for (long i = 0; i < n && i < 64; i++) pthread_create(&t[i], NULL, signaller, NULL);
    for (long i = 0; i < n && i < 64; i++) pthread_join(t[i], NULL);
    pthread_join(v, NULL);
    printf("mount: %s\n", errname(err));
  } else if (!strcmp(cmd, "forbidden")) {
    long r = syscall(SYS_mount, "none", "/tmp", "tmpfs", 0L, NULL);
    printf("mount: %s\n", errname(r < 0 ? errno : 0));
  } else if (!strcmp(cmd, "loopback")) {
    printf("loopback: %s\n", loopback());
    struct sockaddr_in out = {.sin_family = AF_INET, .sin_port = htons(80)};
    inet_pton(AF_INET, "10.0.0.1", &out.sin_addr);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    printf("outside: %s\n", errname(connect(c, (struct sockaddr *)&out, sizeof out) ? errno : 0));
  } else {
    fprintf(stderr, "probe: unknown command %s\n", cmd);
    return 2;
  }
  fflush(stdout);
  return 0;
}
