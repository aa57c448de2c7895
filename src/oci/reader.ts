/**
 * The seam between the lifecycle and config.json's reader (src/oci/spec.ts, written on its
 * own branch): `create` and `run` read the bundle through bundleReader(). Until spec.ts is
 * merged and registered here, reading a bundle is a clear error, never a guess.
 */
import { CapsuleError } from '../errors.js';
import type { ContainerPlan } from './plan.js';

export type BundleReader = (bundleDir: string, id: string) => ContainerPlan | Promise<ContainerPlan>;

let reader: BundleReader | null = null;

/** Register config.json's reader (spec.ts readBundle); tests register a plan of their own. */
export function useBundleReader(r: BundleReader | null): void {
  reader = r;
}

export async function readBundlePlan(bundleDir: string, id: string): Promise<ContainerPlan> {
  if (!reader) {
    throw new CapsuleError(
      `cannot read ${bundleDir}/config.json: this build of capsule has no config.json reader (src/oci/spec.ts is not merged)`,
    );
  }
  return reader(bundleDir, id);
}
