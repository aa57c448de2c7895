/**
 * run(): one program in one sandbox, start to result, as a thin layer over the sandbox
 * lifecycle (src/lifecycle.ts):
 *
 *   resolveOptions     validate and fill defaults (ConfigError, nothing started)
 *   launch             cgroup, host ids, stdio, clone and set up, exec capsule-init,
 *                      watchdog and abort listener (SetupError on any failed step)
 *   stdio              feed stdin's string or Buffer (or close it: EOF), capture stdout
 *                      and stderr up to outputLimitBytes, forwarding chunks to onOutput
 *   result             wait for the sandbox to be reaped and the outputs to reach EOF;
 *                      verdict, exit code or signal, times, memory, output
 */
import { closeSync } from 'node:fs';

import { deviceCgroupRules } from './devices/index.js';
import { explainPlan, type ExplainStep } from './explain.js';
import { LaunchedSandbox, type LaunchOptions, nativeOptions } from './lifecycle.js';
import { outOfDescriptors } from './out-of-fds.js';
import { cgroupLimits, rlimitPlan } from './limits.js';
import { native } from './native.js';
import { resolveOptions, type ResolvedOptions, type RunOptions } from './options.js';
import { type Captured, capture, type OnChunkResult } from './output.js';
import type { RunResult } from './result.js';
import { feed } from './stdio.js';

export type { RunResult } from './result.js';
export { nativeOptions } from './lifecycle.js';

export function run(options: RunOptions & { encoding: 'buffer' }): Promise<RunResult<Buffer>>;
export function run(options: RunOptions): Promise<RunResult<string>>;
export async function run(options: RunOptions): Promise<RunResult<string | Buffer>> {
  try {
    return await runResolved(resolveOptions(options), options);
  } catch (e) {
    throw outOfDescriptors(e) ?? e;
  }
}

/**
 * run() for options already resolved, with the lifecycle's launch hooks (a session's
 * command: src/session.ts). `options` gives the callbacks and the AbortSignal.
 */
export async function runResolved(
  opts: ResolvedOptions,
  options: RunOptions,
  hooks: Pick<LaunchOptions, 'adjust' | 'requireCgroup' | 'reaped'> = {},
): Promise<RunResult<string | Buffer>> {
  const sb = await LaunchedSandbox.launch(opts, {
    signal: options.signal,
    onSpawn: options.onSpawn,
    options,
    ...hooks,
  });
  return await sb.result(startStdio(sb, opts, options.onOutput, options.outputLimitBytes !== undefined));
}

/**
 * run()'s stdio: stdin's string or Buffer fed (any other stdin pipe closed: EOF), stdout
 * and stderr captured. Whatever throws here, or in onOutput later, ends the sandbox
 * (fail()) and run() rejects with it once the sandbox is gone.
 */
export function startStdio(
  sb: LaunchedSandbox,
  opts: ReturnType<typeof resolveOptions>,
  onOutput: RunOptions['onOutput'],
  explicitCap: boolean,
): Promise<[Captured, Captured]> | undefined {
  const stdinFd = sb.takeStdio(0);
  const stdoutFd = sb.takeStdio(1);
  const stderrFd = sb.takeStdio(2);
  /* With `terminal`: the pty's master, whose output is stdout (src/terminal.ts). */
  const term = sb.takeTerminal();
  try {
    /* A stdin string or Buffer is typed in: a terminal has no end of file to close. */
    if (
      term &&
      opts.stdin !== 'ignore' &&
      (typeof opts.stdin === 'string' || opts.stdin instanceof Uint8Array)
    )
      term.handle.input.write(opts.stdin);
    if (stdinFd >= 0) {
      if (typeof opts.stdin === 'string' || opts.stdin instanceof Uint8Array) feed(stdinFd, opts.stdin);
      else closeSync(stdinFd);
    }
    const onCap = () => sb.intervene('output_cap');
    const forward = (stream: 'stdout' | 'stderr') =>
      onOutput &&
      ((c: Buffer): OnChunkResult => {
        /* Its answer goes through: false (reader gone) closes the pipe, a promise paces reading. */
        try {
          const more = onOutput(stream, c);
          if (more instanceof Promise) {
            return more.catch((e: unknown) => {
              sb.fail(e);
              return false;
            });
          }
          return more;
        } catch (e) {
          sb.fail(e);
          return false;
        }
      });
    const cap = opts.limits.outputLimitBytes;
    const keep = opts.terminal?.keepOutput ?? true;
    const outputs = Promise.all([
      term
        ? /* Output that is not kept is capped only where a cap was asked for. */
          term.output(keep || explicitCap ? cap : null, onCap, forward('stdout'), keep)
        : capture(stdoutFd, cap, onCap, forward('stdout')),
      capture(stderrFd, cap, onCap, forward('stderr')),
    ]);
    /* The master goes once its output has ended; a run without a terminal adds no promise. */
    return term ? outputs.finally(() => term.close()) : outputs;
  } catch (e) {
    sb.fail(e);
    for (const fd of [stdoutFd, stderrFd]) if (fd >= 0) closeSync(fd);
    term?.close();
    return undefined;
  }
}

/**
 * The steps a run with these options would take, with their arguments, without running
 * anything (`capsule explain`). Validates the options as run() does.
 */
export function explainOptions(options: RunOptions): ExplainStep[] {
  const opts = resolveOptions(options);
  const rlimits = rlimitPlan(opts.limits);
  const limits = cgroupLimits(opts.limits);
  const parts = Object.entries(limits).map(([k, v]) => `${k}=${String(v)}`);
  if (opts.devices.length > 0) {
    const rules = deviceCgroupRules(opts.devNodes, opts.devices, opts.devPts);
    parts.push(
      `devices (v1 devices.allow or a v2 BPF program) ${rules.map((r) => `${r.type} ${r.major}:${r.minor} ${r.access}`).join(', ')}`,
    );
  }
  const note =
    opts.cgroups || parts.length > 0
      ? `a pooled cgroup under ${opts.cgroupParent}/: ${parts.join(', ') || 'accounting only'}`
      : null;
  /* A placeholder is enough for join_cgroup to say what it would do. */
  const n = nativeOptions(opts, [0, 1, 2], note ? [-1] : [], rlimits);
  return explainPlan(opts, n, native().plan(n), note);
}
