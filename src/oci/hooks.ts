/**
 * config.json hooks (runtime-spec config.md "POSIX-platform Hooks"): each is run in the
 * runtime's namespaces with the container's state JSON on its stdin, one after another in
 * order; `timeout` seconds, when given, is how long it may take. A failing prestart,
 * createRuntime, createContainer or startContainer hook fails the operation; a failing
 * poststart or poststop hook is a warning (runtime.md "Lifecycle" steps 10 and 13 say
 * "log a warning").
 *
 * These run prestart, createRuntime (from create, while the child waits before pivot_root:
 * container.ts openHookPoint), poststart and poststop. createContainer runs in the container's
 * namespaces, so the child runs it itself (native/oci.cc oci_hooks); startContainer, which
 * the container's own process would run at start, is not supported: create refuses it.
 */
import { spawn } from 'node:child_process';

import { CapsuleError } from '../errors.js';
import type { OciHook } from './plan.js';

export async function runHook(kind: string, hook: OciHook, state: string): Promise<void> {
  const argv = hook.args.length > 0 ? hook.args : [hook.path];
  await new Promise<void>((resolve, reject) => {
    let stderr = '';
    const child = spawn(hook.path, argv.slice(1), {
      argv0: argv[0],
      env: Object.fromEntries(
        hook.env.map((e) => {
          const i = e.indexOf('=');
          return i < 0 ? [e, ''] : [e.slice(0, i), e.slice(i + 1)];
        }),
      ),
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    const timer =
      hook.timeout !== undefined
        ? setTimeout(() => {
            child.kill('SIGKILL');
            reject(
              new CapsuleError(
                `${kind} hook ${hook.path} timed out after ${hook.timeout} s (hooks.${kind}[].timeout)`,
              ),
            );
          }, hook.timeout * 1000)
        : undefined;
    child.stderr!.on('data', (d: Buffer) => {
      if (stderr.length < 4096) stderr += d.toString();
    });
    child.stdin!.on('error', () => {
      /* a hook that does not read its stdin: EPIPE is fine */
    });
    child.stdin!.end(state);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new CapsuleError(`${kind} hook ${hook.path} cannot be run: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else {
        const how = signal ? `was killed by ${signal}` : `exited with ${code}`;
        const tail = stderr.trim() ? `: ${stderr.trim().split('\n').at(-1)}` : '';
        reject(new CapsuleError(`${kind} hook ${hook.path} ${how}${tail}`));
      }
    });
  });
}

/** Run `hooks` in order; the first failure throws (after the others did not run). */
export async function runHooks(kind: string, hooks: readonly OciHook[], state: string): Promise<void> {
  for (const h of hooks) await runHook(kind, h, state);
}

/** Run `hooks` in order; failures are warnings on `warn` (poststart, poststop). */
export async function runHooksWarning(
  kind: string,
  hooks: readonly OciHook[],
  state: string,
  warn: (message: string) => void,
): Promise<void> {
  for (const h of hooks) {
    try {
      await runHook(kind, h, state);
    } catch (e) {
      warn((e as Error).message);
    }
  }
}
