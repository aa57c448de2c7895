/**
 * The descriptors handed to the sandbox (issue 9 §1): never a host directory or an
 * O_PATH descriptor, whatever a racer does to the names in between; and blocking,
 * whatever Node did to the caller's own descriptors (issue 10).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  constants,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { ConfigError, run } from '../../src/index.js';

const rootfs = inject('rootfs');
/** Prints DIR when fd 0 is a directory, else copies stdin. */
const SEE_FD0 = ['/bin/sh', '-c', 'if [ -d /proc/self/fd/0 ]; then echo DIR; else cat; fi'];
/** <asm-generic/fcntl.h>: Node's fs.constants has no O_PATH. */
const O_PATH = 0o10000000;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'capsule-stdio-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Another process that swaps `link` between two targets as fast as it can, each swap one
 * atomic rename(2), so the name always exists and resolves to one or the other.
 */
function racer(link: string, a: string, b: string): ChildProcess {
  const script = `
    const fs = require('fs');
    const [link, a, b] = process.argv.slice(1);
    for (let i = 0; ; i++) {
      const tmp = link + '.tmp';
      try { fs.unlinkSync(tmp); } catch {}
      fs.symlinkSync(i % 2 ? a : b, tmp);
      fs.renameSync(tmp, link);
    }`;
  return spawn('node', ['-e', script, link, a, b], { stdio: 'ignore' });
}

async function stopped(p: ChildProcess): Promise<void> {
  const gone = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL');
  await gone;
}

/** 200 runs while `link` is swapped: none may see a directory at fd 0. */
async function race(file: string, link: string, a: string, b: string) {
  symlinkSync(a, link);
  const p = racer(link, a, b);
  const seen = { file: 0, refused: 0, dir: 0, other: [] as string[] };
  try {
    for (let i = 0; i < 200; i++) {
      try {
        const r = await run({ rootfs, argv: SEE_FD0, stdin: { file }, cgroups: false });
        if (r.stdout === 'DIR\n') seen.dir++;
        else if (r.stdout === 'FILE\n') seen.file++;
        else seen.other.push(r.stdout + r.stderr);
      } catch (e) {
        if (e instanceof ConfigError && e.option === 'stdin') seen.refused++;
        else throw e;
      }
    }
  } finally {
    await stopped(p);
  }
  return seen;
}

describe('stdin: { file }', () => {
  it('never hands the program a directory while a racer swaps the last component (a symlink) to /', async () => {
    const sub = join(dir, 'last');
    mkdirSync(sub);
    writeFileSync(join(sub, 'input'), 'FILE\n');
    const link = join(sub, 'link');
    const seen = await race(link, link, join(sub, 'input'), '/');
    expect(seen.dir).toBe(0);
    expect(seen.other).toEqual([]);
    /* A symlink there is refused outright, with the reason. */
    expect(seen.refused).toBe(200);
  }, 120_000);

  it('never hands the program a directory while a racer swaps a directory component', async () => {
    /* good/input is a file, bad/input a directory: `link/input` is one or the other. */
    const sub = join(dir, 'component');
    mkdirSync(join(sub, 'good'), { recursive: true });
    mkdirSync(join(sub, 'bad/input'), { recursive: true });
    writeFileSync(join(sub, 'good/input'), 'FILE\n');
    const link = join(sub, 'link');
    const seen = await race(join(link, 'input'), link, join(sub, 'good'), join(sub, 'bad'));
    expect(seen.dir).toBe(0);
    expect(seen.other).toEqual([]);
    expect(seen.file + seen.refused).toBe(200);
  }, 120_000);

  it('refuses a symlink, a directory and a device, naming stdin and why', async () => {
    writeFileSync(join(dir, 'real'), 'FILE\n');
    symlinkSync(join(dir, 'real'), join(dir, 'alias'));
    const attempt = (file: string) => run({ rootfs, argv: SEE_FD0, stdin: { file } });
    await expect(attempt(join(dir, 'alias'))).rejects.toThrow(/stdin file .*alias is a symbolic link/);
    await expect(attempt(dir)).rejects.toThrow(/stdin file .* is a directory/);
    await expect(attempt('/dev/zero')).rejects.toThrow(/stdin file \/dev\/zero is a device/);
    await expect(attempt(join(dir, 'real'))).resolves.toMatchObject({ stdout: 'FILE\n' });
  });
});

