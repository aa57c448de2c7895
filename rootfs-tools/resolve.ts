/**
 * Dependency resolution, done the way the dynamic loader does it, by reading files only.
 *
 * ld.so(8), "Finding shared libraries": for each DT_NEEDED name of an object,
 *   1. a name containing a slash is used as a path;
 *   2. DT_RPATH of the requesting object, then of the object that loaded it, up to the executable,
 *      but only if the requesting object has no DT_RUNPATH (and an object's own DT_RUNPATH turns
 *      its DT_RPATH off);
 *   3. LD_LIBRARY_PATH (only when the caller passes one: the sandbox's environment, not ours);
 *   4. DT_RUNPATH of the requesting object only (not inherited);
 *   5. the ld.so cache, then 6. the default directories; both skipped for an object linked with
 *      `-z nodefaultlib` (DF_1_NODEFLIB).
 * In every directory, `$ORIGIN` is the requesting object's directory, `$LIB` the ABI's library
 * directory and `$PLATFORM` the AT_PLATFORM string. A candidate of the wrong ELF class or machine
 * is skipped (the loader says "wrong ELF class" and goes on searching). Libraries are loaded
 * breadth-first, and a name already loaded (by its DT_SONAME or the name it was asked for) is
 * not looked up again; so this module returns objects in the order `ldd` lists them.
 */
import { posix } from 'node:path';
import { readElf, type ElfInfo } from './elf.js';
import { RootfsError } from './errors.js';
import { cacheFlagsFor, lookupLdCache, readLdCache, type LdCacheEntry } from './ldcache.js';
import { hostPath, walk, type LinkStep } from './paths.js';

/** How a dependency was found; the names follow the loader's search steps. */
export type FoundVia =
  'program' | 'interpreter' | 'path' | 'rpath' | 'ld_library_path' | 'runpath' | 'cache' | 'default';

/** One ELF object in a program's closure. */
export interface ResolvedObject {
  /** The path the loader opens, as found by the search (what `ldd` prints), in root coordinates. */
  path: string;
  /** The same path with every symlink resolved. */
  realPath: string;
  /** The symlinks crossed from `path` to `realPath` (usrmerge `/lib64 -> usr/lib64`, `libz.so.1 -> libz.so.1.2.13`). */
  links: LinkStep[];
  /** The DT_NEEDED name this object was loaded for, or the program path for the program itself. */
  name: string;
  /** The object that asked for it (path), or null for the program. */
  neededBy: string | null;
  via: FoundVia;
  elf: ElfInfo;
}

/** A dependency that could not be found, with every place that was tried. */
export interface MissingDependency {
  /** The DT_NEEDED name or the PT_INTERP path. */
  name: string;
  kind: 'library' | 'interpreter';
  /** The object that asked for it (path in root coordinates). */
  neededBy: string;
  /** The candidate paths tried, in order. */
  tried: string[];
}

/** The objects a program loads, in load order, and what could not be found. */
export interface Closure {
  program: string;
  objects: ResolvedObject[];
  missing: MissingDependency[];
  /** True when the program is statically linked: no interpreter, no libraries. */
  isStatic: boolean;
}

/** Options for {@link Resolver}. */
export interface ResolverOptions {
  /**
   * The directory treated as `/` for every lookup: the host (`'/'`) when building a rootfs, the rootfs
   * itself when checking one.
   * @default '/'
   */
  root?: string;
  /**
   * An LD_LIBRARY_PATH the programs will run with (colon-separated, in root coordinates). The
   * builder's own environment is never used.
   * @default undefined (none)
   */
  ldLibraryPath?: string;
  /**
   * The ld.so cache to read, a host path. null: no cache.
   * @default `<root>/etc/ld.so.cache` (a missing file counts as an empty cache)
   */
  ldCachePath?: string | null;
  /**
   * The default directories searched last, in root coordinates.
   * @default the ABI's multiarch directories (`/lib/x86_64-linux-gnu`, `/usr/lib/x86_64-linux-gnu`),
   *   then `/lib64`, `/usr/lib64` (or `/lib32`, `/usr/lib32`), then `/lib`, `/usr/lib`
   */
  defaultDirs?: string[];
}

/** The GNU multiarch triplet for an ABI, used for Debian's library directories and `$LIB`. */
export function multiarchTriplet(bits: 32 | 64, machine: number): string | null {
  const triplets: Record<string, string> = {
    '64:62': 'x86_64-linux-gnu',
    '32:62': 'x86_64-linux-gnux32',
    '32:3': 'i386-linux-gnu',
    '64:183': 'aarch64-linux-gnu',
    '32:40': 'arm-linux-gnueabihf',
    '64:243': 'riscv64-linux-gnu',
    '64:21': 'powerpc64le-linux-gnu',
    '64:22': 's390x-linux-gnu',
  };
  return triplets[`${bits}:${machine}`] ?? null;
}

