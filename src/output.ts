/**
 * Reading a captured stdout or stderr pipe to EOF, keeping at most a cap.
 * Past the cap nothing more is stored (the Node process's memory stays bounded
 * whatever the program writes), the rest is read and dropped until the sandbox
 * is gone, and `onCap` is called once so the caller can end the run.
 */
import { Socket } from 'node:net';

export interface Captured {
  data: Buffer;
  /** Bytes the program wrote that were not kept. */
  truncated: boolean;
}

export function capture(
  fd: number,
  capBytes: number | null,
  onCap: () => void,
  onChunk?: (chunk: Buffer) => void,
): Promise<Captured> {
  if (fd < 0) return Promise.resolve({ data: Buffer.alloc(0), truncated: false });
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let kept = 0;
    let truncated = false;
    const socket = new Socket({ fd, readable: true, writable: false });
    socket.on('data', (chunk: Buffer) => {
      if (truncated) return;
      if (capBytes !== null && kept + chunk.length > capBytes) {
        chunk = chunk.subarray(0, capBytes - kept);
        truncated = true;
      }
      if (chunk.length > 0) {
        chunks.push(chunk);
        kept += chunk.length;
        onChunk?.(chunk);
      }
      if (truncated) onCap();
    });
    socket.on('error', () => {}); /* EOF and errors both end in 'close' */
    socket.on('close', () => resolve({ data: Buffer.concat(chunks, kept), truncated }));
  });
}
