/**
 * The files --report and --meta write. Each is opened before the run, so that a path that
 * cannot be written is one clear error (exit 125) before anything runs, not a lost exit
 * status after the program ran; after the run the result goes through the descriptor
 * opened then, and a write that fails there is a warning: the program's status stands.
 */
import { closeSync, constants, fstatSync, ftruncateSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

import { ConfigError } from '../errors.js';
import { stderr, write } from './streams.js';

export interface ReportFile {
  /** The flag that named it, for messages. */
  flag: '--report' | '--meta';
  path: string;
  fd: number;
  /** Made by this open: removed again when nothing was written to it. */
  created: boolean;
  written?: boolean;
}

/** "ENOENT (no such file or directory)" from a Node fs error. */
export function errnoText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const text = /^[A-Z0-9]+: ([^,]+)/.exec(err.message ?? '')?.[1];
  return err.code ? `${err.code}${text ? ` (${text})` : ''}` : String(err.message ?? e);
}

function hint(code: string | undefined, path: string): string {
  switch (code) {
    case 'ENOENT':
      return `: create its directory ${dirname(path)} first`;
    case 'EISDIR':
      return ': give a file name, not a directory';
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return ': choose a path capsule may write';
    default:
      return '';
  }
}

/**
 * Open (create if need be) every file the flags name, before the run. On failure the ones
 * already made are removed and a ConfigError names the flag, the path and the errno.
 */
export function openReportFiles(paths: { report?: string; meta?: string }): ReportFile[] {
  const files: ReportFile[] = [];
  const wanted = [
    ['--report', paths.report],
    ['--meta', paths.meta],
  ] as const;
  try {
    for (const [flag, path] of wanted) {
      if (path === undefined) continue;
      let created = true;
      let fd: number;
      try {
        try {
          fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
          created = false;
          fd = openSync(path, constants.O_WRONLY | constants.O_NOCTTY);
        }
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new ConfigError(`${flag} ${path} cannot be written: ${errnoText(e)}${hint(code, path)}`, flag);
      }
      files.push({ flag, path, fd, created });
    }
  } catch (e) {
    closeReportFiles(files);
    throw e;
  }
  return files;
}

/** Replace the file's content with `text`; a failure is one warning on stderr, never a throw. */
export function writeReportFile(file: ReportFile, text: string): void {
  try {
    if (fstatSync(file.fd).isFile()) ftruncateSync(file.fd, 0);
    const data = Buffer.from(text);
    for (let at = 0; at < data.length;) at += writeSync(file.fd, data, at, data.length - at);
    file.written = true;
  } catch (e) {
    write(stderr(), `capsule: warning: ${file.flag} ${file.path} was not written: ${errnoText(e)}\n`);
  }
}

/** Close them, and unlink the ones this run created and never wrote (nothing ran, nothing to report). */
export function closeReportFiles(files: ReportFile[]): void {
  for (const f of files.splice(0)) {
    closeSync(f.fd);
    if (f.created && !f.written) {
      try {
        unlinkSync(f.path);
      } catch {
        /* already gone */
      }
    }
  }
}
