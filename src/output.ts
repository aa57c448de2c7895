/**
 * Reading a captured stdout or stderr pipe to EOF, keeping at most a cap.
 * Past the cap nothing more is stored (the Node process's memory stays bounded
 * whatever the program writes), the rest is read and dropped until the sandbox
 * is gone, and `onCap` is called once so the caller can end the run.
 *
 * `onChunk` returning false means the chunk's destination is gone (a reader that exited):
 * the pipe is closed at once, so the program's next write fails with EPIPE and SIGPIPE,
 * as a writer in a shell pipeline does when its reader exits (pipe(7)). Returning a promise
 * is backpressure: reading pauses until it settles (the program blocks on a full pipe, as
 * it would writing to a slow reader directly), then goes on, or stops if it gave false.
 */
import { Socket } from 'node:net';
import type { Readable } from 'node:stream';

export interface Captured {
  data: Buffer;
  /** Bytes the program wrote that were not kept. */
  truncated: boolean;
}

/** What an `onChunk` callback returns: see {@link capture}. */
export type OnChunkResult = boolean | void | Promise<boolean | void>;

export function capture(
  fd: number,
  capBytes: number | null,
  onCap: () => void,
  onChunk?: (chunk: Buffer) => OnChunkResult,
): Promise<Captured> {
  if (fd < 0) return Promise.resolve({ data: Buffer.alloc(0), truncated: false });
  return readCapped(new Socket({ fd, readable: true, writable: false }), capBytes, onCap, onChunk);
}

/**
 * capture() for a stream already open (a pipe's Socket, a terminal's master): read it to
 * its 'close', keeping at most capBytes (nothing with `keep` false: capBytes then counts
 * what went through to onChunk). `stop` ends the reading when onChunk says its destination
 * is gone; by default it destroys the stream.
 */
export function readCapped(
  stream: Readable,
  capBytes: number | null,
  onCap: () => void,
  onChunk?: (chunk: Buffer) => OnChunkResult,
  { keep = true, stop = () => void stream.destroy() }: { keep?: boolean; stop?: () => void } = {},
): Promise<Captured> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let kept = 0;
    let truncated = false;
    stream.on('data', (chunk: Buffer) => {
      if (truncated) return;
      if (capBytes !== null && kept + chunk.length > capBytes) {
        chunk = chunk.subarray(0, capBytes - kept);
        truncated = true;
      }
      if (chunk.length > 0) {
        if (keep) chunks.push(chunk);
        kept += chunk.length;
        const more = onChunk?.(chunk);
        if (more === false) {
          stop(); /* 'close' follows and resolves with what was kept */
          return;
        }
        if (more instanceof Promise) {
          stream.pause();
          more.then(
            (v) => (v === false ? stop() : stream.resume()),
            () => stream.resume(),
          );
        }
      }
      if (truncated) onCap();
    });
    stream.on('error', () => {}); /* EOF and errors both end in 'close' */
    stream.on('close', () => resolve({ data: Buffer.concat(chunks), truncated }));
  });
}
