/**
 * Planning a rootfs: from programs, include paths and profiles to the list of host files, links and
 * directories to lay out, at the same paths as on the host. Nothing is written here, so every
 * error (a missing program, an unresolvable library) is found before the rootfs is touched.
 */
import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
import { existsSync, type Stats } from 'node:fs';
import { delimiter, posix, resolve as resolvePath } from 'node:path';
import { isElf, readShebangLine } from './elf.js';
import { RootfsError } from './errors.js';
import { matchesPrefix } from './glob.js';
import { FLAG_ELF_LIBC6, cacheFlagsFor, type LdCacheEntry } from './ldcache.js';
import { walk } from './paths.js';
import { Resolver, type MissingDependency, type ResolvedObject, type ResolverOptions } from './resolve.js';

/** One thing to create in the rootfs, at `path` (the same path as on the host). */
export type PlanEntry =
  | { kind: 'dir'; path: string; mode: number; uid: number; gid: number }
  | {
      kind: 'file';
      path: string;
      /** Host path to copy or link from. */
      source: string;
      /** Permission bits as on the host, setuid/setgid included (stripped when written). */
      mode: number;
      uid: number;
      gid: number;
      size: number;
      mtimeMs: number;
      dev: number;
      ino: number;
    }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'data'; path: string; content: string | Buffer; mode: number };

/** What the build did for one program (given by the caller, a profile, or a `#!` line). */
export interface ProgramReport {
  /** As the caller named it (`python3`, `/bin/sh`). */
  program: string;
  /** The path it was found at (rootfs and host alike). */
  path: string;
  /** PT_INTERP, or the `#!` interpreter for a script; null for a static program. */
  interpreter: string | null;
  /** The libraries it loads, in load order, as the loader opens them. */
  libraries: string[];
  isStatic: boolean;
  isScript: boolean;
}

/** What an include brought in. */
export interface IncludeReport {
  path: string;
  /** Regular files under it. */
  files: number;
  /** ELF files under it, whose libraries were added too. */
  elfFiles: number;
  /** Symlinks under it that point outside it to a directory, or nowhere, and were copied as links only. */
  danglingLinks: string[];
}

/** Options shared with {@link ResolverOptions}, for building. */
export interface PlanOptions extends Pick<ResolverOptions, 'ldLibraryPath' | 'ldCachePath'> {
  /**
   * Directories where bare program names (`python3`) are looked up, colon-separated. The builder's
   * own PATH is not used by default: it may hold shims (pyenv, nvm) that are not what a sandbox wants.
   * @default {@link DEFAULT_SEARCH_PATH}
   */
  searchPath?: string;
}

/** Where bare program names are looked up by default: the system's directories, as a sandbox's PATH. */
export const DEFAULT_SEARCH_PATH = '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin';

/** The kernel follows at most 4 levels of `#!` interpreters (BINPRM_MAX_RECURSION). */
const MAX_SCRIPT_DEPTH = 4;
/** Linker scripts are small text files; larger `.so` files are not read as text. */
const MAX_LINKER_SCRIPT_BYTES = 16 * 1024;

function modeOf(st: Stats): number {
  return st.mode & 0o7777;
}

/** A one-line description of unresolved dependencies, naming each file, for the error message. */
export function describeMissing(missing: MissingDependency[]): string {
  const parts = missing.map((m) => {
    const what = m.kind === 'interpreter' ? `interpreter ${m.name}` : m.name;
    return `${what} (needed by ${m.neededBy})`;
  });
  const first = missing[0];
  const where = first && first.kind === 'library' ? `; searched ${summarizeTried(first.tried)}` : '';
  return `${parts.join(', ')} not found${where}`;
}

function summarizeTried(tried: string[]): string {
  const dirs = [...new Set(tried.map((t) => posix.dirname(t)))];
  return dirs.length > 6 ? `${dirs.slice(0, 6).join(', ')} and ${dirs.length - 6} more` : dirs.join(', ');
}

export class Planner {
  readonly entries = new Map<string, PlanEntry>();
  readonly programs: ProgramReport[] = [];
  readonly includes: IncludeReport[] = [];
  /** Libraries (paths as the loader opens them) across every program and include. */
  readonly libraries = new Set<string>();
  /** Entries for the rootfs's own ld.so cache: libraries the host found through its cache. */
  readonly cacheEntries = new Map<string, Pick<LdCacheEntry, 'name' | 'path' | 'flags'>>();
  readonly missing: MissingDependency[] = [];
  readonly resolver: Resolver;
  private readonly searchDirs: string[];
  private readonly closureDone = new Set<string>();

