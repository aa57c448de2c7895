/**
 * Installed Debian packages, from dpkg's own database: no network, no apt. `Depends:` and
 * `Pre-Depends:` of /var/lib/dpkg/status give the closure of a package; /var/lib/dpkg/info/NAME.list
 * (NAME:ARCH.list for Multi-Arch: same packages) lists the paths each one installed (dpkg(1), FILES).
 *
 * What a package's files need at run time beyond its ELF closure (a stdlib, data, helpers it
 * executes) is in the package or in one it depends on: that is what Debian's dependencies are for.
 */
import { readFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { RootfsError } from './errors.js';

/** One installed package, as dpkg's status file describes it. */
export interface DpkgPackage {
  name: string;
  architecture: string;
  /** `Depends:` and `Pre-Depends:`, each a list of alternatives (`a | b`), names only. */
  depends: string[][];
  /** Virtual package names it provides. */
  provides: string[];
}

/** The database's location; tests pass their own. */
export interface DpkgOptions {
  /** @default '/var/lib/dpkg' */
  adminDir?: string;
}

/**
 * Paths dpkg installs that no program reads at run time: documentation, manual pages, info
 * pages, lintian overrides. Left out, as Debian's slim images leave them out (dpkg --path-exclude).
 */
export const PACKAGE_EXCLUDES = [
  '/usr/share/doc/',
  '/usr/share/man/',
  '/usr/share/info/',
  '/usr/share/lintian/',
];

/** Installed packages by name (and name:arch), from the status file. */
export async function readDpkgStatus(options: DpkgOptions = {}): Promise<Map<string, DpkgPackage>> {
  const adminDir = options.adminDir ?? '/var/lib/dpkg';
  const path = posix.join(adminDir, 'status');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new RootfsError(
      'ENOENT',
      `cannot read dpkg's status file ${path}: --package needs a Debian or Ubuntu host (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
      { path, cause: error },
    );
  }
  const packages = new Map<string, DpkgPackage>();
  for (const stanza of text.split(/\n\n+/)) {
    const fields = new Map<string, string>();
    let last = '';
    for (const line of stanza.split('\n')) {
      if (/^\s/.test(line) && last) fields.set(last, `${fields.get(last) ?? ''} ${line.trim()}`);
      else {
        const colon = line.indexOf(':');
        if (colon <= 0) continue;
        last = line.slice(0, colon);
        fields.set(last, line.slice(colon + 1).trim());
      }
    }
    const name = fields.get('Package');
    if (!name || !/\binstall ok installed$/.test(fields.get('Status') ?? '')) continue;
    const relations = (field: string) =>
      (fields.get(field) ?? '')
        .split(',')
        .map((group) =>
          group
            .split('|')
            .map((alt) => alt.trim().split(/[\s(]/)[0]?.replace(/:any$/, '') ?? '')
            .filter(Boolean),
        )
        .filter((g) => g.length > 0);
    const pkg: DpkgPackage = {
      name,
      architecture: fields.get('Architecture') ?? 'all',
      depends: [...relations('Pre-Depends'), ...relations('Depends')],
      provides: relations('Provides').flat(),
    };
    packages.set(name, pkg);
    packages.set(`${name}:${pkg.architecture}`, pkg);
  }
  return packages;
}

/**
 * The packages `names` depend on, themselves included, in the order found (breadth first). Of
 * alternatives (`a | b`) the first one installed counts, a virtual package counts as its first
 * installed provider; version constraints are not checked (dpkg did when it installed them).
 * A name that is not installed is a RootfsError naming the apt-get command.
 */
export function packageClosure(names: string[], installed: Map<string, DpkgPackage>): DpkgPackage[] {
  const providers = new Map<string, DpkgPackage[]>();
  for (const pkg of new Set(installed.values())) {
    for (const v of pkg.provides) providers.set(v, [...(providers.get(v) ?? []), pkg]);
  }
  const lookup = (name: string): DpkgPackage | undefined =>
    installed.get(name) ?? providers.get(name)?.[0] ?? providers.get(name.split(':')[0] ?? '')?.[0];
  const missing = names.filter((n) => !lookup(n));
  if (missing.length > 0) {
    throw new RootfsError(
      'PROFILE',
      `package ${missing.join(', ')} is not installed on this host: apt-get install ${missing.join(' ')}`,
    );
  }
  const out: DpkgPackage[] = [];
  const seen = new Set<DpkgPackage>();
  const queue = names.map((n) => lookup(n) as DpkgPackage);
  for (let pkg = queue.shift(); pkg; pkg = queue.shift()) {
    if (seen.has(pkg)) continue;
    seen.add(pkg);
    out.push(pkg);
    for (const group of pkg.depends) {
      const found = group.map(lookup).find((p) => p !== undefined);
      /* None installed: dpkg would not have configured pkg, unless it is a dependency being removed. */
      if (found && !seen.has(found)) queue.push(found);
    }
  }
  return out;
}

/** The paths a package installed, from its .list file, without PACKAGE_EXCLUDES. */
export async function packageFiles(pkg: DpkgPackage, options: DpkgOptions = {}): Promise<string[]> {
  const info = posix.join(options.adminDir ?? '/var/lib/dpkg', 'info');
  for (const file of [`${pkg.name}:${pkg.architecture}.list`, `${pkg.name}.list`]) {
    const text = await readFile(posix.join(info, file), 'utf8').catch(() => null);
    if (text === null) continue;
    return text
      .split('\n')
      .filter((p) => p.startsWith('/') && p !== '/.')
      .filter((p) => !PACKAGE_EXCLUDES.some((x) => p.startsWith(x) || `${p}/` === x));
  }
  throw new RootfsError(
    'ENOENT',
    `dpkg lists no files for ${pkg.name} (no ${info}/${pkg.name}.list): reinstall it with apt-get install --reinstall ${pkg.name}`,
    { path: posix.join(info, `${pkg.name}.list`) },
  );
}
