/**
 * The parent's half of limit enforcement: timers, not polling.
 *
 * - Wall time: one timer for the time left.
 * - CPU time: the cgroup's CPU counter is read when the limit could first be reached
 *   (time left / CPUs the sandbox can use), then again after the same calculation on
 *   what is left, so the checks get closer together only near the limit: a run that
 *   ends well under its limit is read once or twice, and the overshoot past the limit
 *   is bounded by the last interval (at most 1 ms at the end) plus the kill.
 *   isolate checks every 100 ms, nsjail every second.
 */
export interface WatchdogOptions {
  startedAt: number;
  wallTimeLimitMs: number | null;
  cpuTimeLimitMs: number | null;
  /** The sandbox's CPU time so far in ms, or null when it cannot be read. */
  readCpuMs: () => number | null;
  /** How many CPUs the sandbox can burn at once. */
  parallelism: number;
  /** Called at most once, with the limit that was passed. */
  onLimit: (which: 'wall_timer' | 'cpu_timer') => void;
}

/** Starts the timers; the returned function stops them. */
export function startWatchdog(o: WatchdogOptions): () => void {
  const timers: NodeJS.Timeout[] = [];
  let fired = false;
  const fire = (which: 'wall_timer' | 'cpu_timer') => {
    if (fired) return;
    fired = true;
    stop();
    o.onLimit(which);
  };
  const stop = () => {
    for (const t of timers) clearTimeout(t);
  };
  if (o.wallTimeLimitMs !== null) {
    const left = o.wallTimeLimitMs - (performance.now() - o.startedAt);
    timers.push(setTimeout(() => fire('wall_timer'), Math.max(0, left)));
  }
  const limit = o.cpuTimeLimitMs;
  if (limit !== null) {
    const check = () => {
      const used = o.readCpuMs();
      if (used === null) return;
      if (used >= limit) fire('cpu_timer');
      else timers.push(setTimeout(check, Math.max(1, (limit - used) / o.parallelism)));
    };
    timers.push(setTimeout(check, Math.max(1, limit / o.parallelism)));
  }
  return stop;
}
