/**
 * buildRootfs: plan everything first (so bad input never touches the rootfs), then lay the files
 * out at their host paths.
 *
 * - A new rootfs (or `clean`) is built in a sibling staging directory and renamed into place, so
 *   a failed build leaves nothing half-made, and a clean rebuild swaps atomically.
 * - An existing rootfs is updated in place, incrementally: a manifest (/.capsule-rootfs.json)
 *   remembers the host file each entry came from (size, mtime, mode); unchanged entries are skipped.
 *   Each replaced entry is renamed aside first, and everything is put back if a write fails.
 * - Files are hard-linked when the caller allows it and the rootfs is on the host file's file
 *   system, copied otherwise. Permissions are kept, except setuid/setgid, which are stripped (and a
 *   setuid file is always copied, never linked, since a link shares the host file's mode).
 */
import {
  chmod,
  chown,
  copyFile,
  link,
  lstat,
  mkdir,
  readFile,
  readlink,
  rename,
  rm,
  rmdir,
  stat,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { posix, resolve as resolvePath } from 'node:path';
import { RootfsError, errnoCode } from './errors.js';
import { findGpuLibraries } from './gpu.js';
import { encodeLdCache, readLdCache } from './ldcache.js';
import { packageClosure, packageFiles, readDpkgStatus } from './dpkg.js';
import { readElf } from './elf.js';
import { Planner, type IncludeReport, type PlanEntry, type PlanOptions, type ProgramReport } from './plan.js';
import { resolveProfiles } from './profile.js';
import { addSkeleton, addUsrMergeLinks } from './skeleton.js';

/** Where the manifest lives, in the rootfs. */
export const MANIFEST_PATH = '/.capsule-rootfs.json';
const SETID_BITS = 0o6000;
/** Files checked or written at once; the libuv pool has 4 threads by default, copies wait on I/O. */
const CONCURRENCY = 16;

/** Maps `items` through `fn` with at most `limit` calls in flight; results in input order. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (next < items.length && !failed) {
      const i = next++;
      try {
        results[i] = await fn(items[i] as T);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  // Wait for every worker to stop before failing, so that nothing is still writing during a rollback.
  const settled = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, worker));
  const rejected = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (rejected) throw rejected.reason;
  return results;
}

/** Progress of the write phase, reported after each file. */
export interface BuildProgress {
  filesDone: number;
  filesTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

/** Options for {@link buildRootfs}. */
export interface BuildOptions extends PlanOptions {
  /** The rootfs directory; created when missing. Must not be `/`. */
  dir: string;
  /** Programs to add with everything they need: absolute paths, or names looked up in `searchPath`. @default [] */
  programs?: string[];
  /** Files or trees copied as they are (ELF files inside get their libraries). @default [] */
  include?: string[];
  /**
   * Installed Debian packages to add: every file dpkg lists for each (less documentation, see
   * PACKAGE_EXCLUDES), and for every package it depends on, with their ELF closures. Read from
   * /var/lib/dpkg; nothing is downloaded. @default []
   */
  packages?: string[];
  /** Built-in profiles to add (`sh`, `c`, `cpp`, `python3`, `java`, `go`, `node`, `rust`). @default [] */
  profile?: string | string[];
  /** Start over: build a new rootfs and swap it in place of the old one. @default false */
  clean?: boolean;
  /** Hard-link host files instead of copying them when on the same file system. @default false */
  hardlink?: boolean;
  /** Add the NVIDIA driver's user-space libraries and nvidia-smi. @default false */
  gpu?: boolean;
  /** With `gpu`: directories to find the driver libraries in, instead of the ld.so cache. @default undefined */
  gpuRoots?: string[];
  /** Called during the write phase, at most once per file. @default undefined */
  onProgress?: (progress: BuildProgress) => void;
}

/** What a build did. */
export interface BuildResult {
  /** Absolute path of the rootfs. */
  dir: string;
  /** Entries written by this build (unchanged entries are not counted). */
  added: {
    files: number;
    /** Size of the files written, in bytes (hard links included). */
    bytes: number;
    /** How many of `files` were hard links rather than copies. */
    hardlinks: number;
    symlinks: number;
    dirs: number;
  };
  /** Entries already up to date. */
  unchanged: number;
  /** The whole rootfs as planned: regular files and their total size in bytes. */
  total: { files: number; bytes: number };
  /** Every library the programs and includes load, as the loader opens them. */
  libraries: string[];
  /** Per program: its interpreter and the libraries it loads. */
  programs: ProgramReport[];
  includes: IncludeReport[];
  /** The Debian packages added (asked for, by a profile, or as a dependency), with how many files each. */
  packages: Array<{ name: string; files: number }>;
  /** GPU files added, when `gpu` was set. */
  gpu: { libraries: string[]; binaries: string[] } | null;
  /** setuid/setgid files whose bits were stripped. */
  strippedSetid: string[];
  durationMs: number;
}

interface ManifestEntry {
  source: string;
  size: number;
  mtimeMs: number;
  mode: number;
}
interface Manifest {
  version: 1;
  files: Record<string, ManifestEntry>;
}

async function readManifest(root: string): Promise<Manifest> {
  try {
    const parsed = JSON.parse(await readFile(posix.join(root, MANIFEST_PATH), 'utf8')) as Manifest;
    if (parsed.version === 1 && typeof parsed.files === 'object') return parsed;
  } catch {
    // A missing or unreadable manifest only costs a full rewrite of the entries.
  }
  return { version: 1, files: {} };
}

async function exists(path: string): Promise<boolean> {
  return (await lstat(path).catch(() => null)) !== null;
}

/** Plans the rootfs: programs, profiles, includes, GPU libraries, skeleton, its ld.so cache. */
async function plan(
  options: BuildOptions,
): Promise<{ planner: Planner; gpu: BuildResult['gpu']; packages: BuildResult['packages'] }> {
  const planner = new Planner(options);
  const profiles = await resolveProfiles(
    typeof options.profile === 'string' ? [options.profile] : (options.profile ?? []),
  );
  const packages: BuildResult['packages'] = [];
  const wanted = [...profiles.packages, ...(options.packages ?? [])];
  if (wanted.length > 0) {
    for (const pkg of packageClosure(wanted, await readDpkgStatus())) {
      const report = { path: `package ${pkg.name}`, files: 0, elfFiles: 0, danglingLinks: [] };
      let files = 0;
      for (const path of await packageFiles(pkg)) if (await planner.addListedPath(path, report)) files++;
      packages.push({ name: pkg.name, files });
    }
    planner.forgiveLoadedByName();
  }
  for (const p of profiles.programs) await planner.addProgram(p.path, 0);
  for (const inc of profiles.include) await planner.addInclude(inc.path, inc.exclude);
  for (const p of options.programs ?? []) await planner.addProgram(p);
  for (const inc of options.include ?? []) await planner.addInclude(inc);
  let gpu: BuildResult['gpu'] = null;
  if (options.gpu) {
    const found = await findGpuLibraries({
      roots: options.gpuRoots,
      ldCachePath: options.ldCachePath ?? undefined,
    });
    for (const lib of found.libraries) {
      const chain = await planner.addChain(lib.path);
      if (!chain?.stats.isFile()) continue; // a dangling link in the driver's directory
      const soname = (await readElf(chain.realPath)).soname;
      // The cache maps the name the loader asks for (the soname) to its path, as ldconfig does.
      await planner.addLibrary(
        lib.path,
        options.gpuRoots?.length ? (soname === lib.name ? lib.name : null) : lib.name,
      );
    }
    for (const bin of found.binaries) await planner.addProgram(bin);
    gpu = { libraries: found.libraries.map((l) => l.path), binaries: found.binaries };
  }
  planner.assertComplete();
  addSkeleton(planner);
  await addUsrMergeLinks(planner);
  return { planner, gpu, packages };
}

interface Journal {
  /** Paths created, with the renamed-aside previous entry when one was replaced. */
  undo: Array<{ path: string; backup: string | null; dir: boolean }>;
}

/** Writes one entry at `dst` via a temporary name and rename(2), so readers never see half a file. */
class Writer {
  readonly result: BuildResult['added'] = { files: 0, bytes: 0, hardlinks: 0, symlinks: 0, dirs: 0 };
  readonly strippedSetid: string[] = [];
  private readonly isRoot = process.getuid?.() === 0;
  private readonly uid = process.getuid?.() ?? -1;
  private readonly gid = process.getgid?.() ?? -1;
  private readonly tag = `${process.pid}-${Date.now().toString(36)}`;

  constructor(
    private readonly root: string,
    private readonly rootDev: number,
    private readonly hardlink: boolean,
    private readonly journal: Journal | null,
  ) {}

  private async place(tmp: string, dst: string): Promise<void> {
    if (tmp === dst) return;
    let backup: string | null = null;
    const old = await lstat(dst).catch(() => null);
    if (old?.isDirectory()) {
      await rm(tmp, { force: true });
      throw new RootfsError(
        'WRITE',
        `cannot replace directory ${dst} with a file; remove it or build with --clean`,
        {
          path: dst,
        },
      );
    }
    if (old && this.journal) {
      backup = `${dst}.capsule-old-${this.tag}`;
      await rename(dst, backup);
    }
    await rename(tmp, dst);
    this.journal?.undo.push({ path: dst, backup, dir: false });
  }

  async write(entry: PlanEntry): Promise<void> {
    const dst = posix.join(this.root, entry.path);
    // In a private staging directory nothing can be half-seen or need undoing: write in place.
    const tmp = this.journal ? `${dst}.capsule-new-${this.tag}` : dst;
    switch (entry.kind) {
      case 'dir': {
        await mkdir(dst);
        this.journal?.undo.push({ path: dst, backup: null, dir: true });
        await chmod(dst, entry.mode);
        if (this.isRoot) await chown(dst, entry.uid, entry.gid);
        this.result.dirs++;
        return;
      }
      case 'symlink':
        await symlink(entry.target, tmp);
        await this.place(tmp, dst);
        this.result.symlinks++;
        return;
      case 'data':
        await writeFile(tmp, entry.content);
        await chmod(tmp, entry.mode);
        await this.place(tmp, dst);
        return;
      case 'file': {
        const setid = (entry.mode & SETID_BITS) !== 0;
        if (setid) this.strippedSetid.push(entry.path);
        let linked = false;
        if (this.hardlink && !setid && entry.dev === this.rootDev) {
          linked = await link(entry.source, tmp).then(
            () => true,
            () => false, // EXDEV across bind mounts, EPERM under protected_hardlinks: copy instead
          );
        }
        if (!linked) {
          // uv_fs_copyfile gives the copy the source's mode; only owner and setid bits need work.
          await copyFile(entry.source, tmp, fsConstants.COPYFILE_FICLONE);
          if (this.isRoot && (entry.uid !== this.uid || entry.gid !== this.gid)) {
            await chown(tmp, entry.uid, entry.gid);
          }
          if (setid) await chmod(tmp, entry.mode & ~SETID_BITS);
          // Keep mtimes: Python checks a .pyc against its source's mtime, make against targets'.
          const when = new Date(entry.mtimeMs);
          await utimes(tmp, when, when);
        }
        await this.place(tmp, dst);
        this.result.files++;
        this.result.bytes += entry.size;
        if (linked) this.result.hardlinks++;
        return;
      }
    }
  }

  /** Puts back everything this build changed, newest first. */
  async rollback(): Promise<void> {
    for (const u of (this.journal?.undo ?? []).reverse()) {
      if (u.dir) await rmdir(u.path).catch(() => undefined);
      else await rm(u.path, { force: true });
      if (u.backup) await rename(u.backup, u.path).catch(() => undefined);
    }
  }

  async commit(): Promise<void> {
    for (const u of this.journal?.undo ?? []) if (u.backup) await rm(u.backup, { force: true });
  }
}

/** True when the entry at `dst` is already what the plan wants. */
async function upToDate(root: string, entry: PlanEntry, manifest: Manifest): Promise<boolean> {
  const dst = posix.join(root, entry.path);
  const st = await lstat(dst).catch(() => null);
  if (!st) return false;
  switch (entry.kind) {
    case 'dir':
      return st.isDirectory();
    case 'symlink':
      return st.isSymbolicLink() && (await readlink(dst)) === entry.target;
    case 'data':
      // Skeleton files are the user's once written; the ld.so cache is compared byte for byte.
      return (
        entry.path !== '/etc/ld.so.cache' ||
        (st.isFile() && (await readFile(dst)).equals(Buffer.from(entry.content)))
      );
    case 'file': {
      const m = manifest.files[entry.path];
      return (
        st.isFile() &&
        st.size === entry.size &&
        m !== undefined &&
        m.source === entry.source &&
        m.size === entry.size &&
        m.mtimeMs === entry.mtimeMs &&
        m.mode === entry.mode
      );
    }
  }
}

/** Directories first, parents before children; then everything else in path order. */
function writeOrder(a: PlanEntry, b: PlanEntry): number {
  const ad = a.kind === 'dir' ? 0 : 1;
  const bd = b.kind === 'dir' ? 0 : 1;
  if (ad !== bd) return ad - bd;
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

/**
 * Builds (or updates) a rootfs holding the given programs, includes and profiles with everything
 * they need, at the same paths as on the host. Throws a RootfsError, leaving the rootfs as it was,
 * when a program or library is missing or a write fails.
 */
export async function buildRootfs(options: BuildOptions): Promise<BuildResult> {
  const started = performance.now();
  const dir = resolvePath(options.dir);
  if (dir === '/')
    throw new RootfsError('INVALID', 'refusing to build a rootfs at /; pick an empty directory');
  await mkdir(posix.dirname(dir), { recursive: true }); // where the lock and the staging dir go
  const release = await lockRootfs(dir);
  try {
    return await buildLocked(dir, options, started);
  } finally {
    await release();
  }
}

/**
 * Takes `<dir>.capsule-lock` (created with O_EXCL, holding our pid), so that two builds never
 * update one rootfs at once. A lock whose process is gone is taken over. Returns the release.
 */
export async function lockRootfs(dir: string): Promise<() => Promise<void>> {
  const lock = `${dir}.capsule-lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(lock, `${process.pid}\n`, { flag: 'wx' });
      return () => rm(lock, { force: true });
    } catch (error) {
      if (errnoCode(error) !== 'EEXIST') {
        throw new RootfsError(
          'WRITE',
          `cannot create the lock ${lock}: ${errnoCode(error) ?? String(error)}`,
          {
            path: lock,
            cause: error,
          },
        );
      }
    }
    const pid = Number.parseInt(await readFile(lock, 'utf8').catch(() => ''), 10);
    if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) {
      throw new RootfsError(
        'INVALID',
        `another capsule rootfs build (pid ${pid}) is writing ${dir}; wait for it, or remove ${lock} if it is gone`,
        { path: lock },
      );
    }
    await rm(lock, { force: true }); // stale: its builder died without releasing it
  }
  throw new RootfsError('WRITE', `cannot take the lock ${lock}; remove it and try again`, { path: lock });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0); // signal 0: existence check only (kill(2))
    return true;
  } catch (error) {
    return errnoCode(error) === 'EPERM';
  }
}

async function buildLocked(dir: string, options: BuildOptions, started: number): Promise<BuildResult> {
  const existing = await lstat(dir).catch(() => null);
  if (existing && !existing.isDirectory()) {
    throw new RootfsError('INVALID', `${dir} exists and is not a directory; pick another path`, {
      path: dir,
    });
  }

  const { planner, gpu, packages } = await plan(options);

  // Staging for a new or clean rootfs; in place (journaled) for an incremental update.
  const staged = options.clean === true || existing === null;
  const root = staged ? `${dir}.capsule-staging-${process.pid}-${Date.now().toString(36)}` : dir;
  const manifest = staged ? { version: 1 as const, files: {} } : await readManifest(dir);

  // The rootfs's own ld.so cache: the previous one (entries still present) plus what this build found.
  const cacheEntries = new Map(planner.cacheEntries);
  if (!staged) {
    for (const e of await readLdCache(posix.join(dir, '/etc/ld.so.cache')).catch(() => [])) {
      const key = `${e.name}\0${e.flags}`;
      if (!cacheEntries.has(key) && (await exists(posix.join(dir, e.path)))) cacheEntries.set(key, e);
    }
  }
  if (cacheEntries.size > 0) {
    planner.entries.set('/etc/ld.so.cache', {
      kind: 'data',
      path: '/etc/ld.so.cache',
      content: encodeLdCache([...cacheEntries.values()]),
      mode: 0o644,
    });
  }

  const entries = [...planner.entries.values()].sort(writeOrder);
  try {
    await mkdir(staged ? root : dir, { recursive: true });
  } catch (error) {
    throw new RootfsError('WRITE', `cannot create ${root}: ${errnoCode(error) ?? String(error)}`, {
      path: root,
    });
  }
  const rootDev = (await stat(root)).dev;
  const writer = new Writer(root, rootDev, options.hardlink === true, staged ? null : { undo: [] });
  const fresh = await mapLimit(
    entries,
    CONCURRENCY,
    async (e) => staged || !(await upToDate(root, e, manifest)),
  );
  const todo = entries.filter((_e, i) => fresh[i]);
  const unchanged = entries.length - todo.length;
  const progress: BuildProgress = {
    filesDone: 0,
    filesTotal: todo.filter((e) => e.kind === 'file').length,
    bytesDone: 0,
    bytesTotal: todo.reduce((n, e) => n + (e.kind === 'file' ? e.size : 0), 0),
  };

  let current: PlanEntry | undefined; // the entry whose write failed, for the message
  const writeOne = async (entry: PlanEntry): Promise<void> => {
    try {
      await writer.write(entry);
    } catch (error) {
      current ??= entry;
      throw error;
    }
    if (entry.kind !== 'file') return;
    manifest.files[entry.path] = {
      source: entry.source,
      size: entry.size,
      mtimeMs: entry.mtimeMs,
      mode: entry.mode,
    };
    progress.filesDone++;
    progress.bytesDone += entry.size;
    options.onProgress?.(progress);
  };
  try {
    // Directories in order, parents first; then files and links, several at a time (copies are
    // I/O, and the libuv pool overlaps them).
    for (const e of todo) if (e.kind === 'dir') await writeOne(e);
    await mapLimit(
      todo.filter((e) => e.kind !== 'dir'),
      CONCURRENCY,
      writeOne,
    );
    const manifestTmp = posix.join(root, `${MANIFEST_PATH}.tmp`);
    await writeFile(manifestTmp, `${JSON.stringify(manifest)}\n`);
    await rename(manifestTmp, posix.join(root, MANIFEST_PATH));
    if (staged) {
      if (existing) {
        const old = `${dir}.capsule-old-${process.pid}-${Date.now().toString(36)}`;
        await rename(dir, old);
        await rename(root, dir);
        await rm(old, { recursive: true, force: true });
      } else {
        await rename(root, dir);
      }
    } else {
      await writer.commit();
    }
  } catch (error) {
    if (staged) await rm(root, { recursive: true, force: true });
    else await writer.rollback();
    if (RootfsError.is(error)) throw error;
    const what = current
      ? `${current.path}${current.kind === 'file' ? ` (from ${current.source})` : ''}`
      : root;
    throw new RootfsError(
      'WRITE',
      `cannot write ${what} into ${dir}: ${errnoCode(error) ?? String(error)}; the rootfs was left as it was`,
      { path: current?.path, cause: error },
    );
  }

  const files = entries.filter((e): e is Extract<PlanEntry, { kind: 'file' }> => e.kind === 'file');
  return {
    dir,
    added: writer.result,
    unchanged,
    total: { files: files.length, bytes: files.reduce((n, f) => n + f.size, 0) },
    libraries: [...planner.libraries].sort(),
    programs: planner.programs,
    includes: planner.includes,
    packages,
    gpu,
    strippedSetid: writer.strippedSetid,
    durationMs: Math.round(performance.now() - started),
  };
}
