/**
 * `capsule run`'s stdio as a shell user meets it: a slow reader gets every byte (the
 * program's stdout is blocking whatever Node did with the descriptor), a reader that exits
 * early ends the program as a shell pipeline would, a directory as stdin is refused.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { noPtyReason } from '../helpers/host.js';

const rootfs = inject('rootfs');
const root = join(import.meta.dirname, '../..');
const cli = join(root, 'dist/capsule.mjs');
/** A shell pipeline, as the issue ran it: stdout of capsule is a real pipe (execa would give a socket). */
const pipeline = (script: string) => execa('sh', ['-c', script], { reject: false, stdin: 'ignore' });
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'capsule-cli-stdio-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** 50,000,000 bytes as fast as the program can write them. */
const FIFTY_MB = `/bin/busybox yes | /bin/busybox head -c 50000000`;

describe('a slow reader', () => {
  it('gets all 50,000,000 bytes from capsule run (the program sees a blocking stdout)', async () => {
    const r = await pipeline(
      `node ${q(cli)} run ${q(rootfs)} /bin/sh -c ${q(FIFTY_MB + '; echo "status $?" >&2')} | (sleep 1; wc -c)`,
    );
    expect(r.stderr).toBe('status 0');
    expect(r.stdout.trim()).toBe('50000000');
  }, 60_000);

  it('gets all of it streamed through capsule (--output-limit): the program waits for the reader', async () => {
    const r = await pipeline(
      `node ${q(cli)} run --output-limit 100m ${q(rootfs)} /bin/sh -c ${q(FIFTY_MB + '; echo "status $?" >&2')} | (sleep 1; wc -c)`,
    );
    expect(r.stderr).toBe('status 0');
    expect(r.stdout.trim()).toBe('50000000');
  }, 60_000);

  it("gets all of it from the library's stdout: 'inherit' in a Node process that made its stdout non-blocking", async () => {
    const script = `
      import { run } from ${JSON.stringify(join(root, 'dist/src/index.js'))};
      process.stdout.write(''); /* Node wraps fd 1 now: libuv sets O_NONBLOCK on the pipe */
      const r = await run({ rootfs: ${JSON.stringify(rootfs)}, argv: ['/bin/sh', '-c', ${JSON.stringify(FIFTY_MB)}],
        stdout: 'inherit', stderr: 'pipe' });
      process.stderr.write(r.verdict + ' ' + r.exitCode + ' ' + r.stderr);`;
    const r = await pipeline(`node --input-type=module -e ${q(script)} | (sleep 1; wc -c)`);
    expect(r.stderr).toBe('OK 0 ');
    expect(r.stdout.trim()).toBe('50000000');
  }, 60_000);
});

describe('a terminal', () => {
  it("gives the program a blocking tty even after Node made its own fd 0 non-blocking (stdin: 'inherit')", async (ctx) => {
    const noPty = noPtyReason();
    if (noPty) ctx.skip(noPty);
    const script = `
      import { readFileSync } from 'node:fs';
      import { run } from ${JSON.stringify(join(root, 'dist/src/index.js'))};
      process.stdin.pause(); /* libuv reopens the tty for Node's stdin and makes that copy non-blocking */
      const flags = () => /flags:\\s+(\\d+)/.exec(readFileSync('/proc/self/fdinfo/0', 'utf8'))[1];
      process.stdout.write('parent ' + flags() + '\\n');
      await run({ rootfs: ${JSON.stringify(rootfs)}, stdin: 'inherit', stdout: 'inherit',
        argv: ['/bin/sh', '-c', 'echo "child $(/bin/busybox grep flags: /proc/self/fdinfo/0)"'] });
      process.exit(0);`;
    /* script(1) gives the command a pseudo-terminal as stdin, stdout and stderr. */
    const r = await pipeline(`script -qec ${q(`node --input-type=module -e ${q(script)}`)} /dev/null`);
    const parent = /parent (\d+)/.exec(r.stdout)?.[1];
    const child = /child flags:\s+(\d+)/.exec(r.stdout)?.[1];
    expect(parent, r.stdout + r.stderr).toBeDefined();
    expect(child, r.stdout + r.stderr).toBeDefined();
    const O_NONBLOCK = 0o4000;
    expect(parseInt(parent!, 8) & O_NONBLOCK).toBe(O_NONBLOCK); /* else this test proves nothing */
    expect(parseInt(child!, 8) & O_NONBLOCK).toBe(0);
  }, 30_000);
});

describe('stdin', () => {
  it('refuses a directory as stdin (`< /`): exit 125, one line naming stdin, nothing runs', async () => {
    const r = await pipeline(`node ${q(cli)} run ${q(rootfs)} /bin/sh -c 'echo ran' < /`);
    expect(r.exitCode).toBe(125);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^capsule: --stdin|^capsule: stdin/);
    expect(r.stderr).toMatch(/is a directory/);
    expect(r.stderr.split('\n')).toHaveLength(1);
  });
});

describe('a reader that exits early', () => {
  /* One line every 10 ms, forever: only SIGPIPE (or EPIPE) ends it, never the output limit. */
  const LINES = 'i=0; while echo line $i; do i=$((i+1)); sleep 0.01; done; echo "echo failed" >&2; exit 3';

  it.each([
    ['streamed through capsule (--output-limit)', ['--output-limit', '1m']],
    ['inherited', []],
  ])(
    'ends the program with SIGPIPE as a shell would; report, meta and status 141 (128+13): %s',
    async (_how, flags) => {
      const [meta, report, status] = ['meta', 'report', 'status'].map((n) =>
        join(dir, `early-${_how.length}.${n}`),
      );
      const r = await pipeline(
        `{ node ${q(cli)} run ${flags.join(' ')} --meta ${q(meta!)} --report ${q(report!)} ${q(rootfs)} /bin/sh -c ${q(LINES)}; echo $? > ${q(status!)}; } | head -c 10`,
      );
      expect(r.stdout).toBe('line 0\nlin');
      expect(r.stderr).toBe('');
      expect(readFileSync(status!, 'utf8').trim()).toBe('141');
      /* The same program under a plain shell pipeline, for comparison. */
      const plain = await pipeline(`{ /bin/busybox sh -c ${q(LINES)}; echo $? >&2; } | head -c 10`);
      expect(plain.stderr).toBe('141');
      expect(readFileSync(meta!, 'utf8')).toMatch(/^exitsig:13$/m);
      expect(JSON.parse(readFileSync(report!, 'utf8'))).toMatchObject({ signal: 'SIGPIPE', exitCode: null });
    },
    30_000,
  );

  it('ends `yes` with SIGPIPE under --output-limit 1m, never the output limit (capsule reads only as fast as it can pass on)', async () => {
    for (let i = 0; i < 5; i++) {
      const status = join(dir, `yes-${i}.status`);
      const r = await pipeline(
        `{ node ${q(cli)} run --output-limit 1m ${q(rootfs)} /bin/busybox yes; echo $? > ${q(status)}; } | head -c 10`,
      );
      expect(r.stdout).toBe('y\ny\ny\ny\ny'); /* execa drops the last newline */
      expect(r.stderr).toBe('');
      expect(readFileSync(status, 'utf8').trim()).toBe('141');
    }
  }, 60_000);
});