/** AT_PLATFORM as the kernel reports it for an ABI, for `$PLATFORM` (getauxval(3)). */
function platformFor(bits: 32 | 64, machine: number): string {
  const platforms: Record<string, string> = { '64:62': 'x86_64', '32:3': 'i686', '64:183': 'aarch64' };
  return platforms[`${bits}:${machine}`] ?? 'unknown';
}

/** The glibc program interpreter of an ABI, as linkers write it into PT_INTERP. */
export function standardInterpreter(bits: 32 | 64, machine: number): string | null {
  const loaders: Record<string, string> = {
    '64:62': '/lib64/ld-linux-x86-64.so.2',
    '32:62': '/libx32/ld-linux-x32.so.2',
    '32:3': '/lib/ld-linux.so.2',
    '64:183': '/lib/ld-linux-aarch64.so.1',
    '32:40': '/lib/ld-linux-armhf.so.3',
    '64:243': '/lib/ld-linux-riscv64-lp64d.so.1',
    '64:21': '/lib64/ld64.so.2',
    '64:22': '/lib/ld64.so.1',
  };
  return loaders[`${bits}:${machine}`] ?? null;
}

interface Node {
  obj: ResolvedObject;
  parent: Node | null;
}

export class Resolver {
  readonly root: string;
  private readonly ldLibraryPath: string[];
  private readonly ldCachePath: string | null;
  private readonly defaultDirsOverride: string[] | undefined;
  private cache: Promise<LdCacheEntry[]> | undefined;
  private readonly elfCache = new Map<string, Promise<ElfInfo>>();

  constructor(options: ResolverOptions = {}) {
    this.root = options.root ?? '/';
    this.ldLibraryPath = (options.ldLibraryPath ?? '').split(/[:;]/).filter((d) => d !== '');
    this.ldCachePath =
      options.ldCachePath === undefined ? hostPath(this.root, '/etc/ld.so.cache') : options.ldCachePath;
    this.defaultDirsOverride = options.defaultDirs;
  }

  /** Reads an ELF file under the root once, however many programs need it. */
  readElfAt(realPath: string): Promise<ElfInfo> {
    let info = this.elfCache.get(realPath);
    if (!info) {
      info = readElf(hostPath(this.root, realPath));
      this.elfCache.set(realPath, info);
    }
    return info;
  }

  ldCache(): Promise<LdCacheEntry[]> {
    this.cache ??= this.ldCachePath === null ? Promise.resolve([]) : readLdCache(this.ldCachePath);
    return this.cache;
  }

  /** The default directories for an ABI (see {@link ResolverOptions.defaultDirs}). */
  defaultDirs(bits: 32 | 64, machine: number): string[] {
    if (this.defaultDirsOverride) return this.defaultDirsOverride;
    const triplet = multiarchTriplet(bits, machine);
    const multiarch = triplet ? [`/lib/${triplet}`, `/usr/lib/${triplet}`] : [];
    const suffixed = bits === 64 ? ['/lib64', '/usr/lib64'] : ['/lib32', '/usr/lib32'];
    return [...multiarch, ...suffixed, '/lib', '/usr/lib'];
  }

  /** Expands `$ORIGIN`, `$LIB` and `$PLATFORM` (also `${ORIGIN}` ...) in one search directory. */
  expand(dir: string, origin: string, elf: ElfInfo): string {
    const triplet = multiarchTriplet(elf.bits, elf.machine);
    const lib = triplet ? `lib/${triplet}` : elf.bits === 64 ? 'lib64' : 'lib';
    return dir.replace(/\$(\{)?(ORIGIN|LIB|PLATFORM)(?:\})?/g, (_m, _brace, token: string) =>
      token === 'ORIGIN' ? origin : token === 'LIB' ? lib : platformFor(elf.bits, elf.machine),
    );
  }

  /** The directory `$ORIGIN` stands for: the executable's real directory, or a library's as found. */
  private origin(node: Node): string {
    const p = node.obj.via === 'program' ? node.obj.realPath : node.obj.path;
    return posix.dirname(p);
  }

  /** The ordered search list for one DT_NEEDED of `requester` (steps 2 to 6 above). */
  private async searchDirs(requester: Node): Promise<Array<{ dir: string; via: FoundVia }>> {
    const dirs: Array<{ dir: string; via: FoundVia }> = [];
    const elf = requester.obj.elf;
    if (elf.runpath === null) {
      for (let n: Node | null = requester; n; n = n.parent) {
        if (n.obj.elf.runpath !== null) continue;
        for (const d of n.obj.elf.rpath)
          dirs.push({ dir: this.expand(d, this.origin(n), n.obj.elf), via: 'rpath' });
      }
    }
    for (const d of this.ldLibraryPath) dirs.push({ dir: this.expand(d, '', elf), via: 'ld_library_path' });
    for (const d of elf.runpath ?? []) {
      dirs.push({ dir: this.expand(d, this.origin(requester), elf), via: 'runpath' });
    }
    return dirs;
  }

