/**
 * The library's `terminal` option (src/terminal.ts, native/tty.cc): the program's stdio is
 * a pty of its own from the private devpts, it leads that terminal's session in the
 * foreground, what it writes is the result's stdout, and the onSpawn handle types into it
 * and resizes it. Asserted from inside (/proc/self/stat, stty, a shell's job control).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, inject, it } from 'vitest';

import { ConfigError, run, type RunOptions, type Sandbox } from '../src/index.js';
import { fdsLeftSince, noPtyReason, openFds } from './helpers/host.js';

const rootfs = inject('rootfs');
const noPty = noPtyReason();
const BB = '/bin/busybox';

/** proc(5) /proc/PID/stat: pid, pgrp, session, tty_nr, tpgid, from the text after the command. */
function statFields(text: string) {
  const line = text.trim();
  const f = line.slice(line.lastIndexOf(')') + 2).split(' ');
  return {
    pid: Number(line.slice(0, line.indexOf(' '))),
    pgrp: Number(f[2]),
    session: Number(f[3]),
    ttyNr: Number(f[4]),
    tpgid: Number(f[5]),
  };
}

/**
 * Run an interactive shell on a terminal, and type `lines` one at a time, each once the
 * output shows the marker of the one before (a line of `echo mark$((N))` prints markN, which
 * the typed text itself does not contain).
 */
async function session(
  steps: { type: string; after?: string }[],
  extra: Partial<RunOptions> = {},
): Promise<Awaited<ReturnType<typeof run>> & { handle: Sandbox }> {
  let out = '';
  let handle!: Sandbox;
  let next = 0;
  const advance = () => {
    while (next < steps.length) {
      const s = steps[next]!;
      if (s.after !== undefined && !out.includes(s.after)) return;
      next++;
      handle.terminal!.input.write(s.type);
    }
  };
  const r = await run({
    rootfs,
    argv: ['/bin/sh', '-i'],
    env: { PS1: 'box$ ', PATH: '/bin' },
    terminal: { rows: 24, cols: 80 },
    wallTimeLimitMs: 30_000,
    ...extra,
    onSpawn: (s) => {
      handle = s;
      advance();
    },
    onOutput: (_stream, chunk) => {
      out += chunk.toString();
      advance();
    },
  });
  return { ...r, handle };
}

/**
 * Resolves once the program (capsule-init's child, from the host's /proc) is asleep
 * (state S). Polled; the deadline only bounds a failure.
 */
async function programSleeps(initPid: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const child = readFileSync(`/proc/${initPid}/task/${initPid}/children`, 'utf8').trim().split(' ')[0];
      if (child) {
        const stat = readFileSync(`/proc/${child}/stat`, 'utf8');
        if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('S')) return;
      }
    } catch {
      /* not there yet */
    }
    if (Date.now() > deadline) throw new Error('the program never blocked');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Resolves once a `sleep 100` under capsule-init (host PID initPid) is the foreground job of
 * its terminal (proc(5) stat: pgrp equals tpgid). Polled; the deadline only bounds a failure.
 */
