/**
 * capsule's verdict, mapped once to the names ICPC judges show.
 *
 * capsule says what ended the run (src/verdict.ts); whether the output is
 * right is the judge's business, so `OK` becomes AC or WA after comparing.
 * A forbidden system call (SECURITY_VIOLATION) is a runtime error to a
 * contestant, as on most ICPC judges; the table still shows capsule's own
 * verdict and the call beside it.
 */
export const ICPC = {
  OK: null /* AC or WA: compare the output */,
  RUNTIME_ERROR: 'RE',
  SIGNALED: 'RE',
  SECURITY_VIOLATION: 'RE',
  TIME_LIMIT: 'TLE',
  MEMORY_LIMIT: 'MLE',
  OUTPUT_LIMIT: 'OLE',
};

/** The ICPC verdict of one run against the expected output; `CE` comes from the compile step. */
export function icpcVerdict(result, expectedOutput) {
  const mapped = ICPC[result.verdict];
  if (mapped === undefined) throw new Error(`capsule verdict ${result.verdict} has no ICPC name`);
  if (mapped !== null) return mapped;
  const tokens = (s) => String(s).trim().split(/\s+/).join(' ');
  return tokens(result.stdout) === tokens(expectedOutput) ? 'AC' : 'WA';
}
