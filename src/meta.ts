/**
 * isolate's meta file, so that a judge built on isolate (CMS, Judge0, Piston, ...)
 * can switch to capsule by changing the command it runs. One `key:value` per line,
 * the keys isolate writes (isolate(1), "META-FILES"):
 *
 *   capsule                    isolate
 *   cpuTimeMs / 1000           time          CPU seconds, all processes
 *   wallTimeMs / 1000          time-wall
 *   maxRssBytes / 1024         max-rss       KiB
 *   peakMemoryBytes / 1024     cg-mem        KiB, from the cgroup
 *   oomKilled                  cg-oom-killed 1 when the cgroup OOM killer struck
 *   exitCode                   exitcode      when it exited
 *   signal                     exitsig       when a signal killed it
 *   capsule killed it          killed        1: a time, output or memory limit
 *   verdict                    status        RE (RUNTIME_ERROR), SG (SIGNALED, MEMORY_LIMIT,
 *                                            OUTPUT_LIMIT, SECURITY_VIOLATION), TO (TIME_LIMIT),
 *                                            XX (capsule failed);
 *                                            absent when OK
 *   -                          message       isolate's wording
 */
import { constants as osConstants } from 'node:os';

import type { RunResult } from './run.js';

const seconds = (ms: number) => (ms / 1000).toFixed(3);

export function metaFromResult(r: RunResult<string | Buffer>): string {
  const lines: [string, string | number][] = [
    ['time', seconds(r.cpuTimeMs)],
    ['time-wall', seconds(r.wallTimeMs)],
  ];
  if (r.maxRssBytes !== null) lines.push(['max-rss', Math.round(r.maxRssBytes / 1024)]);
  if (r.peakMemoryBytes !== null) lines.push(['cg-mem', Math.round(r.peakMemoryBytes / 1024)]);
  if (r.oomKilled) lines.push(['cg-oom-killed', 1]);
  if (r.exitCode !== null) lines.push(['exitcode', r.exitCode]);
  if (r.signal !== null) lines.push(['exitsig', osConstants.signals[r.signal]]);
  const killedByUs =
    r.mechanism === 'cpu_timer' ||
    r.mechanism === 'wall_timer' ||
    r.mechanism === 'output_cap' ||
    r.mechanism === 'seccomp';
  if (killedByUs || r.verdict === 'MEMORY_LIMIT') lines.push(['killed', 1]);
  switch (r.verdict) {
    case 'OK':
      break;
    case 'RUNTIME_ERROR':
      lines.push(['status', 'RE'], ['message', `Exited with error status ${r.exitCode}`]);
      break;
    case 'TIME_LIMIT':
      lines.push(
        ['status', 'TO'],
        ['message', r.timeLimit === 'wall' ? 'Time limit exceeded (wall clock)' : 'Time limit exceeded'],
      );
      break;
    case 'OUTPUT_LIMIT':
      lines.push(['status', 'SG'], ['message', 'Output limit exceeded']);
      break;
    case 'SECURITY_VIOLATION':
      /* isolate has no status of its own for it: a signal (SIGSYS), with the call named. */
      lines.push(['status', 'SG'], ['message', `Forbidden syscall: ${r.violation?.syscall ?? 'unknown'}`]);
      break;
    default:
      lines.push(
        ['status', 'SG'],
        ['message', `Caught fatal signal ${r.signal ? osConstants.signals[r.signal] : 9}`],
      );
  }
  return lines.map(([k, v]) => `${k}:${v}\n`).join('');
}

/** The meta file for a run capsule could not start: isolate's internal-error status. */
export function metaFromError(message: string): string {
  return `status:XX\nmessage:${message.replace(/\n/g, ' ')}\n`;
}
