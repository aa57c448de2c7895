/**
 * An example judge on capsule: compiles every submission under
 * submissions/LANGUAGE/ in a sandbox with the `compile` seccomp profile,
 * runs it in a sandbox with `strict` and the problem's limits, and maps
 * capsule's verdict to the ICPC one (verdicts.mjs). The file name says what
 * the verdict must be (ac.c: AC, tle.py: TLE, forbidden.go: RE from a
 * forbidden system call); the judge prints a table and exits 1 when one
 * differs. Run as root: `npm run example:judge` at the repository root.
 *
 * capsule is imported by its package name, as a user would after
 * `npm install capsule` (here Node resolves the name to the repository
 * itself, whose package.json is named capsule: run `npm run build:ts` first).
 */
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, extname, join } from 'node:path';

import { run } from 'capsule';

import { LANGUAGES, MEMORY_LIMIT_BYTES, OUTPUT_LIMIT_BYTES } from './languages.mjs';
import { icpcVerdict } from './verdicts.mjs';

/** The problem: A + B. */
const INPUT = '2 3\n';
const OUTPUT = '5\n';

/** What each submission's file name promises. */
const EXPECTED = {
  ac: 'AC',
  wa: 'WA',
  tle: 'TLE',
  mle: 'MLE',
  re: 'RE',
  forbidden: 'RE',
  ce: 'CE',
  ole: 'OLE',
};

const here = import.meta.dirname;
const work = mkdtempSync(join(tmpdir(), 'capsule-judge-'));

/*
 * The rootfs: empty directories for capsule's /proc, /dev and /tmp, the
 * host's /usr and /etc bound read-only (merged /usr: /bin, /lib, /lib64 are
 * links into it), and /box for the submission. `capsule rootfs build` makes
 * a rootfs of its own instead (docs/rootfs-tools.md).
 */
const rootfs = join(work, 'rootfs');
for (const d of ['proc', 'dev', 'tmp', 'usr', 'etc', 'box']) mkdirSync(join(rootfs, d), { recursive: true });
for (const d of ['bin', 'lib', 'lib64', 'sbin']) symlinkSync(`usr/${d}`, join(rootfs, d));
const HOST = [
  { source: '/usr', target: '/usr' },
  { source: '/etc', target: '/etc' },
];
const ENV = { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8', HOME: '/box' };

/** Compile in a writable box: what the compiler writes stays in `box` on the host. */
async function compile(lang, box) {
  if (!lang.compile) return null;
  return run({
    rootfs,
    argv: lang.compile,
    cwd: '/box',
    binds: [...HOST, { source: box, target: '/box', readOnly: false }],
    env: { ...ENV, GOCACHE: '/box/.cache/go', CGO_ENABLED: '0' },
    seccomp: 'compile',
    cpuTimeLimitMs: 30_000,
    wallTimeLimitMs: 60_000,
    memoryLimitBytes: 1024 * 1024 * 1024,
    pidsLimit: 256,
    tmpSizeBytes: 256 * 1024 * 1024,
  });
}

/** Run the compiled submission once, its box read-only, under strict. */
function execute(lang, box) {
  return run({
    rootfs,
    argv: lang.run,
    cwd: '/box',
    binds: [...HOST, { source: box, target: '/box' }],
    env: ENV,
    stdin: INPUT,
    seccomp: 'strict',
    cpuTimeLimitMs: lang.cpuTimeLimitMs,
    wallTimeLimitMs: 2 * lang.cpuTimeLimitMs + 1000,
    memoryLimitBytes: MEMORY_LIMIT_BYTES,
    outputLimitBytes: OUTPUT_LIMIT_BYTES,
    pidsLimit: 64,
  });
}

async function judge(langKey, file) {
  const lang = LANGUAGES[langKey];
  const kind = basename(file, extname(file));
  const box = join(work, `${langKey}-${kind}`);
  /* The sandbox's user is not the host's root: the box is open to it (inside a 0700 directory). */
  mkdirSync(box, { mode: 0o777 });
  chmodSync(box, 0o777);
  cpSync(join(here, 'submissions', langKey, file), join(box, lang.source));
  const row = {
    submission: `${langKey}/${file}`,
    expected: EXPECTED[kind],
    verdict: '',
    capsule: '',
    cpuMs: '',
    peakMiB: '',
  };
  const c = await compile(lang, box);
  if (c && c.verdict !== 'OK') {
    row.verdict = 'CE';
    row.capsule = `compile: ${c.verdict}`;
    return row;
  }
  const r = await execute(lang, box);
  row.verdict = icpcVerdict(r, OUTPUT);
  row.capsule = r.violation
    ? `${r.verdict} (${r.violation.syscall})`
    : r.timeLimit
      ? `${r.verdict} (${r.timeLimit})`
      : r.verdict;
  row.cpuMs = String(Math.round(r.cpuTimeMs));
  row.peakMiB = r.peakMemoryBytes === null ? '-' : (r.peakMemoryBytes / 2 ** 20).toFixed(1);
  if (kind === 'forbidden' && r.verdict !== 'SECURITY_VIOLATION') row.verdict += ' (no violation)';
  return row;
}

function table(rows) {
  const cols = ['submission', 'expected', 'verdict', 'capsule', 'cpuMs', 'peakMiB'];
  const head = {
    submission: 'submission',
    expected: 'expected',
    verdict: 'verdict',
    capsule: 'capsule verdict',
    cpuMs: 'CPU ms',
    peakMiB: 'peak MiB',
  };
  const width = Object.fromEntries(
    cols.map((c) => [c, Math.max(...[head, ...rows].map((r) => r[c].length))]),
  );
  const line = (r) =>
    cols
      .map((c) => (c === 'cpuMs' || c === 'peakMiB' ? r[c].padStart(width[c]) : r[c].padEnd(width[c])))
      .join('  ');
  console.log(line(head));
  for (const r of rows) console.log(line(r) + (r.verdict === r.expected ? '' : '   <- MISMATCH'));
}

let rows = [];
const missing = [];
try {
  for (const langKey of Object.keys(LANGUAGES)) {
    const lang = LANGUAGES[langKey];
    const tool = lang.compile?.[0] ?? lang.run[0];
    if (!existsSync(tool)) {
      missing.push(`${lang.name} (${tool} is not installed)`);
      continue;
    }
    for (const file of readdirSync(join(here, 'submissions', langKey)).sort())
      rows.push(await judge(langKey, file));
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
table(rows);
if (missing.length > 0) console.log(`\nskipped: ${missing.join(', ')}`);
const wrong = rows.filter((r) => r.verdict !== r.expected);
console.log(`\n${rows.length - wrong.length} of ${rows.length} verdicts as expected`);
process.exitCode = wrong.length > 0 || rows.length === 0 ? 1 : 0;
