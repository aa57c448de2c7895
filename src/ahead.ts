/**
 * createRunner(): runs whose sandbox was made ahead of time.
 *
 * A judge runs the same program shape over and over: one rootfs, one set of limits, one
 * seccomp profile; only the input changes. Most of a run's cost before the program starts
 * does not depend on that input: the user namespace, the clone, every mount, pivot_root and
 * the old root's detach, the cgroup join, the identity drop and capsule-init's exec
 * (docs/performance.md). A runner takes all of that off the path of the next run: while
 * one run goes, the sandbox for the next one is built on a pool thread, and capsule-init
 * waits in it (native/init.c "capsule-prepared", receive_run). When the run is asked for,
 * capsule sends its argv, environment and stdio in one message and the program is forked.
 *
 * Nothing is traded for it:
 * - each sandbox serves one run and is never reused (fresh namespaces, its own cgroup and
 *   host id, as run() gives);
 * - it is built from the run's own options: a run whose options differ from the prepared
 *   sandbox's in anything but argv, env and stdio (stdin, stdout, stderr) is launched the
 *   ordinary way, and the next one is prepared for the new options;
 * - wallTimeMs, the watchdog, the CPU time and the peak memory all count from the moment
 *   the run begins, not from the build (the cgroup's counters are taken again then);
 * - a sandbox that could not be prepared (a bad rootfs, say) costs nothing: the run is
 *   launched the ordinary way and fails with run()'s own error;
 * - a waiting capsule-init that dies (killed from outside) before it has read its run, even
 *   with the run already sent, is not a result: capsule-init says it read the run before it
 *   forks the program (steps.h CAPSULE_RECEIVED_MAGIC), and without that word the run is
 *   sent to the next sandbox made ahead, or launched the ordinary way. onSpawn is then
 *   called again, for the sandbox that runs it.
 *
 * Not made ahead (launched as run() does): a terminal, rootless mode, and argv with env
 * over 64 KiB.
 *
 *   const runner = createRunner({ rootfs, argv: ['/sol'], wallTimeLimitMs: 2000 });
 *   for (const input of tests) results.push(await runner.run({ stdin: input }));
 *   await runner.close();
 */
import { LaunchedSandbox, RunNotReceived, runMessageFits } from './lifecycle.js';
import { native } from './native.js';
import { resolveOptions, type ResolvedOptions, type RunOptions } from './options.js';
import { outOfDescriptors } from './out-of-fds.js';
import type { RunResult } from './result.js';
import { rootlessMode } from './rootless.js';
import { runResolved, startStdio } from './run.js';

/** The options a runner is made with: run()'s, argv included or given per run. */
export type RunnerOptions = Omit<RunOptions, 'argv'> & { argv?: RunOptions['argv'] };

export interface Runner {
  /** One run: the runner's options, with `options` over them (argv, stdin and env are the cheap ones to change). */
  run(options: Partial<RunOptions> & { encoding: 'buffer' }): Promise<RunResult<Buffer>>;
  run(options?: Partial<RunOptions>): Promise<RunResult<string>>;
  /** End the sandbox made ahead, if any, and wait until it is gone. Runs after close() are launched the ordinary way. */
  close(): Promise<void>;
}

/** The fields a sandbox made ahead does not depend on: sent with the run (argv, env) or made for it (stdio). */
const PER_RUN = new Set(['argv', 'env', 'stdin', 'stdout', 'stderr']);

/** What a sandbox made ahead was made from: every resolved option but the per-run ones. */
function shapeOf(o: ResolvedOptions): string {
  return JSON.stringify(o, (k, v: unknown) => (PER_RUN.has(k) ? undefined : v));
}

/** Whether a run with these options can be started in a sandbox made ahead. */
function eligible(o: ResolvedOptions): boolean {
  return o.terminal === null && !rootlessMode() && runMessageFits(o.argv, o.env);
}

/*
 * How many sandboxes a runner keeps made or in the making. One: with /bin/true back to back
 * (the worst case: its run is shorter than a sandbox's making), two or three ahead gave the
 * same p50 (2.31, 2.22, 2.25 ms, 500 runs each): the two cores are the limit, not the wait.
 */
const AHEAD = 1;

interface Ahead {
  shape: string;
  /** Null when it could not be made: the run is launched the ordinary way, which reports why. */
  sandbox: Promise<LaunchedSandbox | null>;
}

/** Sandboxes made ahead and not yet begun or gone, of every runner: for the exit hook. */
const waiting = new Set<LaunchedSandbox>();
let exitHookInstalled = false;

