/** Binds that devices bring with them (GPU driver files, CDI mounts), checked against the rootfs. */
import { realpathSync, statSync } from 'node:fs';

import { ConfigError } from '../errors.js';

/**
 * A bind of host `source` at sandbox path `target`, which must exist in the rootfs as the same
 * kind (file or directory). The target is resolved inside the rootfs and must stay there:
 * mount(2) follows symlinks, so a link in the rootfs could aim a bind anywhere on the host.
 * @throws ConfigError naming `option`, with `missing` as the advice when the target is absent
 */
export function rootfsBind(
  rootfs: string,
  rootfsArg: string,
  source: string,
  target: string,
  readOnly: boolean,
  option: string,
  missing: string,
): { source: string; target: string; readOnly: boolean } {
  let hostSource: string;
  try {
    hostSource = realpathSync(source);
  } catch (e) {
    throw new ConfigError(
      `${option}: ${source} does not exist on the host (${(e as NodeJS.ErrnoException).code})`,
      option,
    );
  }
  if (!target.startsWith('/') || target.split('/').includes('..'))
    throw new ConfigError(`${option}: ${target} must be an absolute path without '..'`, option);
  let real: string;
  try {
    real = realpathSync(rootfs + target);
  } catch {
    throw new ConfigError(
      `${option}: ${rootfsArg} has no ${target} to bind ${source} over: ${missing}`,
      option,
    );
  }
  const dir = statSync(hostSource).isDirectory();
  if (!real.startsWith(rootfs + '/') || statSync(real).isDirectory() !== dir) {
    throw new ConfigError(
      `${option}: ${rootfsArg}${target} is not a ${dir ? 'directory' : 'file'} inside the rootfs; ${source} is bound there`,
      option,
    );
  }
  for (const reserved of ['/proc', '/dev', '/tmp']) {
    const inside = real.slice(rootfs.length);
    if (inside === reserved || inside.startsWith(reserved + '/'))
      throw new ConfigError(`${option}: cannot bind over ${inside}: capsule mounts ${reserved}`, option);
  }
  return { source: hostSource, target: real.slice(rootfs.length), readOnly };
}
