/**
 * The ld.so cache, /etc/ld.so.cache: ldconfig(8)'s index from library name to path.
 *
 * The dynamic loader consults it after DT_RPATH, LD_LIBRARY_PATH and DT_RUNPATH and before the
 * default directories (ld.so(8), "Finding shared libraries"); it is how libraries in directories
 * listed by /etc/ld.so.conf.d (CUDA, NVIDIA's driver, /usr/local/lib) are found at all.
 *
 * Format "glibc-ld.so.cache1.1" (glibc elf/dl-cache.h, `struct cache_file_new`), little or big
 * endian as the header's flags say:
 *
 *   offset  size  field
 *   0       17    magic "glibc-ld.so.cache"
 *   17      3     version "1.1"
 *   20      4     nlibs
 *   24      4     len_strings
 *   28      1     flags (2 = little endian, 3 = big endian)
 *   32      4     extension_offset (glibc-hwcaps names; 0 when none)
 *   48      24*n  entries: int32 flags, uint32 key, uint32 value, uint32 osversion, uint64 hwcap
 *   ...           strings; key (the soname) and value (the path) are offsets from the start of the file
 *
 * Entries are sorted in *descending* `_dl_cache_libcmp` order (digits compare as numbers), because
 * the loader's binary search moves right when the name it looks for is smaller than the middle key.
 * The old "ld.so-1.7.0" format, which may precede the new one, is skipped.
 */
import { readFile } from 'node:fs/promises';
import { RootfsError, errnoCode } from './errors.js';

const MAGIC_NEW = 'glibc-ld.so.cache1.1';
const MAGIC_OLD = 'ld.so-1.7.0';
const HEADER_SIZE = 48;
const ENTRY_SIZE = 24;

/** One cache entry. */
export interface LdCacheEntry {
  /** The name DT_NEEDED asks for (usually the library's DT_SONAME), e.g. `libc.so.6`. */
  name: string;
  /** Where the library is, e.g. `/lib/x86_64-linux-gnu/libc.so.6`. */
  path: string;
  /** FLAG_ELF_LIBC6 (3) plus the ABI bits in 0xff00 (0x0300 = x86-64, 0x0a00 = AArch64, none = i386). */
  flags: number;
  /** 0 for ordinary entries; non-zero for glibc-hwcaps or legacy hwcap variants. */
  hwcap: bigint;
}

/** FLAG_ELF_LIBC6: every glibc library entry has it in the low byte. */
export const FLAG_ELF_LIBC6 = 0x0003;

/**
 * The cache flags the loader of a given ABI accepts (glibc sysdeps/.../dl-cache.h,
 * `_dl_cache_check_flags`), or null for an ABI not listed here (then any flags are accepted and the
 * candidate's ELF header decides).
 */
export function cacheFlagsFor(bits: 32 | 64, machine: number): number | null {
  const abi: Record<string, number> = {
    '64:62': 0x0300, // x86-64
    '32:62': 0x0800, // x32
    '32:3': 0x0000, // i386
    '64:183': 0x0a00, // AArch64
    '64:22': 0x0400, // s390x
    '64:21': 0x0500, // ppc64
    '64:2': 0x0100, // sparc64
    '64:43': 0x0100, // sparcv9
  };
  const bitsForAbi = abi[`${bits}:${machine}`];
  return bitsForAbi === undefined ? null : bitsForAbi | FLAG_ELF_LIBC6;
}

/**
 * `_dl_cache_libcmp` from glibc elf/dl-cache.c: compares names character by character, except that
 * runs of digits compare as numbers (so `libfoo.so.10` sorts after `libfoo.so.9`).
 */
export function libcmp(a: string, b: string): number {
  let i = 0;
  let j = 0;
  const isDigit = (s: string, k: number): boolean =>
    k < s.length && s.charCodeAt(k) >= 48 && s.charCodeAt(k) <= 57;
  while (i < a.length) {
    if (isDigit(a, i)) {
      if (!isDigit(b, j)) return 1;
      let va = 0;
      let vb = 0;
      while (isDigit(a, i)) va = va * 10 + a.charCodeAt(i++) - 48;
      while (isDigit(b, j)) vb = vb * 10 + b.charCodeAt(j++) - 48;
      if (va !== vb) return va - vb;
    } else if (isDigit(b, j)) {
      return -1;
    } else if (j >= b.length || a.charCodeAt(i) !== b.charCodeAt(j)) {
      return a.charCodeAt(i) - (j < b.length ? b.charCodeAt(j) : 0);
    } else {
      i++;
      j++;
    }
  }
  return j < b.length ? -b.charCodeAt(j) : 0;
}

