/* What the exit of a sandbox-like child costs its parent when the exit tears the mount namespace
 * down, against the parent holding the namespace (see docs/performance.md: measured, not kept).
 * Child: new mount, PID, IPC and UTS namespaces, rootfs bound, proc and two tmpfs mounted,
 * pivot_root, old root detached; then it tells the parent, which (with HOLD=1) opens
 * /proc/PID/ns/mnt, lets it go, and times from the child's _exit to its own waitpid.
 * Prints one line per run: milliseconds. As root: exit-ns ROOTFS N HOLD  (ROOTFS with proc, tmp, dev) */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e3+t.tv_nsec/1e6;}
static const char *root; static int p1[2], p2[2];
static char stack[1<<16];
static int child(void *a){
  (void)a;
  if (mount(NULL,"/",NULL,MS_REC|MS_PRIVATE,NULL)) _exit(10);
  if (mount(root,root,NULL,MS_BIND|MS_REC,NULL)) _exit(11);
  char p[512];
  snprintf(p,sizeof p,"%s/proc",root); if (mount("proc",p,"proc",0,NULL)) _exit(12);
  snprintf(p,sizeof p,"%s/tmp",root); if (mount("tmpfs",p,"tmpfs",0,NULL)) _exit(13);
  snprintf(p,sizeof p,"%s/dev",root); if (mount("tmpfs",p,"tmpfs",0,NULL)) _exit(14);
  if (chdir(root)) _exit(15);
  if (syscall(SYS_pivot_root,".",".")) _exit(16);
  if (umount2(".",MNT_DETACH)) _exit(17);
  char c=1; write(p1[1],&c,1); read(p2[0],&c,1);
  double t=now(); write(p1[1],&t,sizeof t);
  _exit(0);
}
int main(int argc,char**argv){
  root=argv[1]; int n=atoi(argv[2]); int hold=atoi(argv[3]);
  double *d=malloc(n*sizeof(double));
  for(int i=0;i<n;i++){
    pipe(p1); pipe(p2);
    int pid=clone(child,stack+sizeof stack,CLONE_NEWNS|CLONE_NEWPID|CLONE_NEWIPC|CLONE_NEWUTS|SIGCHLD,NULL);
    char c; if(read(p1[0],&c,1)!=1){fprintf(stderr,"setup failed\n");return 1;}
    int nsfd=-1; if(hold){char p[64];snprintf(p,sizeof p,"/proc/%d/ns/mnt",pid);nsfd=open(p,O_RDONLY|O_CLOEXEC);}
    write(p2[1],&c,1); double t; read(p1[0],&t,sizeof t);
    int st; waitpid(pid,&st,0); d[i]=now()-t;
    if(st!=0){fprintf(stderr,"child status %d\n",st);return 1;}
    if(nsfd>=0) close(nsfd);
    close(p1[0]);close(p1[1]);close(p2[0]);close(p2[1]);
  }
  for(int i=0;i<n;i++) printf("%.4f\n",d[i]);
}
