/**
 * Milliseconds on the monotonic clock, for wall times and deadlines.
 *
 * process.hrtime() reads CLOCK_MONOTONIC, as performance.now() does, but the global
 * `performance` is a lazy getter that loads perf_hooks and its modules on first use: 0.83 ms
 * of a `capsule run` process under V8's profiler (docs/performance.md), for a clock this
 * reads just as well. Only differences of its values mean anything.
 */
export function monotonicMs(): number {
  const [s, ns] = process.hrtime();
  return s * 1e3 + ns / 1e6;
}
