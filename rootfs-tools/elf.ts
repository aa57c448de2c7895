/**
 * A small ELF reader: just enough of elf(5) to find what the dynamic loader will need.
 *
 * It reads the file header, the program headers and the PT_DYNAMIC segment with plain positioned
 * reads. It never maps or executes the file: a rootfs is often built for untrusted programs, and
 * `ldd` on an untrusted binary can run it (see ldd(1), "Security").
 *
 * What the loader looks at, and so what this reader returns (ld.so(8), elf(5)):
 * - PT_INTERP: the path of the program interpreter (`/lib64/ld-linux-x86-64.so.2`) the kernel
 *   maps before anything else. A static executable has none.
 * - PT_DYNAMIC: an array of (tag, value) pairs. DT_NEEDED names each library to load, DT_RPATH and
 *   DT_RUNPATH add search directories, DT_SONAME is the library's own name, DT_FLAGS_1 may carry
 *   DF_1_NODEFLIB (skip the cache and default directories). Names are offsets into DT_STRTAB, a
 *   virtual address, turned into a file offset through the PT_LOAD segment that contains it.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { RootfsError, errnoCode } from './errors.js';

const ELF_MAGIC = 0x7f454c46; // "\x7fELF"
const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0;
const DT_NEEDED = 1;
const DT_STRTAB = 5;
const DT_STRSZ = 10;
const DT_SONAME = 14;
const DT_RPATH = 15;
const DT_RUNPATH = 29;
const DT_FLAGS_1 = 0x6ffffffb;
const DF_1_NODEFLIB = 0x800;
const PN_XNUM = 0xffff;
/** Refuse absurd sizes from a corrupt or hostile header rather than allocate them. */
const MAX_TABLE_BYTES = 16 * 1024 * 1024;

/** e_type values (elf(5)). */
export const ET_EXEC = 2;
export const ET_DYN = 3;

/** What rootfs-tools needs to know about one ELF file. */
export interface ElfInfo {
  /** 32 or 64 (EI_CLASS). A library is only usable by an object of the same class and machine. */
  bits: 32 | 64;
  /** Byte order (EI_DATA). */
  littleEndian: boolean;
  /** e_machine, e.g. 62 for x86-64, 3 for i386, 183 for AArch64. */
  machine: number;
  /** e_type: ET_EXEC (2), ET_DYN (3, shared objects and PIE executables), ... */
  type: number;
  /** PT_INTERP, or null (static executables and most shared libraries). */
  interpreter: string | null;
  /** DT_NEEDED entries in file order, which is the order the loader maps them. */
  needed: string[];
  /** DT_SONAME, or null. */
  soname: string | null;
  /** DT_RPATH split on ':' (unexpanded: `$ORIGIN` and friends are left in). Empty when absent. */
  rpath: string[];
  /** DT_RUNPATH split on ':' (unexpanded). Null when absent: its presence alone disables DT_RPATH. */
  runpath: string[] | null;
  /** DF_1_NODEFLIB: do not search the ld.so cache and the default directories for this object's needs. */
  noDefaultLib: boolean;
  /** True when the file has a PT_DYNAMIC segment; false for static executables. */
  dynamic: boolean;
}

interface Header {
  bits: 32 | 64;
  le: boolean;
  type: number;
  machine: number;
  phoff: number;
  phentsize: number;
  phnum: number;
}

interface Segment {
  type: number;
  offset: number;
  vaddr: number;
  filesz: number;
}

/** Reads `length` bytes at `position`; throws a NOT_ELF error naming the file if the file is shorter. */
async function readExact(fh: FileHandle, path: string, position: number, length: number): Promise<Buffer> {
  if (length < 0 || length > MAX_TABLE_BYTES || !Number.isSafeInteger(position)) {
    throw new RootfsError('NOT_ELF', `malformed ELF file ${path}: a header points outside the file`, {
      path,
    });
  }
  const buf = Buffer.alloc(length);
  const { bytesRead } = await fh.read(buf, 0, length, position);
  if (bytesRead !== length) {
    throw new RootfsError('NOT_ELF', `truncated ELF file ${path}: expected ${length} bytes at ${position}`, {
      path,
    });
  }
  return buf;
}

async function openForReading(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'ENOENT') {
      throw new RootfsError('ENOENT', `${path} does not exist`, { path, cause: error });
    }
    if (code === 'EISDIR') {
      throw new RootfsError('NOT_ELF', `${path} is a directory, not a program or library`, { path });
    }
    throw new RootfsError('ENOENT', `cannot read ${path}: ${code ?? String(error)}`, { path, cause: error });
  }
}

function u16(buf: Buffer, off: number, le: boolean): number {
  return le ? buf.readUInt16LE(off) : buf.readUInt16BE(off);
}
function u32(buf: Buffer, off: number, le: boolean): number {
  return le ? buf.readUInt32LE(off) : buf.readUInt32BE(off);
}
/** A 64-bit field as a number; offsets and sizes above 2^53 only occur in corrupt files. */
function u64(buf: Buffer, off: number, le: boolean): number {
  const v = le ? buf.readBigUInt64LE(off) : buf.readBigUInt64BE(off);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
}
function word(h: { bits: 32 | 64; le: boolean }, buf: Buffer, off: number): number {
  return h.bits === 64 ? u64(buf, off, h.le) : u32(buf, off, h.le);
}

