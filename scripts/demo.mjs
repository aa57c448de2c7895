#!/usr/bin/env node
// The demo: build a rootfs from host programs with their shared libraries, then run a
// program in a sandbox that shows its PID, user, network and root directory.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { run } from '../dist/src/index.js';
import { buildRootfs } from '../dist/rootfs-tools/index.js';

const dir = mkdtempSync(join(tmpdir(), 'capsule-demo-'));
const rootfs = join(dir, 'rootfs');
try {
  const programs = ['/bin/sh', '/bin/ls', '/usr/bin/id', '/bin/cat', '/bin/hostname', '/usr/bin/touch'];
  console.log(`$ capsule rootfs build ${rootfs} ${programs.map((p) => `--bin ${p}`).join(' ')}`);
  const built = await buildRootfs({ dir: rootfs, programs });
  console.log(
    `  ${built.total.files} files, ${(built.total.bytes / 2 ** 20).toFixed(1)} MiB; libraries: ${built.libraries.join(', ')}\n`,
  );

  const script =
    'echo "PID: $$"; id; echo "hostname: $(hostname)"; cat /proc/net/dev; echo "/:"; ls /; touch /x';
  console.log(`$ capsule run ${rootfs} /bin/sh -c '${script}'`);
  const r = await run({ rootfs, argv: ['/bin/sh', '-c', script], stdout: 'inherit', stderr: 'inherit' });
  console.log(
    `\nexit code ${r.exitCode} (touch failed: the root is read-only); wall ${r.wallTimeMs.toFixed(1)} ms, ` +
      `CPU ${r.cpuTimeMs.toFixed(1)} ms, peak RSS ${((r.maxRssBytes ?? 0) / 1024).toFixed(0)} KiB`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
