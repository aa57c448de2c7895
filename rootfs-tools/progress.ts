/**
 * A progress bar for builds long enough to need one: drawn on a TTY only, only once a build has
 * run for `delayMs`, redrawn at most every `intervalMs`, and erased at the end.
 */
import type { BuildProgress } from './build.js';

/** Options for {@link createProgressBar}. */
export interface ProgressBarOptions {
  /** Milliseconds before the bar first appears (quick builds show nothing). @default 300 */
  delayMs?: number;
  /** Minimum milliseconds between redraws. @default 100 */
  intervalMs?: number;
  /** Bar width in characters. @default 30 */
  width?: number;
}

export interface ProgressBar {
  /** Pass as `onProgress` to buildRootfs. */
  update(progress: BuildProgress): void;
  /** Erases the bar, if it was drawn. */
  done(): void;
}

/** Formats a byte count as B, KiB, MiB or GiB with one decimal. */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** One line of the bar, e.g. `[#########.....] 1200/3000 files  41.0/97.1 MiB`. */
export function renderProgress(p: BuildProgress, width = 30): string {
  const ratio =
    p.bytesTotal > 0 ? p.bytesDone / p.bytesTotal : p.filesTotal > 0 ? p.filesDone / p.filesTotal : 1;
  const filled = Math.min(width, Math.round(ratio * width));
  return (
    `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${p.filesDone}/${p.filesTotal} files  ` +
    `${formatSize(p.bytesDone)}/${formatSize(p.bytesTotal)}`
  );
}

/** A bar on `stream` when it is a TTY; a no-op otherwise (pipes, CI logs, --quiet). */
export function createProgressBar(stream: NodeJS.WriteStream, options: ProgressBarOptions = {}): ProgressBar {
  const started = Date.now();
  const delayMs = options.delayMs ?? 300;
  const intervalMs = options.intervalMs ?? 100;
  let lastDraw = 0;
  let drawn = false;
  if (!stream.isTTY) return { update: () => undefined, done: () => undefined };
  return {
    update(p) {
      const now = Date.now();
      const finished = p.filesDone === p.filesTotal;
      if (now - started < delayMs || (now - lastDraw < intervalMs && !finished)) return;
      lastDraw = now;
      drawn = true;
      stream.write(`\r\x1b[2K${renderProgress(p, options.width)}`);
    },
    done() {
      if (drawn) stream.write('\r\x1b[2K');
    },
  };
}