/*
 * On process exit nothing asynchronous runs any more: the reaps of what is ended here must
 * not call into JavaScript (native exiting()), and each waiting capsule-init is ended (EOF
 * on its socket, and SIGKILL). Their cgroups are removed by the cgroup manager's own exit
 * hook (src/cgroup/exit.ts); their host id leases end with this process's locks, and the
 * next capsule process sweeps the files (src/ids.ts).
 */
function onProcessExit(): void {
  if (waiting.size > 0) native().exiting();
  for (const sb of waiting) sb.dispose();
  waiting.clear();
}

export function createRunner(options: RunnerOptions): Runner {
  /* The options are checked now, with a stand-in program where the runs will give theirs. */
  resolveOptions({ argv: ['/'], ...options } as RunOptions);
  /* Sandboxes being made or waiting, oldest first, all of one shape. */
  let ahead: Ahead[] = [];
  let closed = false;

  /* `shape` is shapeOf(o), which the run has worked out already. */
  const prepare = (o: ResolvedOptions, shape: string): void => {
    if (closed || !eligible(o)) return;
    if (!exitHookInstalled) {
      process.on('exit', onProcessExit);
      exitHookInstalled = true;
    }
    while (ahead.length < AHEAD) {
      const made = LaunchedSandbox.prepare(o).then(
        (sb) => {
          waiting.add(sb);
          void sb.exited.then(() => waiting.delete(sb));
          return sb;
        },
        () => null,
      );
      ahead.push({ shape, sandbox: made });
    }
  };
  const discard = (a: Ahead): Promise<void> =>
    a.sandbox.then(async (sb) => {
      if (!sb) return;
      sb.dispose();
      await sb.exited;
    });

  /* `again`: the sandbox this run was first sent to died before reading it (RunNotReceived). */
  const attempt = async (
    perRun: Partial<RunOptions>,
    again: boolean,
  ): Promise<RunResult<string | Buffer>> => {
    const merged = { ...options, ...perRun } as RunOptions;
    let resolved: ResolvedOptions;
    try {
      resolved = resolveOptions(merged);
    } catch (e) {
      throw outOfDescriptors(e) ?? e;
    }
    const shape = shapeOf(resolved);
    /*
     * Made for other options: of no use to this run nor, most likely, to the next. Ended
     * before this run starts, so that its host id lease and cgroup are free again (a narrow
     * hostIdRange could otherwise be full for this run).
     */
    if (ahead.length > 0 && ahead[0]!.shape !== shape) {
      const stale = ahead;
      ahead = [];
      await Promise.all(stale.map(discard));
    }
    /*
     * The ordinary way (the first run, new options, a waiting capsule-init that is gone):
     * the next sandbox is made once this run is over, not before its launch, or a narrow
     * hostIdRange could be taken by the making.
     */
    const ordinary = async () => {
      try {
        return await runResolved(resolved, merged);
      } catch (e) {
        throw outOfDescriptors(e) ?? e;
      } finally {
        prepare(resolved, shape);
      }
    };
    const mine = ahead.shift();
    const sb = mine ? await mine.sandbox : null;
    if (!sb) return ordinary();
    waiting.delete(sb);
    try {
      sb.begin(resolved, { signal: merged.signal, onSpawn: merged.onSpawn });
    } catch (e) {
      /* Aborted before it began: nothing ran. Otherwise capsule-init was gone (killed from outside). */
      if (!merged.signal?.aborted) return ordinary();
      prepare(resolved, shape);
      throw e;
    }
    /* The next run's sandbox is built while this one goes. */
    prepare(resolved, shape);
    try {
      return await sb.result(
        startStdio(sb, resolved, merged.onOutput, merged.outputLimitBytes !== undefined),
      );
    } catch (e) {
      if (!(e instanceof RunNotReceived)) throw outOfDescriptors(e) ?? e;
      /*
       * Its capsule-init died (killed from outside) before it read the run: nothing ran.
       * Once more with the next sandbox made ahead; if that one dies unread too, the ordinary
       * way, with the sandboxes made ahead ended first so their host ids are free.
       */
      if (!again) return attempt(perRun, true);
      const stale = ahead;
      ahead = [];
      await Promise.all(stale.map(discard));
      return ordinary();
    }
  };
  const run = (perRun: Partial<RunOptions> = {}) => attempt(perRun, false);

  return {
    run: run as Runner['run'],
    async close() {
      closed = true;
      const all = ahead;
      ahead = [];
      await Promise.all(all.map(discard));
    },
  };
}
