/**
 * The CLI's own stdout and stderr, wrapped only when first written to.
 *
 * Node wraps fd 1 and 2 lazily, and wrapping a pipe makes its open file description
 * non-blocking (libuv), which every other process sharing that pipe then sees: so a plain
 * `capsule run`, whose program writes to the caller's stdout directly, never wraps it.
 *
 * A reader that goes away (`capsule ... | head`) is not an error: EPIPE marks the stream
 * gone, later output to it is dropped, and the command ends as it would have (a run still
 * waits for its program, writes its report and exits with the program's status).
 */
const gone = new WeakSet<NodeJS.WriteStream>();
const watched = new WeakSet<NodeJS.WriteStream>();

function watch(stream: NodeJS.WriteStream): NodeJS.WriteStream {
  if (!watched.has(stream)) {
    watched.add(stream);
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') gone.add(stream);
      else throw e;
    });
  }
  return stream;
}

/** process.stdout, with the EPIPE handling above. */
export const stdout = (): NodeJS.WriteStream => watch(process.stdout);
/** process.stderr, with the EPIPE handling above. */
export const stderr = (): NodeJS.WriteStream => watch(process.stderr);

/** Its reader has gone away (a write failed with EPIPE). */
export function isGone(stream: NodeJS.WriteStream): boolean {
  return gone.has(stream);
}

/** Write unless the reader is gone; false when it is. */
export function write(stream: NodeJS.WriteStream, chunk: string | Uint8Array): boolean {
  if (gone.has(stream)) return false;
  stream.write(chunk);
  return true;
}

/**
 * Write with backpressure, for output streamed through capsule: undefined when the stream
 * took it, a promise when its buffer is full (true once drained, false if the reader went
 * away meanwhile), false when the reader is already gone.
 */
export function forward(
  stream: NodeJS.WriteStream,
  chunk: Uint8Array,
): boolean | undefined | Promise<boolean> {
  if (gone.has(stream)) return false;
  if (stream.write(chunk)) return undefined;
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done).off('error', done).off('close', done);
      resolve(!gone.has(stream));
    };
    stream.on('drain', done).on('error', done).on('close', done);
  });
}