  constructor(options: PlanOptions = {}) {
    this.resolver = new Resolver({ ...options, root: '/' });
    const searchPath = options.searchPath ?? DEFAULT_SEARCH_PATH;
    this.searchDirs = searchPath.split(delimiter).filter((d) => d.startsWith('/'));
  }

  /** Adds a directory (and its parents) with the host's mode and owner. */
  private async addDir(path: string, st?: Stats): Promise<void> {
    if (path === '/' || this.entries.has(path)) return;
    await this.addParents(path);
    const s = st ?? (await lstat(path));
    this.entries.set(path, { kind: 'dir', path, mode: modeOf(s), uid: s.uid, gid: s.gid });
  }

  /** Adds every ancestor directory of `path`; each is a real directory, since `path` is resolved. */
  private async addParents(path: string): Promise<void> {
    const parent = posix.dirname(path);
    if (parent !== '/' && !this.entries.has(parent)) await this.addDir(parent);
  }

  private async addFile(path: string, st: Stats): Promise<void> {
    if (this.entries.has(path)) return;
    await this.addParents(path);
    this.entries.set(path, {
      kind: 'file',
      path,
      source: path,
      mode: modeOf(st),
      uid: st.uid,
      gid: st.gid,
      size: st.size,
      mtimeMs: st.mtimeMs,
      dev: st.dev,
      ino: st.ino,
    });
  }

  private async addLink(path: string, target: string): Promise<void> {
    if (this.entries.has(path)) return;
    await this.addParents(path);
    this.entries.set(path, { kind: 'symlink', path, target });
  }

  /**
   * Adds a path the way a lookup reaches it: every symlink crossed, then the file or directory
   * itself. Returns the real path and its stats, or null when it does not exist.
   */
  async addChain(path: string): Promise<{ realPath: string; stats: Stats } | null> {
    const found = await walk('/', path);
    if (!found) return null;
    for (const link of found.links) await this.addLink(link.path, link.target);
    if (found.stats.isDirectory()) await this.addDir(found.realPath, found.stats);
    else if (found.stats.isFile()) await this.addFile(found.realPath, found.stats);
    return { realPath: found.realPath, stats: found.stats };
  }

  private async addObject(obj: ResolvedObject): Promise<void> {
    for (const link of obj.links) await this.addLink(link.path, link.target);
    if (!this.entries.has(obj.realPath)) await this.addFile(obj.realPath, await lstat(obj.realPath));
    if (obj.via === 'program') return;
    this.libraries.add(obj.path);
    if (obj.via === 'cache') {
      const flags = cacheFlagsFor(obj.elf.bits, obj.elf.machine) ?? FLAG_ELF_LIBC6;
      this.cacheEntries.set(`${obj.name}\0${flags}`, { name: obj.name, path: obj.path, flags });
    }
  }

  /** Adds an ELF file's closure; records what is missing. Returns the closure's objects. */
  private async addElfClosure(path: string): Promise<ResolvedObject[]> {
    const closure = await this.resolver.closure(path);
    for (const obj of closure.objects) await this.addObject(obj);
    for (const m of closure.missing) {
      if (!this.missing.some((x) => x.name === m.name && x.neededBy === m.neededBy)) this.missing.push(m);
    }
    return closure.objects;
  }

  /** Finds a bare command name in the search path; an absolute or relative path is used as given. */
  findProgram(program: string, dirs = this.searchDirs): string | null {
    if (program.includes('/')) return resolvePath(program);
    return dirs.map((d) => posix.join(d, program)).find((p) => existsSync(p)) ?? null;
  }