function cString(buf: Buffer, off: number, file: string): string {
  if (off >= buf.length) {
    throw new RootfsError('INVALID', `corrupt ld.so cache ${file}: string offset ${off} past the end`, {
      path: file,
    });
  }
  const end = buf.indexOf(0, off);
  return buf.toString('utf8', off, end === -1 ? buf.length : end);
}

/** Parses the bytes of an ld.so cache. `file` is only used in error messages. */
export function parseLdCache(buf: Buffer, file = 'ld.so.cache'): LdCacheEntry[] {
  let base = 0;
  if (buf.toString('latin1', 0, MAGIC_OLD.length) === MAGIC_OLD) {
    // Old format first: 12-byte header (magic + nlibs), 12-byte entries, then the new format, 8-aligned.
    const nOld = buf.readUInt32LE(12);
    base = (16 + nOld * 12 + 7) & ~7;
  }
  if (buf.toString('latin1', base, base + MAGIC_NEW.length) !== MAGIC_NEW) {
    throw new RootfsError(
      'INVALID',
      `${file} is not an ld.so cache in the "${MAGIC_NEW}" format; rebuild it with ldconfig or pass another cache`,
      { path: file },
    );
  }
  const le = buf[base + 28] !== 3;
  const r32 = (off: number): number => (le ? buf.readUInt32LE(off) : buf.readUInt32BE(off));
  const nlibs = r32(base + 20);
  if (base + HEADER_SIZE + nlibs * ENTRY_SIZE > buf.length) {
    throw new RootfsError('INVALID', `corrupt ld.so cache ${file}: ${nlibs} entries do not fit in the file`, {
      path: file,
    });
  }
  const entries: LdCacheEntry[] = [];
  for (let i = 0; i < nlibs; i++) {
    const off = base + HEADER_SIZE + i * ENTRY_SIZE;
    entries.push({
      flags: le ? buf.readInt32LE(off) : buf.readInt32BE(off),
      // String offsets are relative to the new-format header when an old-format part precedes it.
      name: cString(buf, base + r32(off + 4), file),
      path: cString(buf, base + r32(off + 8), file),
      hwcap: le ? buf.readBigUInt64LE(off + 16) : buf.readBigUInt64BE(off + 16),
    });
  }
  return entries;
}

/** Reads and parses an ld.so cache; a missing file is an empty cache (a rootfs usually has none). */
export async function readLdCache(path: string): Promise<LdCacheEntry[]> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw new RootfsError('INVALID', `cannot read the ld.so cache ${path}: ${code ?? String(error)}`, {
      path,
      cause: error,
    });
  }
  return parseLdCache(buf, path);
}

/** Builds a little-endian "glibc-ld.so.cache1.1" file from entries (sorted here as the loader needs). */
export function encodeLdCache(entries: Array<Pick<LdCacheEntry, 'name' | 'path' | 'flags'>>): Buffer {
  const sorted = [...entries].sort((a, b) => libcmp(b.name, a.name) || b.flags - a.flags);
  const stringsStart = HEADER_SIZE + sorted.length * ENTRY_SIZE;
  const offsets = new Map<string, number>();
  const chunks: Buffer[] = [];
  let size = 0;
  const intern = (s: string): number => {
    let off = offsets.get(s);
    if (off === undefined) {
      off = stringsStart + size;
      offsets.set(s, off);
      const bytes = Buffer.from(`${s}\0`, 'utf8');
      chunks.push(bytes);
      size += bytes.length;
    }
    return off;
  };
  const table = Buffer.alloc(sorted.length * ENTRY_SIZE);
  sorted.forEach((e, i) => {
    table.writeInt32LE(e.flags, i * ENTRY_SIZE);
    table.writeUInt32LE(intern(e.name), i * ENTRY_SIZE + 4);
    table.writeUInt32LE(intern(e.path), i * ENTRY_SIZE + 8);
  });
  const header = Buffer.alloc(HEADER_SIZE);
  header.write(MAGIC_NEW, 0, 'latin1');
  header.writeUInt32LE(sorted.length, 20);
  header.writeUInt32LE(size, 24);
  header[28] = 2; // little endian
  return Buffer.concat([header, table, ...chunks]);
}

/**
 * Looks a name up the way the loader does: the first ordinary (non-hwcap) entry with that name whose
 * flags the requesting ABI accepts. `flags` null accepts any. Returns the path or null.
 */
export function lookupLdCache(entries: LdCacheEntry[], name: string, flags: number | null): string | null {
  for (const e of entries) {
    // hwcap entries (bit 62: a glibc-hwcaps subdirectory such as x86-64-v3) are CPU-specific
    // variants; a rootfs may run on another CPU, so only the baseline entry is used.
    if (e.name !== name || e.hwcap !== 0n) continue;
    if (flags !== null && e.flags !== flags) continue;
    return e.path;
  }
  return null;
}
