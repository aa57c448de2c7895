/**
 * CDI, the Container Device Interface (github.com/cncf-tags/container-device-interface,
 * SPEC.md): a vendor describes a device as edits to a container, in a spec file under
 * /etc/cdi or /var/run/cdi, and a runtime applies them for `--cdi-device vendor.com/class=name`.
 *
 * capsule applies the edits that map onto what it does, and refuses the rest by name, so
 * nothing a spec asks for is silently left out:
 *  - `deviceNodes` -> `devices` (the node made with mknod, its mode and the devices cgroup
 *    from `permissions`, `m` dropped: the sandbox never holds CAP_MKNOD);
 *  - `mounts` of type bind -> binds over paths that exist in the rootfs, read-only when the
 *    options say `ro`;
 *  - `env` -> variables added to the program's environment (one the caller also set is an
 *    error: neither silently wins).
 * Refused: `hooks` (programs the runtime would run as root around the container: capsule runs
 * none), `additionalGids`, `intelRdt`, `netDevices`, a node's `fileMode`, `uid` or `gid`, and
 * spec files in YAML (only `.json` files are read: `nvidia-ctk cdi generate --format=json`).
 * Both directories are read, /var/run/cdi (generated at boot) over /etc/cdi (SPEC.md, "CDI
 * file locations": the later directory has the higher priority).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { ConfigError } from '../errors.js';
import type { DeviceAccess, DeviceRequest } from './spec.js';

/** Where spec files are looked for, lowest priority first. */
export const CDI_SPEC_DIRS = ['/etc/cdi', '/var/run/cdi'];

/** What the named CDI devices ask of the sandbox, in capsule's terms. */
export interface CdiEdits {
  /** With the type and numbers the spec gave, if any: the host node must have them. */
  devices: (DeviceRequest & { expect: { type?: string; major?: number; minor?: number } })[];
  mounts: { hostPath: string; containerPath: string; readOnly: boolean }[];
  /** `KEY=VALUE`, in spec order. */
  env: string[];
}

interface Edits {
  env?: unknown;
  deviceNodes?: unknown;
  mounts?: unknown;
  hooks?: unknown;
  additionalGids?: unknown;
  intelRdt?: unknown;
  netDevices?: unknown;
}

interface Spec {
  file: string;
  kind: string;
  devices: { name: string; containerEdits?: Edits }[];
  containerEdits?: Edits;
}

function fail(message: string): never {
  throw new ConfigError(message, 'cdiDevices');
}

/** `vendor.com/class=name`, as SPEC.md's qualified device name. */
export function parseCdiName(name: string): { kind: string; device: string } {
  const m =
    /^([a-z0-9]([a-z0-9.-]*[a-z0-9])?\/[a-zA-Z0-9]([a-zA-Z0-9_.-]*[a-zA-Z0-9])?)=([a-zA-Z0-9][a-zA-Z0-9_.:-]*)$/.exec(
      name,
    );
  if (!m) fail(`CDI device ${JSON.stringify(name)} is not a qualified name: vendor.com/class=name`);
  return { kind: m[1]!, device: m[4]! };
}

function readSpecs(dirs: readonly string[]): Spec[] {
  const specs: Spec[] = [];
  for (const dir of dirs) {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      continue; // a directory that does not exist holds no spec
    }
    for (const name of names) {
      const file = join(dir, name);
      if (/\.ya?ml$/.test(name)) {
        specs.push({ file, kind: '', devices: [] }); // named in the error if it is the one asked
        continue;
      }
      if (!name.endsWith('.json')) continue;
      let spec: unknown;
      try {
        spec = JSON.parse(readFileSync(file, 'utf8'));
      } catch (e) {
        fail(`CDI spec ${file} is not valid JSON: ${(e as Error).message}`);
      }
      const s = spec as Partial<Spec>;
      if (typeof s?.kind !== 'string' || !Array.isArray(s.devices)) {
        fail(`CDI spec ${file} has no "kind" or no "devices" list`);
      }
      specs.push({ ...(s as Spec), file });
    }
  }
  return specs;
}

const MOUNT_OPTIONS = new Set(['bind', 'rbind', 'ro', 'rw', 'nosuid', 'nodev', 'private', 'rprivate']);