  /**
   * Adds a program and everything it needs to run: its interpreter and libraries, or for a script
   * its `#!` interpreter (and for `#!/usr/bin/env NAME`, NAME looked up in the search path).
   */
  async addProgram(program: string, depth = 0, dirs?: string[]): Promise<void> {
    const path = this.findProgram(program, dirs);
    if (path === null) {
      throw new RootfsError(
        'ENOENT',
        `program ${program} was not found in ${(dirs ?? this.searchDirs).join(':')}`,
        {
          path: program,
        },
      );
    }
    const found = await this.addChain(path);
    if (!found) throw new RootfsError('ENOENT', `program ${path} does not exist`, { path });
    if (found.stats.isDirectory()) {
      throw new RootfsError(
        'INVALID',
        `${path} is a directory, not a program; use --include ${path} to copy a tree`,
        {
          path,
        },
      );
    }
    if (!found.stats.isFile()) {
      throw new RootfsError('INVALID', `${path} is not a regular file`, { path });
    }
    if (await isElf(path)) {
      if (this.closureDone.has(found.realPath)) return;
      this.closureDone.add(found.realPath);
      const objects = await this.addElfClosure(path);
      const self = objects[0];
      this.programs.push({
        program,
        path,
        interpreter: self?.elf.interpreter ?? null,
        libraries: objects.filter((o) => o.via !== 'program' && o.via !== 'interpreter').map((o) => o.path),
        isStatic: self !== undefined && !self.elf.dynamic && self.elf.interpreter === null,
        isScript: false,
      });
      return;
    }
    const shebang = await readShebangLine(path);
    if (!shebang) {
      throw new RootfsError('NOT_ELF', `${path} is neither an ELF program nor a script starting with #!`, {
        path,
      });
    }
    if (depth >= MAX_SCRIPT_DEPTH) {
      throw new RootfsError('INVALID', `${path}: more than ${MAX_SCRIPT_DEPTH} levels of #! interpreters`, {
        path,
      });
    }
    this.programs.push({
      program,
      path,
      interpreter: shebang.interpreter,
      libraries: [],
      isStatic: false,
      isScript: true,
    });
    if (!shebang.interpreter.startsWith('/')) {
      throw new RootfsError(
        'INVALID',
        `${path}: the #! interpreter ${shebang.interpreter} is not an absolute path`,
        {
          path,
        },
      );
    }
    await this.addProgram(shebang.interpreter, depth + 1);
    if (posix.basename(shebang.interpreter) === 'env' && shebang.argument) {
      // `#!/usr/bin/env -S python3 -u` or `#!/usr/bin/env python3`: the first word that is not an option.
      const command = shebang.argument.split(/\s+/).find((w) => !w.startsWith('-'));
      if (command) await this.addProgram(command, depth + 1);
    }
  }

  /**
   * Adds a file or a tree as it is. ELF files inside get their libraries; linker scripts bring the
   * files they name; a symlink that leads out of the tree to a file brings that file.
   */
  async addInclude(path: string, exclude: string[] = []): Promise<IncludeReport> {
    const abs = resolvePath(path);
    const found = await this.addChain(abs);
    if (!found) throw new RootfsError('ENOENT', `include ${abs} does not exist`, { path: abs });
    const report: IncludeReport = { path: abs, files: 0, elfFiles: 0, danglingLinks: [] };
    const excluded = (p: string): boolean => exclude.some((pattern) => matchesPrefix(pattern, p));
    const visit = async (p: string, st: Stats, elf?: boolean): Promise<void> => {
      if (st.isDirectory()) {
        await this.addDir(p, st);
        // One directory's lstat and ELF-magic reads go out together: the libuv pool overlaps them,
        // which matters for trees of thousands of files (/usr/include, a compiler's directory).
        const children = (await readdir(p))
          .sort()
          .map((name) => posix.join(p, name))
          .filter((c) => !excluded(c));
        const stats = await Promise.all(children.map((c) => lstat(c)));
        const elfs = await Promise.all(
          children.map((c, i) => (stats[i]?.isFile() && mayLoad(c, stats[i] as Stats) ? isElf(c) : false)),
        );
        for (const [i, child] of children.entries()) await visit(child, stats[i] as Stats, elfs[i]);
      } else if (st.isSymbolicLink()) {
        await this.addLink(p, await readlink(p));
        const target = await walk('/', p);
        if (target?.stats.isFile()) {
          await this.addChain(p);
          await this.addFileContents(target.realPath, target.stats, report);
        } else if (!target || !target.realPath.startsWith(`${found.realPath}/`)) {
          report.danglingLinks.push(p);
        }
      } else if (st.isFile()) {
        await this.addFile(p, st);
        await this.addFileContents(p, st, report, elf);
      }
    };
    if (!excluded(found.realPath)) await visit(found.realPath, found.stats);
    this.includes.push(report);
    return report;
  }

  /**
   * Adds one path of a package's file list (dpkg.ts): a file with what it needs (as an include
   * would), a symlink with what it points to, but a directory only as itself, never its tree
   * (other packages' files live there too). Returns whether a regular file was added.
   */
  async addListedPath(path: string, report: IncludeReport): Promise<boolean> {
    /*
     * Through addChain: a listed path may cross a symlink (/lib/systemd on a merged-/usr host),
     * which is added as the link it is. A directory is added at its real path, without its tree.
     * A path listed but gone (diverted, deleted since, as dpkg -V would say) adds nothing.
     */
    const found = await this.addChain(path);
    if (!found?.stats.isFile()) return false;
    await this.addFileContents(
      found.realPath,
      found.stats,
      report,
      mayLoad(found.realPath, found.stats) ? undefined : false,
    );
    return true;
  }