/** Parses the ELF file header (elf(5), "ELF header (Ehdr)"). */
function parseHeader(buf: Buffer, path: string): Header {
  if (buf.length < 52 || buf.readUInt32BE(0) !== ELF_MAGIC) {
    throw new RootfsError('NOT_ELF', `${path} is not an ELF file (no \\x7fELF magic number)`, { path });
  }
  const cls = buf[4];
  const data = buf[5];
  if ((cls !== 1 && cls !== 2) || (data !== 1 && data !== 2)) {
    throw new RootfsError('NOT_ELF', `${path} is an ELF file of unknown class ${cls} or byte order ${data}`, {
      path,
    });
  }
  const bits = cls === 2 ? 64 : 32;
  const le = data === 1;
  if (bits === 64 && buf.length < 64) {
    throw new RootfsError('NOT_ELF', `truncated ELF file ${path}: header is ${buf.length} bytes`, { path });
  }
  return {
    bits,
    le,
    type: u16(buf, 16, le),
    machine: u16(buf, 18, le),
    phoff: bits === 64 ? u64(buf, 32, le) : u32(buf, 28, le),
    phentsize: u16(buf, bits === 64 ? 54 : 42, le),
    phnum: u16(buf, bits === 64 ? 56 : 44, le),
  };
}

/** Parses the program header table (elf(5), "Program header (Phdr)"). */
function parseSegments(h: Header, table: Buffer): Segment[] {
  const segments: Segment[] = [];
  for (let i = 0; i < h.phnum; i++) {
    const off = i * h.phentsize;
    segments.push(
      h.bits === 64
        ? {
            type: u32(table, off, h.le),
            offset: u64(table, off + 8, h.le),
            vaddr: u64(table, off + 16, h.le),
            filesz: u64(table, off + 32, h.le),
          }
        : {
            type: u32(table, off, h.le),
            offset: u32(table, off + 4, h.le),
            vaddr: u32(table, off + 8, h.le),
            filesz: u32(table, off + 16, h.le),
          },
    );
  }
  return segments;
}

/** Turns a virtual address into a file offset through the PT_LOAD segment that maps it. */
function vaddrToOffset(segments: Segment[], vaddr: number): number | null {
  for (const s of segments) {
    if (s.type === PT_LOAD && vaddr >= s.vaddr && vaddr < s.vaddr + s.filesz) {
      return vaddr - s.vaddr + s.offset;
    }
  }
  return null;
}

function cString(buf: Buffer, off: number): string {
  const end = buf.indexOf(0, off);
  return buf.toString('utf8', off, end === -1 ? buf.length : end);
}

async function readHeaderAndSegments(
  fh: FileHandle,
  path: string,
): Promise<{ header: Header; segments: Segment[] }> {
  const head = Buffer.alloc(64);
  const { bytesRead } = await fh.read(head, 0, 64, 0);
  const header = parseHeader(head.subarray(0, bytesRead), path);
  if (header.phnum === PN_XNUM) {
    // The real count would be in section header 0's sh_info; no loader-relevant file needs 65535 segments.
    throw new RootfsError(
      'NOT_ELF',
      `${path} uses extended program header numbering (PN_XNUM), not supported`,
      {
        path,
      },
    );
  }
  const minEntry = header.bits === 64 ? 56 : 32;
  if (header.phnum > 0 && header.phentsize < minEntry) {
    throw new RootfsError('NOT_ELF', `malformed ELF file ${path}: program header entries too small`, {
      path,
    });
  }
  const table = await readExact(fh, path, header.phoff, header.phnum * header.phentsize);
  return { header, segments: parseSegments(header, table) };
}