  /** Tries one candidate file: it must exist and be an ELF object of the requester's class and machine. */
  private async tryCandidate(
    path: string,
    want: ElfInfo,
  ): Promise<{ realPath: string; links: LinkStep[]; elf: ElfInfo } | null> {
    const found = await walk(this.root, path);
    if (!found || !found.stats.isFile()) return null;
    let elf: ElfInfo;
    try {
      elf = await this.readElfAt(found.realPath);
    } catch (error) {
      if (RootfsError.is(error) && error.code === 'NOT_ELF') return null;
      throw error;
    }
    if (elf.bits !== want.bits || elf.machine !== want.machine) return null;
    return { realPath: found.realPath, links: found.links, elf };
  }

  /** Finds one DT_NEEDED name for `requester`; returns the object or the list of paths tried. */
  private async findLibrary(name: string, requester: Node): Promise<ResolvedObject | string[]> {
    const want = requester.obj.elf;
    const tried: string[] = [];
    const attempt = async (path: string, via: FoundVia): Promise<ResolvedObject | null> => {
      tried.push(path);
      const hit = await this.tryCandidate(path, want);
      return hit ? { path, ...hit, name, neededBy: requester.obj.path, via } : null;
    };
    if (name.includes('/')) {
      return (await attempt(posix.resolve('/', name), 'path')) ?? tried;
    }
    for (const { dir, via } of await this.searchDirs(requester)) {
      if (dir === '') continue;
      // The loader concatenates without normalizing (ldd prints `$ORIGIN/../lib/x` as `/bin/../lib/x`);
      // a relative directory is relative to the working directory, `/` in a sandbox.
      const base = dir.startsWith('/') ? dir.replace(/\/+$/, '') : posix.resolve('/', dir);
      const hit = await attempt(`${base === '/' ? '' : base}/${name}`, via);
      if (hit) return hit;
    }
    if (want.noDefaultLib) return tried;
    const cached = lookupLdCache(await this.ldCache(), name, cacheFlagsFor(want.bits, want.machine));
    if (cached) {
      const hit = await attempt(cached, 'cache');
      if (hit) return hit;
    }
    for (const dir of this.defaultDirs(want.bits, want.machine)) {
      const hit = await attempt(posix.join(dir, name), 'default');
      if (hit) return hit;
    }
    return tried;
  }

  /**
   * The closure of one ELF program (a path in root coordinates): the program, its PT_INTERP and every
   * library it loads, breadth-first. Throws when the program is missing or not ELF.
   */
  async closure(program: string): Promise<Closure> {
    const found = await walk(this.root, program);
    if (!found || !found.stats.isFile()) {
      throw new RootfsError(
        'ENOENT',
        `${program} does not exist${this.root === '/' ? '' : ` in ${this.root}`}`,
        {
          path: program,
        },
      );
    }
    const elf = await this.readElfAt(found.realPath);
    const self: ResolvedObject = {
      path: program,
      realPath: found.realPath,
      links: found.links,
      name: program,
      neededBy: null,
      via: 'program',
      elf,
    };
    const result: Closure = {
      program,
      objects: [self],
      missing: [],
      isStatic: !elf.dynamic && !elf.interpreter,
    };
    if (result.isStatic) return result;

    const loaded = new Map<string, ResolvedObject>(); // by requested name, soname and real path
    const remember = (o: ResolvedObject): void => {
      loaded.set(o.name, o);
      loaded.set(o.realPath, o);
      if (o.elf.soname) loaded.set(o.elf.soname, o);
    };
    remember(self);
    // A shared library has no PT_INTERP of its own: it runs under the loader of the program that
    // loads it, already in memory, which also answers DT_NEEDED for its soname (libc.so.6 needs
    // ld-linux-x86-64.so.2). `ldd` on a library assumes the ABI's standard loader; so do we.
    // A library with no DT_NEEDED at all needs nothing (ldd calls it "statically linked").
    const interpreter =
      elf.interpreter ?? (elf.needed.length > 0 ? standardInterpreter(elf.bits, elf.machine) : null);
    if (interpreter) {
      const interp = await this.tryCandidate(interpreter, elf);
      if (interp) {
        const o: ResolvedObject = {
          path: interpreter,
          ...interp,
          name: interpreter,
          neededBy: program,
          via: 'interpreter',
        };
        result.objects.push(o);
        remember(o);
      } else if (elf.interpreter) {
        result.missing.push({
          name: interpreter,
          kind: 'interpreter',
          neededBy: program,
          tried: [interpreter],
        });
      }
    }
    const queue: Node[] = [{ obj: self, parent: null }];
    for (let node = queue.shift(); node; node = queue.shift()) {
      for (const name of node.obj.elf.needed) {
        if (loaded.has(name)) continue;
        const hit = await this.findLibrary(name, node);
        if (Array.isArray(hit)) {
          if (!result.missing.some((m) => m.name === name)) {
            result.missing.push({ name, kind: 'library', neededBy: node.obj.path, tried: hit });
          }
          continue;
        }
        const same = loaded.get(hit.realPath); // the same file under another name: loaded once
        if (same) {
          loaded.set(name, same);
          continue;
        }
        result.objects.push(hit);
        remember(hit);
        queue.push({ obj: hit, parent: node });
      }
    }
    return result;
  }
}