  /**
   * After a package's files are added: forgets missing libraries that one of the planned files
   * provides under that name. A JDK's lib/libjava.so needs libjvm.so, which lives in lib/server/
   * and is loaded first by the java launcher; the loader then satisfies DT_NEEDED by the soname
   * of the object already loaded (ld.so(8)), not by a search. Within one package set that is how
   * they are built to load.
   */
  forgiveLoadedByName(): void {
    const names = new Set<string>();
    for (const e of this.entries.values()) if (e.kind === 'file') names.add(posix.basename(e.path));
    const kept = this.missing.filter((m) => m.kind !== 'library' || !names.has(m.name));
    this.missing.splice(0, this.missing.length, ...kept);
  }

  /** Follows what a file needs: an ELF file's libraries, a linker script's inputs. */
  private async addFileContents(
    path: string,
    st: Stats,
    report: IncludeReport,
    elf?: boolean,
  ): Promise<void> {
    report.files++;
    if (elf ?? (await isElf(path))) {
      report.elfFiles++;
      if (this.closureDone.has(path)) return;
      this.closureDone.add(path);
      await this.addElfClosure(path);
      return;
    }
    // libc.so, libm.so and (on glibc 2.36) libm.a are GNU ld scripts naming the real files.
    if (!/\.(so|a)$/.test(path) || st.size > MAX_LINKER_SCRIPT_BYTES) return;
    for (const input of parseLinkerScriptInputs(await readFile(path, 'utf8'))) {
      const dep = await this.addChain(input);
      if (dep?.stats.isFile() && (await isElf(dep.realPath)) && !this.closureDone.has(dep.realPath)) {
        this.closureDone.add(dep.realPath);
        await this.addElfClosure(input);
      }
    }
  }

  /** Adds a library found outside the loader's search (GPU libraries) and its own closure. */
  async addLibrary(path: string, cacheName: string | null): Promise<void> {
    const objects = await this.addElfClosure(path);
    const self = objects[0];
    if (self && cacheName) {
      const flags = cacheFlagsFor(self.elf.bits, self.elf.machine) ?? FLAG_ELF_LIBC6;
      this.cacheEntries.set(`${cacheName}\0${flags}`, { name: cacheName, path, flags });
    }
  }

  /** Adds an entry that is not a host file (skeleton files). Existing plan entries win. */
  addData(path: string, content: string | Buffer, mode: number): void {
    if (!this.entries.has(path)) this.entries.set(path, { kind: 'data', path, content, mode });
  }

  /** Adds an empty directory that is not copied from the host (mount points). */
  addEmptyDir(path: string, mode: number): void {
    if (!this.entries.has(path)) this.entries.set(path, { kind: 'dir', path, mode, uid: 0, gid: 0 });
  }

  /** Throws one RootfsError listing every unresolved dependency, if there is any. */
  assertComplete(): void {
    if (this.missing.length === 0) return;
    throw new RootfsError(
      'UNRESOLVED',
      `cannot build the rootfs: ${describeMissing(this.missing)}. Install the package that provides it, ` +
        `pass its directory with --ld-library-path, or copy it with --include; the rootfs was not changed`,
      { path: this.missing[0]?.neededBy },
    );
  }
}

/**
 * Whether a file in an included tree is worth opening to look for an ELF header: executables (any
 * execute bit) and shared objects (a name with `.so`, which Debian installs 0644). Other ELF files
 * (`.o` objects, kernel modules) need no libraries, and skipping the thousands of headers in
 * /usr/include saves a second per build.
 */
export function mayLoad(path: string, st: Stats): boolean {
  return (st.mode & 0o111) !== 0 || /\.so(\.|$)/.test(posix.basename(path));
}

/**
 * The absolute paths named in a GNU ld script (`GROUP ( /lib/x86_64-linux-gnu/libc.so.6 ... )`),
 * or [] when the text is not a linker script. ld opens these inside the rootfs when linking.
 */
export function parseLinkerScriptInputs(text: string): string[] {
  const body = text.replace(/\/\*[\s\S]*?\*\//g, ' ');
  if (!/\b(GROUP|INPUT)\s*\(/.test(body)) return [];
  return [...body.matchAll(/(?<=[\s(])\/[^\s()]+/g)].map((m) => m[0]);
}
