/**
 * checkRootfs: would every program in this rootfs start? For each ELF file, the loader's search is
 * replayed *inside* the rootfs (its own /etc/ld.so.cache, its own default directories, symlinks
 * resolved under it), and each `#!` script's interpreter is looked for. Nothing is executed.
 *
 * Libraries are checked in the context that loads them: a library reached from an executable
 * inherits that executable's DT_RPATH (see resolve.ts), so it is checked as part of the
 * executable's closure; a library no executable reaches (a plugin, a Python extension module) is
 * checked on its own, as `ldd` would.
 */
import { lstat, readdir } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { posix, resolve as resolvePath } from 'node:path';
import { isElf, readShebangLine } from './elf.js';
import { RootfsError } from './errors.js';
import { walk } from './paths.js';
import { Resolver, type MissingDependency } from './resolve.js';
import { MANIFEST_PATH } from './build.js';

/** Options for {@link checkRootfs}. */
export interface CheckOptions {
  /** The LD_LIBRARY_PATH programs will run with, in rootfs paths. @default undefined (none) */
  ldLibraryPath?: string;
}

/** A problem found by {@link checkRootfs}. */
export interface CheckProblem {
  /** The file that cannot start, or whose dependency is missing (rootfs path). */
  file: string;
  /** The missing library name, ELF interpreter or `#!` interpreter; for `runtime`, the missing path. */
  missing: string;
  /**
   * `runtime`: a program known to open more than its ELF closure at start (an interpreter's
   * standard library, a JVM's lib/modules) without that file; `hint` says what to add.
   */
  kind: 'library' | 'interpreter' | 'script-interpreter' | 'runtime';
  hint?: string;
}

/**
 * Programs known to need files beyond their ELF closure, and the file that shows the rest is
 * there: a rootfs holding the program without it passes the ELF check and fails at start
 * (python3 without its stdlib: "No module named 'encodings'"). `program` matches rootfs paths;
 * `needs` may use its groups ($1).
 */
export const RUNTIME_NEEDS: ReadonlyArray<{ program: RegExp; needs: string; hint: string }> = [
  {
    program: /^\/usr\/bin\/python(3\.\d+)$/,
    needs: '/usr/lib/python$1/encodings/__init__.py',
    hint: 'its standard library: --profile python3, or --package python3',
  },
  {
    program: /^(\/.*)\/bin\/java$/,
    needs: '$1/lib/modules',
    hint: 'the JDK runtime image lib/modules: --profile java, or --package of the JDK (default-jdk-headless)',
  },
  {
    program: /^(\/usr\/lib\/go[^/]*)\/bin\/go$/,
    needs: '$1/pkg/tool',
    hint: "Go's compile and link tools and its standard library: --profile go, or --package golang-go",
  },
  {
    program: /^\/usr\/bin\/git$/,
    needs: '/usr/lib/git-core/git-upload-pack',
    hint: 'the git-core helpers it executes (clone, fetch): --package git',
  },
  {
    program: /^\/usr\/bin\/perl$/,
    needs: '/usr/lib/x86_64-linux-gnu/perl-base/strict.pm',
    hint: "perl's modules: --package perl-base",
  },
];

export interface CheckResult {
  dir: string;
  /** ELF files examined. */
  elfFiles: number;
  /** `#!` scripts examined. */
  scripts: number;
  /** Every missing library or ELF interpreter; empty when every ELF program can start. */
  problems: CheckProblem[];
  /**
   * Executable scripts whose `#!` interpreter is missing. Reported apart from `problems`: trees such
   * as Python's standard library hold modules with a `#!` line that are never run as programs.
   */
  warnings: CheckProblem[];
}

/** Directories the runtime mounts over; their contents in the rootfs are never seen. */
const MOUNT_POINTS = new Set(['/proc', '/sys', '/dev']);

