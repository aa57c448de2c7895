/**
 * A capability this kernel does not have (above /proc/sys/kernel/cap_last_cap) is left out
 * with a warning, as runc does: a config written for a newer kernel still runs. The kernel's
 * last capability is mocked lower than this machine's, since every name capsule knows is at
 * or below this machine's.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';

import { capabilityNumber } from '../../src/oci/caps.js';
import { readConfig } from '../../src/oci/spec.js';

vi.mock('../../src/oci/caps.js', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../src/oci/caps.js')>()),
  capLastCap: () => 38 /* CAP_PERFMON, Linux 5.8's last */,
}));

/* Made when the file runs, not when it is collected (`vitest list` would leave one behind). */
let bundle = '';
beforeAll(() => {
  bundle = mkdtempSync(join(tmpdir(), 'capsule-ocispec-caps-'));
  mkdirSync(join(bundle, 'rootfs'));
});
afterAll(() => {
  if (bundle) rmSync(bundle, { recursive: true, force: true });
});

it('capabilities above cap_last_cap are dropped with a warning naming them', () => {
  const plan = readConfig(
    {
      ociVersion: '1.0.2',
      root: { path: 'rootfs' },
      process: {
        args: ['true'],
        cwd: '/',
        capabilities: {
          bounding: ['CAP_KILL', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE'],
          permitted: ['CAP_KILL', 'CAP_BPF'],
        },
      },
      linux: { namespaces: [{ type: 'mount' }] },
    },
    bundle,
    'c',
  );
  expect(plan.native.oci.capabilities.bounding).toEqual([capabilityNumber('CAP_KILL')]);
  expect(plan.native.oci.capabilities.permitted).toEqual([capabilityNumber('CAP_KILL')]);
  expect(plan.warnings).toEqual([
    "process.capabilities.bounding: CAP_BPF is left out: this kernel's capabilities end at 38 (/proc/sys/kernel/cap_last_cap)",
    "process.capabilities.bounding: CAP_CHECKPOINT_RESTORE is left out: this kernel's capabilities end at 38 (/proc/sys/kernel/cap_last_cap)",
    "process.capabilities.permitted: CAP_BPF is left out: this kernel's capabilities end at 38 (/proc/sys/kernel/cap_last_cap)",
  ]);
});
