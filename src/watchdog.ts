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
 *
 * Node's timers are not exact: one can fire up to a millisecond early (the loop's clock
 * is cached and rounded), and one longer than 2^31-1 ms fires after 1 ms with a
 * TimeoutOverflowWarning. So every timer is at most MAX_TIMER_MS long, and the wall
 * timer re-checks the elapsed time when it fires and re-arms for what is left: a
 * TIME_LIMIT verdict means the limit was reached, never 49.9 ms of a 50 ms limit.
 */
import { monotonicMs } from './clock.js';

/** The longest delay a Node timer takes (a signed 32-bit count of ms). */
export const MAX_TIMER_MS = 2 ** 31 - 1;
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
  /* One pending timer per limit: a re-armed check replaces the one that just fired. */
  let wallTimer: NodeJS.Timeout | undefined;
  let cpuTimer: NodeJS.Timeout | undefined;
  let done = false;
  const stop = () => {
    done = true;
    clearTimeout(wallTimer);
    clearTimeout(cpuTimer);
  };
  const fire = (which: 'wall_timer' | 'cpu_timer') => {
    if (done) return;
    stop();
    o.onLimit(which);
  };
  const after = (fn: () => void, ms: number) =>
    setTimeout(fn, Math.min(MAX_TIMER_MS, Math.max(1, Math.ceil(ms))));
  const wallLimit = o.wallTimeLimitMs;
  if (wallLimit !== null) {
    const checkWall = () => {
      const left = wallLimit - (monotonicMs() - o.startedAt);
      if (left <= 0) fire('wall_timer');
      else if (!done) wallTimer = after(checkWall, left);
    };
    checkWall();
  }
  const cpuLimit = o.cpuTimeLimitMs;
  if (cpuLimit !== null) {
    const checkCpu = () => {
      const used = o.readCpuMs();
      if (used === null) return;
      if (used >= cpuLimit) fire('cpu_timer');
      else if (!done) cpuTimer = after(checkCpu, (cpuLimit - used) / o.parallelism);
    };
    cpuTimer = after(checkCpu, cpuLimit / o.parallelism);
  }
  return stop;
}