/** Reads an ELF file's class, machine, interpreter and dynamic section. Throws RootfsError if not ELF. */
export async function readElf(path: string): Promise<ElfInfo> {
  const fh = await openForReading(path);
  try {
    const { header: h, segments } = await readHeaderAndSegments(fh, path);
    const info: ElfInfo = {
      bits: h.bits,
      littleEndian: h.le,
      machine: h.machine,
      type: h.type,
      interpreter: null,
      needed: [],
      soname: null,
      rpath: [],
      runpath: null,
      noDefaultLib: false,
      dynamic: false,
    };
    const interp = segments.find((s) => s.type === PT_INTERP);
    if (interp) info.interpreter = cString(await readExact(fh, path, interp.offset, interp.filesz), 0);

    const dyn = segments.find((s) => s.type === PT_DYNAMIC);
    if (!dyn) return info;
    info.dynamic = true;
    const entrySize = h.bits === 64 ? 16 : 8;
    const table = await readExact(fh, path, dyn.offset, dyn.filesz - (dyn.filesz % entrySize));
    const entries: Array<[number, number]> = [];
    for (let off = 0; off + entrySize <= table.length; off += entrySize) {
      const tag = word(h, table, off);
      if (tag === DT_NULL) break;
      entries.push([tag, word(h, table, off + entrySize / 2)]);
    }
    const strtabAddr = entries.find(([t]) => t === DT_STRTAB)?.[1];
    const strsz = entries.find(([t]) => t === DT_STRSZ)?.[1];
    const flags1 = entries.find(([t]) => t === DT_FLAGS_1)?.[1] ?? 0;
    info.noDefaultLib = (flags1 & DF_1_NODEFLIB) !== 0;
    const hasStrings = entries.some(([t]) => [DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH].includes(t));
    if (!hasStrings) return info;
    const strOff = strtabAddr === undefined ? null : vaddrToOffset(segments, strtabAddr);
    if (strOff === null || strsz === undefined) {
      throw new RootfsError(
        'NOT_ELF',
        `malformed ELF file ${path}: DT_STRTAB is not inside a PT_LOAD segment`,
        {
          path,
        },
      );
    }
    const strings = await readExact(fh, path, strOff, strsz);
    const str = (off: number): string => {
      if (off >= strings.length) {
        throw new RootfsError('NOT_ELF', `malformed ELF file ${path}: string offset ${off} past DT_STRSZ`, {
          path,
        });
      }
      return cString(strings, off);
    };
    for (const [tag, val] of entries) {
      if (tag === DT_NEEDED) info.needed.push(str(val));
      else if (tag === DT_SONAME) info.soname = str(val);
      else if (tag === DT_RPATH) info.rpath.push(...splitPath(str(val)));
      else if (tag === DT_RUNPATH) info.runpath = [...(info.runpath ?? []), ...splitPath(str(val))];
    }
    return info;
  } finally {
    await fh.close();
  }
}

/** Splits a colon-separated search path; an empty element means the current directory to ld.so, kept as ''. */
function splitPath(value: string): string[] {
  return value === '' ? [] : value.split(':');
}

/**
 * The PT_INTERP of an ELF file: the program interpreter the kernel loads to run it
 * (`/lib64/ld-linux-x86-64.so.2`), or null for a static executable or a plain library.
 * Throws a RootfsError (code NOT_ELF) naming the file when it is not ELF, ENOENT when it is missing.
 */
export async function readElfInterpreter(path: string): Promise<string | null> {
  const fh = await openForReading(path);
  try {
    const { segments } = await readHeaderAndSegments(fh, path);
    const interp = segments.find((s) => s.type === PT_INTERP);
    return interp ? cString(await readExact(fh, path, interp.offset, interp.filesz), 0) : null;
  } finally {
    await fh.close();
  }
}

/** True when the file starts with the ELF magic number. Missing or unreadable files are not ELF. */
export async function isElf(path: string): Promise<boolean> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch {
    return false;
  }
  try {
    const buf = Buffer.alloc(4);
    const { bytesRead } = await fh.read(buf, 0, 4, 0);
    return bytesRead === 4 && buf.readUInt32BE(0) === ELF_MAGIC;
  } catch {
    return false;
  } finally {
    await fh.close();
  }
}

/** A parsed `#!` line, as the kernel reads it (binfmt_script): one interpreter and at most one argument. */
export interface Shebang {
  /** The interpreter path, e.g. `/usr/bin/env`. */
  interpreter: string;
  /** Everything after the interpreter, as one argument (the kernel does not split it), or null. */
  argument: string | null;
}

/**
 * Linux reads the first 256 bytes of a script (BINPRM_BUF_SIZE, since 5.1) and takes the `#!` line
 * from them: the interpreter, then everything up to the newline as a single optional argument.
 */
const BINPRM_BUF_SIZE = 256;

/** Parses the `#!` line of a script, or returns null when the file does not start with `#!`. */
export async function readShebangLine(path: string): Promise<Shebang | null> {
  const fh = await openForReading(path);
  try {
    const buf = Buffer.alloc(BINPRM_BUF_SIZE);
    const { bytesRead } = await fh.read(buf, 0, BINPRM_BUF_SIZE, 0);
    if (bytesRead < 2 || buf[0] !== 0x23 || buf[1] !== 0x21) return null;
    const text = buf.toString('latin1', 2, bytesRead);
    const newline = text.indexOf('\n');
    const line = (newline === -1 ? text : text.slice(0, newline)).replace(/[ \t\r]+$/, '').trimStart();
    if (line === '') return null;
    const space = line.search(/[ \t]/);
    if (space === -1) return { interpreter: line, argument: null };
    const argument = line.slice(space).trim();
    return { interpreter: line.slice(0, space), argument: argument === '' ? null : argument };
  } finally {
    await fh.close();
  }
}

/**
 * The interpreter named by a script's `#!` line (`/bin/sh`, `/usr/bin/env`), or null when the file
 * does not start with `#!`. Throws a RootfsError (ENOENT) when the file does not exist.
 */
export async function readShebang(path: string): Promise<string | null> {
  return (await readShebangLine(path))?.interpreter ?? null;
}