describe('stdin: { file } that is a FIFO', () => {
  it('is accepted, and the program reads what the writer wrote', async () => {
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    /* A reader of ours lets the writer open at once; the writer holds its end open past the run's start. */
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const writer = spawn('sh', ['-c', `exec 3>${fifo}; echo FROM-FIFO >&3; sleep 0.3`], { stdio: 'ignore' });
    try {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const r = await run({ rootfs, argv: SEE_FD0, stdin: { file: fifo } });
      expect(r.stdout).toBe('FROM-FIFO\n');
    } finally {
      closeSync(reader);
      await new Promise((resolve) =>
        writer.exitCode === null ? writer.once('exit', resolve) : resolve(null),
      );
    }
  });

  it('never blocks the event loop on a FIFO whose writer has come and gone', () => {
    /*
     * The writer wrote and exited before run(): the data waits in the pipe (a reader of ours
     * keeps it), and a blocking open for reading would wait for a writer that never comes,
     * on Node's main thread. Run in a child process, so a hang fails the test instead of
     * stalling the test worker.
     */
    const fifo = join(dir, 'fifo-gone');
    execFileSync('mkfifo', [fifo]);
    const index = join(import.meta.dirname, '../../dist/src/index.js');
    const script = `
      import { constants, openSync } from 'node:fs';
      import { execFileSync } from 'node:child_process';
      import { run } from ${JSON.stringify(index)};
      const [rootfs, fifo, argv] = [process.argv[1], process.argv[2], JSON.parse(process.argv[3])];
      const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
      execFileSync('sh', ['-c', 'echo FROM-FIFO > "$0"', fifo]);
      const r = await run({ rootfs, argv, stdin: { file: fifo } });
      process.stdout.write(r.stdout);`;
    const out = execFileSync(
      process.execPath,
      ['--input-type=module', '-e', script, rootfs, fifo, JSON.stringify(SEE_FD0)],
      { timeout: 20_000, encoding: 'utf8', killSignal: 'SIGKILL' },
    );
    expect(out).toBe('FROM-FIFO\n');
  });
});

describe('descriptors the caller passes', () => {
  it('refuses a directory descriptor as stdin, stdout or stderr', async () => {
    const fd = openSync(dir, 'r');
    try {
      for (const option of ['stdin', 'stdout', 'stderr'] as const) {
        const e = await run({ rootfs, argv: SEE_FD0, [option]: fd }).catch((x: unknown) => x);
        expect(e).toBeInstanceOf(ConfigError);
        expect((e as ConfigError).option).toBe(option);
        expect((e as Error).message).toMatch(new RegExp(`^${option}: ${fd} is a directory`));
      }
    } finally {
      closeSync(fd);
    }
  });

  it('refuses an O_PATH descriptor, even of a regular file', async () => {
    writeFileSync(join(dir, 'opath'), 'FILE\n');
    for (const target of [dir, join(dir, 'opath')]) {
      const fd = openSync(target, O_PATH);
      try {
        const e = await run({ rootfs, argv: SEE_FD0, stdin: fd }).catch((x: unknown) => x);
        expect(e).toBeInstanceOf(ConfigError);
        expect((e as Error).message).toMatch(/^stdin: \d+ is an O_PATH descriptor/);
      } finally {
        closeSync(fd);
      }
    }
  });

  it('refuses a descriptor that is not open, naming the option', async () => {
    const e = await run({ rootfs, argv: SEE_FD0, stdin: 999 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as Error).message).toMatch(/^stdin: 999 is not an open descriptor \(fstat: EBADF\)/);
  });

  it("still takes a regular file's descriptor", async () => {
    writeFileSync(join(dir, 'plain'), 'FILE\n');
    const fd = openSync(join(dir, 'plain'), 'r');
    try {
      expect((await run({ rootfs, argv: SEE_FD0, stdin: fd })).stdout).toBe('FILE\n');
    } finally {
      closeSync(fd);
    }
  });
});
