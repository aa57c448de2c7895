/**
 * Test fixtures built from source in a temp dir: real ELF files made by the host toolchain, so the
 * reader and resolver are checked against what gcc and ld really write, not against hand-made bytes.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

/** True when the host has a working C compiler (fixtures that need it skip otherwise, saying so). */
export const hasGcc = existsSync('/usr/bin/gcc');
/** True when binutils' `as` and `ld` are present (used for 32-bit fixtures). */
export const hasBinutils = existsSync('/usr/bin/as') && existsSync('/usr/bin/ld');

/** A temp dir, mode 0755 so that fixtures copied from it stay reachable by nobody inside a rootfs. */
export async function makeTempDir(prefix = 'capsule-rootfs-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await chmod(dir, 0o755);
  return dir;
}

export async function removeDir(dir: string | undefined): Promise<void> {
  if (dir) await rm(dir, { recursive: true, force: true });
}

/** Compiles C source into `out` with extra gcc flags (e.g. `-shared`, `-Wl,-rpath,...`). */
export async function compile(out: string, source: string, flags: string[] = []): Promise<string> {
  const src = `${out}.c`;
  await writeFile(src, source);
  await execa('gcc', ['-o', out, src, ...flags]);
  await rm(src);
  return out;
}

/** Builds a 32-bit i386 shared library with no code, using only binutils (no multilib needed). */
export async function makeLib32(out: string, soname: string, needed: string[] = []): Promise<string> {
  const obj = `${out}.o`;
  await writeFile(`${out}.s`, '.text\n.globl f\nf: ret\n');
  await execa('as', ['--32', '-o', obj, `${out}.s`]);
  await execa('ld', ['-m', 'elf_i386', '-shared', '-soname', soname, '-o', out, obj, ...needed]);
  await rm(obj);
  await rm(`${out}.s`);
  return out;
}

/** One line of `ldd` output: the name asked for and the path found (null: "not found"). */
export interface LddEntry {
  name: string;
  path: string | null;
}

/**
 * The system loader's own listing, the cross-check for the resolver. `ldd` runs the program's
 * loader in trace mode; only use it on trusted host files, as here.
 */
export async function ldd(file: string, env: Record<string, string> = {}): Promise<LddEntry[]> {
  const { stdout } = await execa('ldd', [file], { env, extendEnv: false, reject: false });
  const entries: LddEntry[] = [];
  for (const line of stdout.split('\n')) {
    const arrow = /^\s+(\S+) => (not found|\S+)/.exec(line);
    if (arrow) {
      entries.push({ name: arrow[1] ?? '', path: arrow[2] === 'not found' ? null : (arrow[2] ?? null) });
      continue;
    }
    const bare = /^\s+(\/\S+) \(0x/.exec(line); // the interpreter: "/lib64/ld-linux-x86-64.so.2 (0x...)"
    if (bare) entries.push({ name: bare[1] ?? '', path: bare[1] ?? '' });
  }
  return entries;
}

/** True when the tests run as root (chroot and ownership checks need it). */
export const isRoot = process.getuid?.() === 0;

/**
 * A listing of a tree (path, type, mode, size, link target), to assert that a failed build left
 * a rootfs exactly as it was.
 */
export async function snapshot(dir: string): Promise<string[]> {
  const { lstat, readdir, readlink } = await import('node:fs/promises');
  const out: string[] = [];
  const visit = async (rel: string): Promise<void> => {
    const st = await lstat(join(dir, rel));
    const kind = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : 'f';
    const extra = st.isSymbolicLink() ? await readlink(join(dir, rel)) : st.isFile() ? String(st.size) : '';
    out.push(`${kind} ${(st.mode & 0o7777).toString(8)} ${rel || '/'} ${extra} ${st.ino}`);
    if (st.isDirectory()) for (const n of (await readdir(join(dir, rel))).sort()) await visit(`${rel}/${n}`);
  };
  await visit('');
  return out;
}

/** Runs a command in `root` with chroot(8) as nobody: the host loader, inside the built rootfs. */
export async function inChroot(
  root: string,
  argv: string[],
  options: { input?: string; env?: Record<string, string> } = {},
): Promise<{ exitCode: number | undefined; stdout: string; stderr: string }> {
  const r = await execa('/usr/sbin/chroot', ['--userspec=65534:65534', root, ...argv], {
    input: options.input,
    env: { PATH: '/usr/bin:/bin', ...options.env },
    extendEnv: false,
    reject: false,
    stripFinalNewline: false,
    cwd: '/',
  });
  return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}
