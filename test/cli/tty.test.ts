/**
 * `capsule run -it ROOTFS /bin/sh` as a person uses it: tmux runs it in a pane, send-keys
 * types, capture-pane reads the screen. The shell inside has job control (its own pty from
 * the sandbox's devpts, it the session leader), ^C and ^Z reach its foreground job and not
 * capsule, the window size follows the pane, and the pane's terminal settings (`stty -g`)
 * are the same afterwards whatever the program did to its terminal and however capsule ended.
 *
 * Each test has a tmux server of its own on a socket in its temp dir, killed at its end.
 */
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';

import { noPtyReason } from '../helpers/host.js';
import { makeBusyboxRootfs } from '../helpers/rootfs.js';

const TMUX = '/usr/bin/tmux';
const cli = join(import.meta.dirname, '../../dist/capsule.mjs');
/* What a person types: the installed command (dist/capsule, started from the CLI's snapshot). */
const installed = join(import.meta.dirname, '../../dist/capsule');
const noPty = noPtyReason();

let dir: string;
let rootfs: string;
beforeAll(() => {
  if (noPty) return;
  if (!existsSync(TMUX)) throw new Error(`${TMUX} is missing: apt-get install tmux (scripts/setup.sh does)`);
  dir = mkdtempSync(join(tmpdir(), 'capsule-cli-tty-'));
  rootfs = join(dir, 'rootfs');
  makeBusyboxRootfs(rootfs, inject('probe'));
  for (const a of ['stty', 'tty', 'ps']) symlinkSync('busybox', join(rootfs, 'bin', a));
  /* sti TEXT: push TEXT and a newline into the terminal on stdin, as if typed (TIOCSTI). */
  const src = join(dir, 'sti.c');
  writeFileSync(
    src,
    '#include <stdio.h>\n#include <sys/ioctl.h>\n' +
      'int main(int argc, char **argv) {\n' +
      '  if (argc < 2) return 2;\n' +
      '  for (const char *s = argv[1]; ; s++) {\n' +
      "    const char c = *s ? *s : '\\n';\n" +
      '    if (ioctl(0, TIOCSTI, &c) != 0) { perror("TIOCSTI"); return 1; }\n' +
      '    if (!*s) return 0;\n' +
      '  }\n}\n',
  );
  execFileSync('cc', ['-static', '-O2', '-Wall', '-Werror', '-o', join(rootfs, 'sti'), src]);
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** One pane running capsule, on a tmux server of its own. */
class Pane {
  readonly socket: string;
  readonly out: string;

  constructor(name: string, capsuleArgs: string, program = `${rootfs} /bin/sh -i`) {
    this.out = mkdtempSync(join(dir, `${name}-`));
    this.socket = join(this.out, 'tmux.sock');
    /* The pane's own shell records its terminal before and after capsule, then stays. */
    const script = join(this.out, 'outer.sh');
    writeFileSync(
      script,
      [
        `stty -g > ${this.out}/before`,
        `${installed} run -it -e 'PS1=box$ ' ${capsuleArgs} ${program}`,
        `echo "capsule exited $?"`,
        `stty -g > ${this.out}/after`,
        'exec sleep 3600',
      ].join('\n') + '\n',
    );
    this.tmux('-f', '/dev/null', 'new-session', '-d', '-x', '100', '-y', '30', `sh ${script}`);
  }

  tmux(...args: string[]): string {
    return execFileSync(TMUX, ['-S', this.socket, ...args], { encoding: 'utf8' });
  }

  screen(): string {
    return this.tmux('capture-pane', '-p', '-J');
  }

  /** Wait until the screen matches (polled; the deadline only bounds a failure). */
  async waitFor(re: RegExp, what = String(re)): Promise<string> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const s = this.screen();
      if (re.test(s)) return s;
      if (Date.now() > deadline) throw new Error(`the screen never showed ${what}:\n${s}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Type a line and wait for the shell's next prompt after it. */
  async line(text: string, expect: RegExp): Promise<string> {
    this.tmux('send-keys', '-t', '0', '-l', text);
    this.tmux('send-keys', '-t', '0', 'Enter');
    return this.waitFor(expect);
  }

  keys(...keys: string[]): void {
    this.tmux('send-keys', '-t', '0', ...keys);
  }

  /** The `capsule` node process in the pane: the child of the pane's shell. */
  capsulePid(): number {
    const shell = Number(this.tmux('display', '-p', '-t', '0', '#{pane_pid}').trim());
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      try {
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid === shell && readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(installed))
          return Number(name);
      } catch {
        /* gone */
      }
    }
    throw new Error('capsule is not running in the pane');
  }

  /**
   * Wait until the sandbox's `sleep 100` runs as the foreground job of its terminal (its
   * process group is the terminal's, proc(5) stat pgrp and tpgid): a ^C typed before that
   * would reach the shell, still between reading the line and handing the terminal over.
   */
  async sleepInForeground(): Promise<void> {
    const capsule = this.capsulePid();
    const deadline = Date.now() + 20_000;
    for (;;) {
      for (const name of readdirSync('/proc')) {
        if (!/^\d+$/.test(name)) continue;
        try {
          if (readFileSync(`/proc/${name}/cmdline`, 'utf8') !== 'sleep\x00100\x00') continue;
          const f = statOf(Number(name));
          if (f.pgrp !== f.tpgid) continue;
          for (let p = f.ppid; p > 1; p = statOf(p).ppid) if (p === capsule) return;
        } catch {
          /* gone */
        }
      }
      if (Date.now() > deadline) throw new Error(`no sleep 100 in the foreground:\n${this.screen()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  paneSize(): string {
    return this.tmux('display', '-p', '-t', '0', '#{pane_height} #{pane_width}').trim();
  }

  file(name: string): string {
    return readFileSync(join(this.out, name), 'utf8').trim();
  }

  kill(): void {
    try {
      this.tmux('kill-server');
    } catch {
      /* already gone */
    }
  }
}

/** proc(5) /proc/PID/stat: state, ppid, pgrp and tpgid (the terminal's foreground group). */
function statOf(pid: number) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: f[0]!, ppid: Number(f[1]), pgrp: Number(f[2]), tpgid: Number(f[5]) };
}

/** The process state letter of a PID. */
const state = (pid: number) => statOf(pid).state;

const PROMPT = /box\$ $/m;
/** The screen once `echo $((a+b))` printed its sum on a line of its own (the typed line shows the expression). */
const sum = (n: number) => new RegExp(`^${n}\\r?$`, 'm');

let pane: Pane | undefined;
afterEach(() => {
  pane?.kill();
  pane = undefined;
});

describe.skipIf(noPty)(`capsule run -it in tmux${noPty ? ` (skipped: ${noPty})` : ''}`, () => {
  it('gives the shell a terminal of its own: tty is /dev/pts/N, stty size is the pane', async () => {
    pane = new Pane('size', '');
    await pane.waitFor(PROMPT, 'the prompt');
    const s = await pane.line('tty; stty size; echo $((40+2))', sum(42));
    expect(s).toMatch(/^\/dev\/pts\/\d+\r?$/m);
    expect(s).toContain(`\n${pane.paneSize()}\n`);
  }, 60_000);

  it('follows a resize of the window (SIGWINCH from TIOCSWINSZ on the master)', async () => {
    pane = new Pane('resize', '');
    await pane.waitFor(PROMPT, 'the prompt');
    pane.tmux('resize-window', '-t', '0', '-x', '123', '-y', '41');
    const size = pane.paneSize();
    expect(size).toMatch(/^4\d 123$/);
    const s = await pane.line('stty size; echo $((40+3))', sum(43));
    expect(s).toContain(`\n${size}\n`);
  }, 60_000);

  it('has job control: sleep 100 &, jobs, fg, then ^C ends the job and the shell lives on', async () => {
    pane = new Pane('jobs', '');
    await pane.waitFor(PROMPT, 'the prompt');
    await pane.line('sleep 100 &', PROMPT);
    await pane.line('jobs', /\[1\]\+\s+Running\s+sleep 100/);
    await pane.line('fg', /^sleep 100\r?$/m);
    await pane.sleepInForeground();
    pane.keys('C-c');
    await pane.waitFor(/\^C\s*\n.*box\$ $/m, 'the prompt after ^C');
    const s = await pane.line('jobs; echo $((40+4))', sum(44));
    expect(s).not.toMatch(/Running\s+sleep 100\s*\n.*44/);
    expect(state(pane.capsulePid())).not.toBe('T');
  }, 60_000);

  it('^C of a foreground sleep reaches the sleep only: the shell and capsule live on', async () => {
    pane = new Pane('ctrl-c', '');
    await pane.waitFor(PROMPT, 'the prompt');
    const capsule = pane.capsulePid();
    pane.tmux('send-keys', '-t', '0', '-l', 'sleep 100');
    pane.keys('Enter');
    await pane.sleepInForeground();
    pane.keys('C-c');
    await pane.waitFor(/\^C\s*\n.*box\$ $/m, 'the prompt after ^C');
    await pane.line('echo $((40+5))', sum(45));
    expect(pane.capsulePid()).toBe(capsule);
  }, 60_000);

  it('^Z stops the foreground job inside, not capsule', async () => {
    pane = new Pane('ctrl-z', '');
    await pane.waitFor(PROMPT, 'the prompt');
    const capsule = pane.capsulePid();
    pane.tmux('send-keys', '-t', '0', '-l', 'sleep 100');
    pane.keys('Enter');
    await pane.sleepInForeground();
    pane.keys('C-z');
    await pane.waitFor(/\[1\]\+\s+Stopped\s+sleep 100/, 'the job stopped');
    expect(state(capsule)).not.toBe('T');
    const s = await pane.line('jobs; echo $((40+6))', sum(46));
    expect(s).toMatch(/\[1\]\+\s+Stopped\s+sleep 100/);
    /* and the job can go on: bg, then kill it */
    await pane.line('kill %1; echo $((40+7))', sum(47));
  }, 60_000);

  it("leaves the pane's terminal settings as they were after the program ran stty -echo and exited", async () => {
    pane = new Pane('stty', '');
    await pane.waitFor(PROMPT, 'the prompt');
    /* While capsule runs, the pane's terminal is in capsule's raw mode, and the program's stty does not touch it. */
    const paneTty = pane.tmux('display', '-p', '-t', '0', '#{pane_tty}').trim();
    const during = () => execFileSync('stty', ['-g', '-F', paneTty], { encoding: 'utf8' }).trim();
    const raw = during();
    expect(raw).not.toBe(pane.file('before'));
    await pane.line('stty -echo -icanon; echo $((40+8))', sum(48));
    expect(during()).toBe(raw);
    pane.tmux('send-keys', '-t', '0', '-l', 'exit 3');
    pane.keys('Enter');
    await pane.waitFor(/capsule exited 3/);
    await waitForFile(pane, 'after');
    expect(pane.file('after')).toBe(pane.file('before'));
    expect(pane.file('before')).not.toBe('');
  }, 60_000);

  it.each(['SIGTERM', 'SIGHUP', 'SIGINT'] as const)(
    "leaves the pane's terminal settings as they were when capsule gets %s",
    async (sig) => {
      pane = new Pane(sig.toLowerCase(), '');
      await pane.waitFor(PROMPT, 'the prompt');
      await pane.line('stty raw -echo; echo $((40+9))', sum(49));
      process.kill(pane.capsulePid(), sig);
      /* The program's terminal is hung up: the shell dies of SIGHUP, capsule exits 128+1. */
      await pane.waitFor(/capsule exited 129/);
      await waitForFile(pane, 'after');
      expect(pane.file('after')).toBe(pane.file('before'));
    },
    60_000,
  );

  it("leaves the pane's terminal settings as they were when the program is killed", async () => {
    pane = new Pane('killed', '');
    await pane.waitFor(PROMPT, 'the prompt');
    pane.tmux('send-keys', '-t', '0', '-l', 'stty raw -echo; kill -KILL $$');
    pane.keys('Enter');
    await pane.waitFor(/capsule exited 137/);
    await waitForFile(pane, 'after');
    expect(pane.file('after')).toBe(pane.file('before'));
  }, 60_000);

  it("shows the program's bytes as written: a bare newline after stty -opost inside keeps the column", async () => {
    pane = new Pane('opost', '');
    await pane.waitFor(PROMPT, 'the prompt');
    /* With the pane's output processing on, capsule's \n would gain a carriage return. */
    const s = await pane.line("stty -opost; printf 'ab\\ncd\\r\\n'; stty opost; echo $((50+3))", sum(53));
    expect(s).toMatch(/^ab\r?\n {2}cd/m);
  }, 60_000);

  it('a program that cannot be executed: one line, exit 127, the pane as it was', async () => {
    pane = new Pane('noexec', '', `${rootfs} /bin/nonexistent`);
    const s = await pane.waitFor(/capsule exited 127/);
    expect(s).toMatch(/^capsule: cannot execute \/bin\/nonexistent in .*\n(.*\n)*capsule exited 127$/m);
    await waitForFile(pane, 'after');
    expect(pane.file('after')).toBe(pane.file('before'));
  }, 60_000);

  it("TIOCSTI from inside types into the sandbox's own terminal, never the pane's", async () => {
    /* Without seccomp (whose default profile denies TIOCSTI), so the ioctl itself is tried. */
    pane = new Pane('tiocsti', '--seccomp none');
    await pane.waitFor(PROMPT, 'the prompt');
    /* The typed line runs in the sandbox's shell: its /tmp is the sandbox's own tmpfs. */
    await pane.line("/sti 'echo INJ$((6*7)) > /tmp/inj'; echo $((50+1))", sum(51));
    const s = await pane.line('cat /tmp/inj; echo $((50+2))', sum(52));
    expect(s).toMatch(/^INJ42\r?$/m);
    pane.tmux('send-keys', '-t', '0', '-l', 'exit 0');
    pane.keys('Enter');
    await pane.waitFor(/capsule exited 0/);
    await waitForFile(pane, 'after');
    expect(pane.file('after')).toBe(pane.file('before'));
  }, 60_000);
});

describe('capsule run -t without a terminal', () => {
  it('says so in one line and exits 125', () => {
    let status = 0;
    let stderr = '';
    try {
      execFileSync('node', [cli, 'run', '-t', inject('rootfs'), '/bin/true'], {
        stdio: ['pipe', 'pipe', 'pipe'],
        input: '',
      });
    } catch (e) {
      const err = e as { status: number; stderr: Buffer };
      status = err.status;
      stderr = err.stderr.toString();
    }
    expect(status).toBe(125);
    expect(stderr).toMatch(/^capsule: the input device is not a TTY: -t .*\n$/);
    expect(stderr.split('\n')).toHaveLength(2);
  });
});

describe('capsule explain -t', () => {
  it('shows the terminal steps, in order, and no terminal step without -t', () => {
    const steps = (args: string[]) =>
      (
        JSON.parse(
          execFileSync('node', [cli, 'explain', '--json', ...args, inject('rootfs'), '/bin/sh'], {
            encoding: 'utf8',
          }),
        ) as { step: string }[]
      ).map((s) => s.step);
    const t = steps(['-t']);
    const order = [
      'mount_dev_pts',
      'open_pty',
      'send_pty_master',
      'pivot_root',
      'set_controlling_tty',
      'exec',
    ];
    expect(order.map((s) => t.indexOf(s))).toEqual([...order.map((s) => t.indexOf(s))].sort((a, b) => a - b));
    expect(order.every((s) => t.includes(s))).toBe(true);
    const plain = steps([]);
    for (const s of ['mount_dev_pts', 'open_pty', 'send_pty_master', 'set_controlling_tty'])
      expect(plain).not.toContain(s);
  });
});

describe('capsule run -i without a terminal', () => {
  it('streams stdin to the program and delivers its end', () => {
    const out = execFileSync(
      'node',
      [cli, 'run', '-i', inject('rootfs'), '/bin/sh', '-c', 'cat; echo "[eof]"'],
      {
        input: 'one\ntwo\n',
        encoding: 'utf8',
      },
    );
    expect(out).toBe('one\ntwo\n[eof]\n');
  });
});

async function waitForFile(p: Pane, name: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!existsSync(join(p.out, name)) || p.file(name) === '') {
    if (Date.now() > deadline) throw new Error(`${name} was never written`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
