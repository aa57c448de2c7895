/**
 * Removing capsule's cgroups when the Node process ends.
 *
 * The 'exit' event covers a normal end, process.exit() and an uncaught exception. A signal
 * whose default action kills the process (SIGINT, SIGTERM, SIGHUP) bypasses it, so while a
 * manager is open a listener is installed for each; it cleans up and then re-raises the signal
 * with the default action restored, so the process still dies of it, as it would have. It does
 * nothing when another listener exists for that signal: whoever installed it has chosen what
 * the signal does (the CLI forwards it to the sandbox and exits normally afterwards, which the
 * 'exit' event covers). SIGKILL cannot be caught: `capsule gc` removes what it leaves.
 */

/** Something with a synchronous cleanup, e.g. a CgroupManager. */
export interface Closable {
  close(): unknown;
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
const open = new Set<Closable>();
let installed = false;

function closeAll(): void {
  for (const c of [...open]) {
    try {
      c.close();
    } catch {
      // best effort: whatever is left is for `capsule gc`
    }
  }
  open.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  if (process.listenerCount(signal) > 1) return;
  closeAll();
  uninstall();
  process.kill(process.pid, signal);
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', closeAll);
  for (const s of SIGNALS) process.on(s, onSignal);
}

function uninstall(): void {
  if (!installed) return;
  installed = false;
  process.off('exit', closeAll);
  for (const s of SIGNALS) process.off(s, onSignal);
}

/** Close `c` when the process ends (exit, or a signal nobody else handles). */
export function closeOnExit(c: Closable): void {
  open.add(c);
  install();
}

/** `c` was closed by its owner: forget it, and drop the listeners when nothing is left. */
export function forgetOnExit(c: Closable): void {
  open.delete(c);
  if (open.size === 0) uninstall();
}
