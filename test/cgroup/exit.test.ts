import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { closeOnExit, forgetOnExit } from '../../src/cgroup/exit.js';

describe('closeOnExit', () => {
  // Other listeners (the test runner's) are set aside so each case controls who listens.
  let saved: ((...args: unknown[]) => void)[] = [];
  beforeEach(() => {
    saved = process.rawListeners('SIGTERM') as typeof saved;
    process.removeAllListeners('SIGTERM');
  });
  afterEach(() => {
    vi.restoreAllMocks();
    process.removeAllListeners('SIGTERM');
    for (const l of saved) process.on('SIGTERM', l);
  });

  it('a signal nobody else handles: close everything, then die of the same signal', () => {
    const kill = vi.spyOn(process, 'kill').mockImplementation(() => true);
    const a = { close: vi.fn() };
    const b = {
      close: vi.fn(() => {
        throw new Error('best effort');
      }),
    };
    closeOnExit(a);
    closeOnExit(b);
    expect(process.listenerCount('SIGTERM')).toBe(1);
    process.emit('SIGTERM', 'SIGTERM');
    expect(a.close).toHaveBeenCalledOnce();
    expect(b.close).toHaveBeenCalledOnce();
    expect(kill).toHaveBeenCalledWith(process.pid, 'SIGTERM');
    // Our listener is gone before the re-raise, so the default action applies.
    expect(process.listenerCount('SIGTERM')).toBe(0);
  });

  it('someone else handles the signal: leave it to them', () => {
    const kill = vi.spyOn(process, 'kill').mockImplementation(() => true);
    const a = { close: vi.fn() };
    const theirs = vi.fn();
    process.on('SIGTERM', theirs);
    closeOnExit(a);
    process.emit('SIGTERM', 'SIGTERM');
    expect(theirs).toHaveBeenCalled();
    expect(a.close).not.toHaveBeenCalled();
    expect(kill).not.toHaveBeenCalled();
    forgetOnExit(a);
  });

  it('listeners are dropped once every closable was forgotten', () => {
    const a = { close: vi.fn() };
    closeOnExit(a);
    expect(process.listenerCount('SIGTERM')).toBe(1);
    forgetOnExit(a);
    expect(process.listenerCount('SIGTERM')).toBe(0);
  });
});
