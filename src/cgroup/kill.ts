/**
 * SIGKILL a list of pids read from a cgroup.procs file.
 *
 * The list is a snapshot: a pid read here could exit and, in theory, be reused by an
 * unrelated process before the kill. The window is microseconds and pids are handed out
 * cyclically (pid_max is 4194304 on 64-bit), so it is accepted; v2 avoids it entirely with
 * cgroup.kill, which the kernel applies atomically to the cgroup's members.
 */
export function killPids(pids: readonly number[]): boolean {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch (cause) {
      // ESRCH: it exited since the read; anything else (EPERM) cannot happen as root.
      if ((cause as NodeJS.ErrnoException).code !== 'ESRCH') throw cause;
    }
  }
  return pids.length > 0;
}
