import { describe, expect, it } from 'vitest';
import { createProgressBar, formatSize, renderProgress } from '../../rootfs-tools/progress.js';

function fakeStream(isTTY: boolean): { stream: NodeJS.WriteStream; written: string[] } {
  const written: string[] = [];
  const stream = { isTTY, write: (s: string) => written.push(s) > 0 } as unknown as NodeJS.WriteStream;
  return { stream, written };
}

describe('progress', () => {
  it('formats sizes', () => {
    expect(formatSize(512)).toBe('512 B');
    expect(formatSize(1536)).toBe('1.5 KiB');
    expect(formatSize(81_299_845)).toBe('77.5 MiB');
  });

  it('renders files and bytes', () => {
    expect(renderProgress({ filesDone: 5, filesTotal: 10, bytesDone: 512, bytesTotal: 1024 }, 10)).toBe(
      '[#####.....] 5/10 files  512 B/1.0 KiB',
    );
  });

  it('draws nothing when not a TTY', () => {
    const { stream, written } = fakeStream(false);
    const bar = createProgressBar(stream, { delayMs: 0, intervalMs: 0 });
    bar.update({ filesDone: 1, filesTotal: 1, bytesDone: 1, bytesTotal: 1 });
    bar.done();
    expect(written).toEqual([]);
  });

  it('draws on a TTY after the delay, and erases itself', async () => {
    const { stream, written } = fakeStream(true);
    const bar = createProgressBar(stream, { delayMs: 20, intervalMs: 0, width: 4 });
    bar.update({ filesDone: 1, filesTotal: 2, bytesDone: 1, bytesTotal: 2 });
    expect(written).toEqual([]); // a quick build shows nothing
    await new Promise((r) => setTimeout(r, 30));
    bar.update({ filesDone: 2, filesTotal: 2, bytesDone: 2, bytesTotal: 2 });
    bar.done();
    expect(written).toEqual(['\r\x1b[2K[####] 2/2 files  2 B/2 B', '\r\x1b[2K']);
  });
});