async function foregroundSleep(initPid: number): Promise<void> {
  const stat = (pid: number) => {
    const t = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = t.slice(t.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), pgrp: Number(f[2]), tpgid: Number(f[5]) };
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      try {
        if (readFileSync(`/proc/${name}/cmdline`, 'utf8') !== 'sleep\x00100\x00') continue;
        const f = stat(Number(name));
        if (f.pgrp !== f.tpgid) continue;
        for (let p = f.ppid; p > 1; p = stat(p).ppid) if (p === initPid) return;
      } catch {
        /* gone */
      }
    }
    if (Date.now() > deadline) throw new Error('no sleep 100 in the foreground');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.skipIf(noPty)(`terminal${noPty ? ` (skipped: ${noPty})` : ''}`, () => {
  it('gives the program a pty from the private devpts as stdin, stdout and stderr, of the size asked', async () => {
    const r = await run({
      rootfs,
      argv: [BB, 'sh', '-c', `${BB} tty; ${BB} stty size; ${BB} ls -l /proc/self/fd/ >&2; echo err >&2`],
      terminal: { rows: 33, cols: 101 },
    });
    expect(r.verdict).toBe('OK');
    expect(r.stdout).toMatch(/^\/dev\/pts\/0\r\n33 101\r\n/);
    /* stderr is the same terminal: it arrives in stdout, with the terminal's \r\n */
    expect(r.stdout).toMatch(/ 2 -> \/dev\/pts\/0\r\n/);
    expect(r.stdout).toContain('err\r\n');
    expect(r.stderr).toBe('');
  });

  it('makes the program the session leader with the pty as its controlling terminal, in the foreground', async () => {
    const r = await run({ rootfs, argv: ['/bin/cat', '/proc/self/stat'], terminal: true });
    const s = statFields(r.stdout);
    expect(s.session).toBe(s.pid);
    expect(s.pgrp).toBe(s.pid);
    expect(s.tpgid).toBe(s.pgrp);
    /* tty_nr: the pty's device number (major 136, Unix98 pty slaves) */
    expect(s.ttyNr >> 8).toBe(136);
  });

  it('without it, the program still has no controlling terminal (new_session)', async () => {
    const r = await run({ rootfs, argv: ['/bin/cat', '/proc/self/stat'] });
    expect(statFields(r.stdout).ttyNr).toBe(0);
  });

  it('types input into the terminal: a shell runs what is typed, and exits', async () => {
    const r = await session([{ type: 'echo mark$((40+2))\r' }, { type: 'exit 7\r', after: 'mark42' }]);
    expect(r.exitCode).toBe(7);
    expect(r.stdout).toContain('mark42');
  });

  it('types a stdin string in at the start', async () => {
    const r = await run({
      rootfs,
      argv: ['/bin/sh', '-i'],
      env: { PS1: 'box$ ' },
      terminal: true,
      stdin: 'echo typed$((3*3)); exit 5\r',
      wallTimeLimitMs: 30_000,
    });
    expect(r.exitCode).toBe(5);
    expect(r.stdout).toContain('typed9');
  });

  it('^C typed ends the foreground job only: the shell goes on', async () => {
    let handle!: Sandbox;
    let out = '';
    let stage = 0;
    const r = await run({
      rootfs,
      argv: ['/bin/sh', '-i'],
      env: { PS1: 'box$ ', PATH: '/bin' },
      terminal: true,
      wallTimeLimitMs: 30_000,
      onSpawn: (s) => {
        handle = s;
        s.terminal!.input.write('sleep 100\r');
        /* ^C once the sleep is the terminal's foreground job, not while the shell hands it over */
        void foregroundSleep(s.pid).then(() => {
          stage = 1;
          s.terminal!.input.write('\x03');
        });
      },
      onOutput: (_s, c) => {
        out += c.toString();
        if (stage === 1 && out.includes('^C')) {
          stage = 2;
          handle.terminal!.input.write('echo after$((2+2)); exit\r');
        }
      },
    });
    expect(r.verdict).toBe('OK');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('after4');
  });

  it('resize() reaches the program as SIGWINCH and a new stty size', async () => {
    let handle!: Sandbox;
    let out = '';
    let resized = false;
    const r = await run({
      rootfs,
      /* SIGWINCH ends `wait`: the trap prints the size the program now sees. */
      argv: [
        BB,
        'sh',
        '-c',
        `trap '${BB} stty size; exit 3' WINCH; ${BB} stty size; ${BB} sleep 1000 & wait`,
      ],
      terminal: { rows: 24, cols: 80 },
      wallTimeLimitMs: 30_000,
      onSpawn: (s) => (handle = s),
      onOutput: (_s, c) => {
        out += c.toString();
        if (!resized && out.includes('24 80\r\n')) {
          resized = true;
          expect(handle.terminal!.resize({ rows: 50, cols: 132 })).toBe(true);
        }
      },
    });
    expect(r.exitCode).toBe(3);
    expect(r.stdout).toBe('24 80\r\n50 132\r\n');
    /* once the run is over, the terminal is gone */
    expect(handle.terminal!.resize({ rows: 1, cols: 1 })).toBe(false);
  });

  it('a slow reader of the output pauses the program: it blocks writing to its full terminal', async () => {
    let release!: (v: boolean) => void;
    const held = new Promise<boolean>((r) => (release = r));
    let received = 0;
    let handle!: Sandbox;
    let blocked: Promise<number> | undefined;
    const r = await run({
      rootfs,
      argv: [BB, 'yes'],
      terminal: true,
      onSpawn: (s) => (handle = s),
      onOutput: (_s, c) => {
        received += c.length;
        /* The first chunk is held: nothing more is read until it settles. */
        blocked ??= programSleeps(handle.pid).then(() => {
          const seen = received;
          release(true);
          handle.kill('SIGKILL');
          return seen;
        });
        return held;
      },
    });
    expect(r.signal).toBe('SIGKILL');
    /* yes never sleeps on its own: it slept because its terminal was full, with little read */
    expect(await blocked).toBeLessThan(1 << 20);
  });

  it('typed input the program does not read waits, and the run still ends when the sandbox is killed', async () => {
    let handle!: Sandbox;
    let settled = false;
    const r = await run({
      rootfs,
      argv: [BB, 'sleep', '1000'],
      terminal: true,
      onSpawn: (s) => {
        handle = s;
        /* Far more than a pty's input queue holds: the write waits on a pool thread, not the event loop. */
        s.terminal!.input.write(Buffer.alloc(4 << 20, 'x'), () => (settled = true));
        void programSleeps(s.pid).then(() => s.kill('SIGKILL'));
      },
    });
    expect(r.signal).toBe('SIGKILL');
    /* The waiting write ends (EIO: the terminal is gone) and is dropped; polled, the deadline bounds a failure. */
    for (const deadline = Date.now() + 20_000; !settled && Date.now() < deadline;)
      await new Promise((resolve) => setTimeout(resolve, 20));
    expect(settled).toBe(true);
    expect(handle.terminal!.resize({ rows: 1, cols: 1 })).toBe(false);
  });

  it('keepOutput: false streams what the program writes without keeping it', async () => {
    const chunks: Buffer[] = [];
    const r = await run({
      rootfs,
      argv: [BB, 'sh', '-c', 'echo streamed'],
      terminal: { keepOutput: false },
      onOutput: (_s, c) => void chunks.push(c),
    });
    expect(r.stdout).toBe('');
    expect(Buffer.concat(chunks).toString()).toBe('streamed\r\n');
  });

  it('outputLimitBytes caps what a terminal writes, as for a pipe', async () => {
    const r = await run({
      rootfs,
      argv: [BB, 'sh', '-c', `${BB} yes`],
      terminal: true,
      outputLimitBytes: 10_000,
    });
    expect(r.verdict).toBe('OUTPUT_LIMIT');
    expect(r.stdout.length).toBe(10_000);
  });

  it('leaves no descriptor behind', async () => {
    await run({ rootfs, argv: ['/bin/true'], terminal: true });
    const before = openFds();
    for (let i = 0; i < 3; i++) await run({ rootfs, argv: [BB, 'sh', '-c', 'echo x'], terminal: true });
    expect(fdsLeftSince(before)).toEqual([]);
  });

  it('shows its steps in explain', async () => {
    const r = await run({ rootfs, argv: ['/bin/true'], terminal: true, explain: true });
    const steps = r.explain!.map((s) => s.step);
    for (const s of ['mount_dev_pts', 'open_pty', 'send_pty_master', 'set_controlling_tty'])
      expect(steps).toContain(s);
    expect(steps.indexOf('open_pty')).toBeLessThan(steps.indexOf('pivot_root'));
    const plain = await run({ rootfs, argv: ['/bin/true'], explain: true });
    expect(plain.explain!.map((s) => s.step)).not.toContain('open_pty');
  });
});

describe('terminal option validation', () => {
  const base = { rootfs, argv: ['/bin/true'] };
  it.each([
    [{ terminal: 'yes' }, /terminal must be true, false or \{ rows, cols \}/],
    [{ terminal: { rows: -1 } }, /terminal\.rows must be an integer from 0 to 65535/],
    [{ terminal: { cols: 70000 } }, /terminal\.cols must be an integer from 0 to 65535/],
    [{ terminal: { keepOutput: 1 } }, /terminal\.keepOutput must be true or false/],
    [{ terminal: true, stdout: 'inherit' }, /stdout cannot be set with terminal/],
    [{ terminal: true, stderr: 'ignore' }, /stderr cannot be set with terminal/],
    [{ terminal: true, stdin: { file: '/etc/passwd' } }, /stdin with terminal is a string or Buffer/],
    [{ terminal: true, stdin: 'inherit' }, /stdin with terminal is a string or Buffer/],
  ])('refuses %j', async (extra, message) => {
    const e = await run({ ...base, ...(extra as object) } as RunOptions).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as Error).message).toMatch(message);
  });
});
