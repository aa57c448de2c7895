/**
 * Building each profile's rootfs, capsule against the seed's method (a shell loop over `ldd` and
 * `cp --parents`), with the same programs and include trees:
 *
 * - cold: into an empty directory; warm: again into the same directory (capsule only adds what
 *   changed; the shell loop copies everything again);
 * - size: bytes of regular files in the rootfs (hard links counted once);
 * - missing: what `checkRootfs` finds missing in the result (the shell loop never looks at the
 *   libraries of ELF files inside included trees, nor at the files linker scripts name).
 *
 * Each figure is the median of `runs` runs after one unmeasured warm-up of each method (so the
 * page cache is warm for both). Printed, never asserted.
 */
import { mkdtemp, readdir, lstat, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

import { buildRootfs } from '../rootfs-tools/build.js';
import { checkRootfs } from '../rootfs-tools/check.js';
import { resolveProfiles, type ResolvedProfiles } from '../rootfs-tools/profile.js';
import { PROFILE_NAMES } from '../rootfs-tools/profiles.js';
import { formatSize } from '../rootfs-tools/progress.js';
import { summary } from './stats.js';

/** Options for {@link benchRootfs}. */
export interface BenchRootfsOptions {
  /** Measured runs per method and phase (cold builds of `c` take seconds each). @default 3 */
  runs?: number;
  /** Profiles to measure. @default every built-in profile */
  profiles?: string[];
  /** Also measure capsule with `hardlink: true`. @default true */
  hardlink?: boolean;
}

/** One profile's figures: median milliseconds, bytes, problems found by checkRootfs. */
export interface RootfsBenchRow {
  profile: string;
  method: string;
  coldMs: number;
  warmMs: number;
  sizeBytes: number;
  files: number;
  missing: number;
}

/** The seed's method, verbatim in spirit: ldd each program, cp --parents what it prints, cp -a the trees. */
const SHELL_LOOP = `#!/bin/bash
set -e
root=$1; shift
bins=(); incs=(); mode=bins
for a in "$@"; do
  if [ "$a" = "--" ]; then mode=incs; continue; fi
  if [ $mode = bins ]; then bins+=("$a"); else incs+=("$a"); fi
done
mkdir -p "$root"
cd /  # coreutils 9.1's cp -a --parents fails on absolute sources from another directory
for b in "\${bins[@]}"; do
  cp --parents "$b" "$root"
  for lib in $(ldd "$b" | grep -o '/[^ ]*'); do cp --parents "$lib" "$root"; done
done
for i in "\${incs[@]}"; do cp -a --parents "$i" "$root"; done
mkdir -p "$root/etc" "$root/proc" "$root/dev" "$root/tmp" && chmod 1777 "$root/tmp"
echo 'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin' > "$root/etc/passwd"
`;

/** Apparent size of the regular files under `dir`, each inode once. */
async function treeSize(dir: string): Promise<{ bytes: number; files: number }> {
  const seen = new Set<number>();
  let bytes = 0;
  let files = 0;
  const visit = async (p: string): Promise<void> => {
    const st = await lstat(p);
    if (st.isDirectory()) for (const n of await readdir(p)) await visit(join(p, n));
    else if (st.isFile() && !seen.has(st.ino)) {
      seen.add(st.ino);
      bytes += st.size;
      files++;
    }
  };
  await visit(dir);
  return { bytes, files };
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

async function measure(
  work: string,
  method: string,
  profile: string,
  runs: number,
  build: (dir: string) => Promise<unknown>,
): Promise<RootfsBenchRow> {
  const cold: number[] = [];
  const warm: number[] = [];
  let last = '';
  for (let i = 0; i <= runs; i++) {
    const dir = join(work, `${method.replace(/[^a-z0-9]+/g, '-')}-${profile}-${i}`);
    const c = await time(() => build(dir));
    const w = await time(() => build(dir));
    if (i > 0) {
      cold.push(c); // run 0 is the warm-up
      warm.push(w);
    }
    if (last) await rm(last, { recursive: true, force: true });
    last = dir;
  }
  const size = await treeSize(last);
  const missing = (await checkRootfs(last)).problems.length;
  await rm(last, { recursive: true, force: true });
  return {
    profile,
    method,
    coldMs: summary(cold).p50,
    warmMs: summary(warm).p50,
    sizeBytes: size.bytes,
    files: size.files,
    missing,
  };
}

/** Measures every profile the host can build; returns the rows (also printed by benchRootfs). */
export async function measureRootfs(options: BenchRootfsOptions = {}): Promise<RootfsBenchRow[]> {
  const runs = options.runs ?? 3;
  const work = await mkdtemp(join(tmpdir(), 'capsule-bench-rootfs-'));
  const script = join(work, 'seed.sh');
  await writeFile(script, SHELL_LOOP, { mode: 0o755 });
  const rows: RootfsBenchRow[] = [];
  try {
    for (const profile of options.profiles ?? PROFILE_NAMES) {
      let resolved: ResolvedProfiles;
      try {
        resolved = await resolveProfiles([profile]);
      } catch (e) {
        console.log(`rootfs bench: skipping profile ${profile}: ${(e as Error).message}`);
        continue;
      }
      const bins = resolved.programs.map((p) => p.path);
      const incs = resolved.include.map((i) => i.path);
      rows.push(await measure(work, 'capsule', profile, runs, (dir) => buildRootfs({ dir, profile })));
      if (options.hardlink ?? true) {
        rows.push(
          await measure(work, 'capsule --hardlink', profile, runs, (dir) =>
            buildRootfs({ dir, profile, hardlink: true }),
          ),
        );
      }
      rows.push(
        await measure(work, 'ldd + cp --parents', profile, runs, (dir) =>
          execa('bash', [script, dir, ...bins, '--', ...incs]),
        ),
      );
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return rows;
}

/** Formats rows as the table benchRootfs prints, with capsule's times as a ratio of the shell loop's. */
export function formatRootfsTable(rows: RootfsBenchRow[]): string[] {
  const head = [
    'profile',
    'method',
    'cold ms',
    'warm ms',
    'cold vs ldd',
    'warm vs ldd',
    'files',
    'size',
    'missing',
  ];
  const body = rows.map((r) => {
    const seed = rows.find((s) => s.profile === r.profile && s.method === 'ldd + cp --parents');
    const ratio = (a: number, b: number | undefined): string => (b ? `${(a / b).toFixed(2)}x` : '');
    return [
      r.profile,
      r.method,
      r.coldMs.toFixed(0),
      r.warmMs.toFixed(0),
      ratio(r.coldMs, seed?.coldMs),
      ratio(r.warmMs, seed?.warmMs),
      String(r.files),
      formatSize(r.sizeBytes),
      String(r.missing),
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  return [line(head), ...body.map(line)];
}

/** Prints the rootfs build table (see the module comment). */
export async function benchRootfs(options: BenchRootfsOptions = {}): Promise<void> {
  const rows = await measureRootfs(options);
  console.log(
    `\nrootfs build: median of ${options.runs ?? 3} runs; warm = the same build again into the same dir`,
  );
  for (const l of formatRootfsTable(rows)) console.log(l);
}
