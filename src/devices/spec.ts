/**
 * Host devices in a sandbox (`devices`, `--device`): parsing, checking and resolving what the
 * caller asked for into nodes the addon makes in the sandbox's /dev (native/devices.cc).
 *
 * Each device becomes a node made with mknod(2) with the host node's type and numbers, at the
 * same path or the one asked, with a mode that says the access asked: 0444 for `r`, 0222 for
 * `w`, 0666 for `rw`, owned by root. What enforces what is in docs/devices.md.
 */
import { statSync } from 'node:fs';
import { isAbsolute, normalize } from 'node:path';

import { ConfigError } from '../errors.js';
import { DEFAULT_DEV_NODES, splitDev } from '../options.js';

/** What the sandbox may do with a device: open it for reading, for writing, or both. */
export type DeviceAccess = 'r' | 'w' | 'rw';

/** One host device to give the sandbox. */
export interface DeviceRequest {
  /** Host path of a character or block device node (symlinks followed: /dev/disk/by-id/... works). */
  path: string;
  /** Where it appears in the sandbox: an absolute path under /dev. @default `path` */
  sandboxPath?: string;
  /** @default 'rw' */
  access?: DeviceAccess;
}

/** A device checked on the host, ready for the addon and the devices cgroup. */
export interface ResolvedDevice {
  /** As the caller gave it. */
  hostPath: string;
  /** Absolute path in the sandbox, under /dev. */
  target: string;
  type: 'c' | 'b';
  major: number;
  minor: number;
  access: DeviceAccess;
}

/** The node's permission bits for an access: the same for owner, group and others, so any uid gets it. */
export function deviceMode(access: DeviceAccess): number {
  return access === 'r' ? 0o444 : access === 'w' ? 0o222 : 0o666;
}

const ACCESS = new Set<string>(['r', 'w', 'rw']);

/**
 * `--device` syntax: `/dev/PATH`, `/dev/PATH:ACCESS`, `HOST:SANDBOX` or `HOST:SANDBOX:ACCESS`,
 * ACCESS one of `r`, `w`, `rw` (docker's `--device` without its `m`, which a sandbox without
 * CAP_MKNOD could never use). @throws Error with what was expected
 */
export function parseDeviceSpec(value: string): DeviceRequest {
  const parts = value.split(':');
  let access: DeviceAccess | undefined;
  if (parts.length > 1 && ACCESS.has(parts[parts.length - 1]!)) access = parts.pop() as DeviceAccess;
  if (parts.length > 2 || parts.some((p) => p === '')) {
    throw new Error(`expected /dev/PATH[:r|w|rw] or HOST:SANDBOX[:r|w|rw], got ${JSON.stringify(value)}`);
  }
  const [path, sandboxPath] = parts as [string, string | undefined];
  if (sandboxPath !== undefined && !sandboxPath.startsWith('/')) {
    throw new Error(
      `expected an access of r, w or rw, or an absolute SANDBOX path, after ${path}: got ${JSON.stringify(sandboxPath)}`,
    );
  }
  return { path, ...(sandboxPath === undefined ? {} : { sandboxPath }), ...(access ? { access } : {}) };
}

/** Paths under /dev that capsule makes itself, with or without options: no device may take them. */
const RESERVED = ['/dev/fd', '/dev/stdin', '/dev/stdout', '/dev/stderr', '/dev/pts', '/dev/ptmx', '/dev/shm'];

function fail(option: string, message: string): never {
  throw new ConfigError(message, option);
}

/** Check one request against the host and return the node to make. @throws ConfigError naming `option` */
export function resolveDevice(req: DeviceRequest | string, option: string): ResolvedDevice {
  let r: DeviceRequest;
  if (typeof req === 'string') {
    try {
      r = parseDeviceSpec(req);
    } catch (e) {
      fail(option, `${option}: ${(e as Error).message}`);
    }
  } else if (
    typeof req === 'object' &&
    req !== null &&
    typeof req.path === 'string' &&
    (req.sandboxPath === undefined || typeof req.sandboxPath === 'string')
  ) {
    r = req;
  } else {
    fail(option, `${option} must be a string or { path, sandboxPath?, access? }`);
  }
  const access = r.access ?? 'rw';
  if (!ACCESS.has(access)) fail(option, `${option}.access must be 'r', 'w' or 'rw', got ${String(access)}`);
  if (!isAbsolute(r.path))
    fail(option, `${option}: the host path must be absolute, got ${JSON.stringify(r.path)}`);
  const asked = r.sandboxPath ?? r.path;
  const target = normalize(asked).replace(/\/$/, '');
  if (!target.startsWith('/dev/') || asked.split('/').includes('..') || asked.includes('\0')) {
    fail(
      option,
      `${option}: a device goes under the sandbox's /dev (the only mount where device nodes work), without '..', got ${JSON.stringify(asked)}: give HOST:/dev/NAME`,
    );
  }
  let st;
  try {
    st = statSync(r.path, { bigint: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    fail(option, `${option}: cannot stat ${r.path} on the host (${code}): give the path of a device node`);
  }
  if (!st.isCharacterDevice() && !st.isBlockDevice()) {
    fail(option, `${option}: ${r.path} is not a device node: only character and block devices can be given`);
  }
  return {
    hostPath: r.path,
    target,
    type: st.isBlockDevice() ? 'b' : 'c',
    ...splitDev(st.rdev),
    access,
  };
}

/**
 * The targets must not clash with each other or with what capsule makes: a node every
 * sandbox gets (/dev/null, ...), /dev/pts, /dev/shm, /dev/fd and the std links, or a node
 * where another device needs a directory (/dev/a and /dev/a/b). @throws ConfigError
 */
export function checkDeviceTargets(devices: readonly ResolvedDevice[], option: string): void {
  const seen = new Map<string, string>();
  for (const d of devices) {
    if (DEFAULT_DEV_NODES.includes(d.target)) {
      fail(option, `${option}: ${d.target} is in every sandbox already (read-write); leave it out`);
    }
    const reserved = RESERVED.find((p) => d.target === p || d.target.startsWith(p + '/'));
    if (reserved)
      fail(option, `${option}: ${d.target} is where capsule puts ${reserved}; choose another path`);
    const other = seen.get(d.target);
    if (other !== undefined)
      fail(option, `${option}: ${d.target} is asked twice (${other} and ${d.hostPath})`);
    seen.set(d.target, d.hostPath);
  }
  for (const d of devices) {
    const nested = devices.find((e) => e.target.startsWith(d.target + '/'));
    if (nested) fail(option, `${option}: ${d.target} cannot be a node and the directory of ${nested.target}`);
  }
}