function applyEdits(edits: Edits | undefined, where: string, out: CdiEdits): void {
  if (edits === undefined) return;
  for (const key of ['hooks', 'additionalGids', 'intelRdt', 'netDevices'] as const) {
    const value = edits[key];
    if (value === undefined || value === null || (Array.isArray(value) && value.length === 0)) continue;
    fail(
      key === 'hooks'
        ? `${where} asks for hooks (${JSON.stringify(value).slice(0, 200)}): capsule runs no CDI hooks; use a spec without them (for NVIDIA GPUs, --gpu)`
        : `${where} uses "${key}", which capsule does not support`,
    );
  }
  for (const v of (edits.env as unknown[] | undefined) ?? []) {
    if (typeof v !== 'string' || !/^[^=\0]+=[^\0]*$/.test(v))
      fail(`${where}: env entry ${JSON.stringify(v)} is not KEY=VALUE`);
    const key = v.slice(0, v.indexOf('='));
    const other = out.env.find((e) => e.startsWith(`${key}=`));
    if (other === v) continue;
    if (other !== undefined)
      fail(`${where}: env ${key} is set to two values by the CDI devices (${other}, ${v})`);
    out.env.push(v);
  }
  for (const n of (edits.deviceNodes as Record<string, unknown>[] | undefined) ?? []) {
    if (typeof n?.path !== 'string') fail(`${where}: a deviceNode has no "path"`);
    for (const k of ['fileMode', 'uid', 'gid'])
      if (n[k] !== undefined)
        fail(`${where}: deviceNode ${n.path} sets "${k}", which capsule does not support`);
    const permissions = typeof n.permissions === 'string' ? n.permissions : 'rwm';
    const access = permissions.replace('m', '');
    if (!['r', 'w', 'rw'].includes(access))
      fail(
        `${where}: deviceNode ${n.path} has permissions ${JSON.stringify(permissions)}: read or write access is needed`,
      );
    const expect: CdiEdits['devices'][number]['expect'] = {};
    if (typeof n.type === 'string') expect.type = n.type;
    if (typeof n.major === 'number') expect.major = n.major;
    if (typeof n.minor === 'number') expect.minor = n.minor;
    out.devices.push({
      path: typeof n.hostPath === 'string' ? n.hostPath : n.path,
      sandboxPath: n.path,
      access: access as DeviceAccess,
      expect,
    });
  }
  for (const m of (edits.mounts as Record<string, unknown>[] | undefined) ?? []) {
    if (typeof m?.hostPath !== 'string' || typeof m.containerPath !== 'string')
      fail(`${where}: a mount needs "hostPath" and "containerPath"`);
    if (m.type !== undefined && m.type !== 'bind')
      fail(
        `${where}: mount of ${m.containerPath} has type ${JSON.stringify(m.type)}: capsule makes bind mounts only`,
      );
    const options = Array.isArray(m.options) ? (m.options as unknown[]) : [];
    const unknown = options.filter((o) => typeof o !== 'string' || !MOUNT_OPTIONS.has(o));
    if (unknown.length > 0)
      fail(`${where}: mount of ${m.containerPath} has options capsule does not apply: ${unknown.join(', ')}`);
    out.mounts.push({
      hostPath: m.hostPath,
      containerPath: m.containerPath,
      readOnly: options.includes('ro'),
    });
  }
}

/**
 * The edits for `names`, from the spec files in `dirs`: each device's own edits and its spec's
 * common ones (once per spec). @throws ConfigError (option `cdiDevices`)
 */
export function cdiEdits(names: readonly string[], dirs: readonly string[] = CDI_SPEC_DIRS): CdiEdits {
  const specs = readSpecs(dirs);
  const out: CdiEdits = { devices: [], mounts: [], env: [] };
  const commonDone = new Set<Spec>();
  for (const name of names) {
    const { kind, device } = parseCdiName(name);
    // The last match wins: a later directory has the higher priority.
    let found: { spec: Spec; dev: Spec['devices'][number] } | undefined;
    for (const spec of specs) {
      if (spec.kind !== kind) continue;
      const dev = spec.devices.find((d) => d?.name === device);
      if (dev) found = { spec, dev };
    }
    if (!found) {
      const yaml = specs.filter((s) => s.kind === '').map((s) => s.file);
      fail(
        `CDI device ${name} is not in any spec under ${dirs.join(', ')}` +
          (yaml.length > 0
            ? ` (capsule reads JSON specs only, and skipped ${yaml.join(', ')}: generate JSON, e.g. nvidia-ctk cdi generate --format=json)`
            : ''),
      );
    }
    const where = `CDI device ${name} (${found.spec.file})`;
    if (!commonDone.has(found.spec)) {
      applyEdits(found.spec.containerEdits, where, out);
      commonDone.add(found.spec);
    }
    applyEdits(found.dev.containerEdits, where, out);
  }
  return out;
}