export async function checkRootfs(dir: string, options: CheckOptions = {}): Promise<CheckResult> {
  const root = resolvePath(dir);
  const st = await lstat(root).catch(() => null);
  if (!st?.isDirectory()) {
    throw new RootfsError('ENOENT', `rootfs ${root} does not exist or is not a directory`, { path: root });
  }
  const resolver = new Resolver({ root, ldLibraryPath: options.ldLibraryPath });
  const executables: string[] = [];
  const libraries: string[] = [];
  const result: CheckResult = { dir: root, elfFiles: 0, scripts: 0, problems: [], warnings: [] };

  const visit = async (path: string, s: Stats): Promise<void> => {
    if (s.isDirectory()) {
      if (MOUNT_POINTS.has(path)) return;
      for (const name of (await readdir(posix.join(root, path))).sort()) {
        const child = posix.join(path, name);
        await visit(child, await lstat(posix.join(root, child)));
      }
      return;
    }
    if (!s.isFile() || path === MANIFEST_PATH) return;
    const host = posix.join(root, path);
    if (await isElf(host)) {
      result.elfFiles++;
      for (const rule of RUNTIME_NEEDS) {
        const m = rule.program.exec(path);
        if (!m) continue;
        const needs = rule.needs.replace(/\$(\d)/g, (_all, i: string) => m[Number(i)] ?? '');
        if (!(await walk(root, needs))) {
          result.warnings.push({ file: path, missing: needs, kind: 'runtime', hint: rule.hint });
        }
      }
      const elf = await resolver.readElfAt(path).catch(() => null);
      if (!elf) return; // a malformed ELF file is not ours to judge; the loader would refuse it
      if (elf.interpreter) executables.push(path);
      else if (elf.dynamic) libraries.push(path);
      return;
    }
    if ((s.mode & 0o111) === 0) return;
    const shebang = await readShebangLine(host).catch(() => null);
    if (!shebang) return;
    result.scripts++;
    const interp = await walk(root, shebang.interpreter);
    if (!interp?.stats.isFile()) {
      result.warnings.push({ file: path, missing: shebang.interpreter, kind: 'script-interpreter' });
    }
  };
  await visit('/', st);

  const reached = new Set<string>();
  const record = (missing: MissingDependency[]): void => {
    for (const m of missing) {
      const kind = m.kind === 'interpreter' ? 'interpreter' : 'library';
      if (!result.problems.some((p) => p.file === m.neededBy && p.missing === m.name)) {
        result.problems.push({ file: m.neededBy, missing: m.name, kind });
      }
    }
  };
  for (const exe of executables) {
    const closure = await resolver.closure(exe);
    for (const o of closure.objects) reached.add(o.realPath);
    record(closure.missing);
  }
  /*
   * A library no program reaches is loaded by dlopen from a program that has loaded others
   * first; a DT_NEEDED name it shares with a library in the rootfs is then satisfied by the
   * object already loaded under that soname (ld.so(8)) rather than by a search: a JDK's
   * lib/libjava.so needs libjvm.so, which the java launcher loads from lib/server/ first.
   */
  const elfNames = new Set([...executables, ...libraries].map((p) => posix.basename(p)));
  for (const lib of libraries) {
    if (reached.has(lib)) continue;
    record(
      (await resolver.closure(lib)).missing.filter((m) => m.kind !== 'library' || !elfNames.has(m.name)),
    );
  }
  result.problems.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  return result;
}

/** One line per problem (or warning), for the CLI. */
export function formatProblems(problems: CheckProblem[]): string[] {
  return problems.map((p) =>
    p.kind === 'library'
      ? `${p.file}: library ${p.missing} not found`
      : p.kind === 'interpreter'
        ? `${p.file}: ELF interpreter ${p.missing} missing`
        : p.kind === 'runtime'
          ? `${p.file}: needs ${p.missing} at run time, which is missing; add ${p.hint ?? 'it'}`
          : `${p.file}: #! interpreter ${p.missing} missing`,
  );
}
