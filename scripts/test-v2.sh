#!/usr/bin/env bash
# The cgroup, limits, devices and verdict tests on a pure cgroup v2 kernel, inside the VM of
# shared/v2vm/run-in-v2 (Debian's 6.1 kernel, memory, pids, cpu and cpuset enabled at the root;
# its header says the rest). This machine mounts the controllers on cgroup v1, so without this
# the v2 code would be tested against fixtures only. Run as root, after scripts/test.sh (or
# scripts/setup.sh) has built the addon and dist/: the VM reads this checkout, read-only under
# a throw-away overlay, and uses its node_modules, build/ and dist/ as they are.
#
# run-in-v2 is looked for in $CAPSULE_RUN_IN_V2, then in a shared/ beside the checkout (CI puts
# a copy there), then one level further up (a worktree in wt/NAME). Its first use installs qemu,
# a kernel and busybox. The guest's CPU is emulated: ~5.5 minutes for these tests, whose
# timing checks compare CPU time with wall time or carry margins that hold there.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

vm=${CAPSULE_RUN_IN_V2:-}
if [ -z "$vm" ]; then
  for c in "$root/../shared/v2vm/run-in-v2" "$root/../../shared/v2vm/run-in-v2"; do
    if [ -x "$c" ]; then vm=$c; break; fi
  done
fi
if [ -z "$vm" ] || [ ! -x "$vm" ]; then
  echo "test-v2: run-in-v2 not found (looked in \$CAPSULE_RUN_IN_V2, ../shared/v2vm and ../../shared/v2vm): set CAPSULE_RUN_IN_V2 to its path" >&2
  exit 1
fi
if ! ls build/Release/*.node >/dev/null 2>&1 || [ ! -f dist/src/index.js ]; then
  echo "test-v2: the addon or dist/ is not built: run scripts/setup.sh first" >&2
  exit 1
fi

# CI=1: the guest's console is a terminal, and vitest's progress redraws there would bury the
# results (run-in-v2 passes CI on to the guest). Timeouts 4x vitest.config.ts's: the emulated
# CPU is several times slower (a test that takes 6 s alone there took 32 s with a second VM
# running beside it). The echo ends the last line, so that run-in-v2 finds its exit-status
# line at the start of one.
export CI=1
#
# Of test/rootless.test.ts only what cgroup v2 changes (delegation, gc, doctor's cgroup line):
# the whole file took 194 s there and its other tests do not depend on the cgroup layout
# (they all pass in the VM too: run it by hand with the file's name alone). Likewise
# test/oci/cli.test.ts (127 s there) is left to the host: container.test.ts makes the same
# containers through the library on v2, in 1 s. CI's whole run stays near 15 minutes so.
exec "$vm" --timeout 1200 -- bash -c \
  'npx vitest run --testTimeout=120000 --hookTimeout=240000 test/cgroup test/devices test/limits.test.ts test/run.test.ts test/session.test.ts test/box.test.ts test/spawn.test.ts test/ahead.test.ts test/oci/native.test.ts test/oci/state.test.ts test/oci/cgroup.test.ts test/oci/container.test.ts; rc=$?; npx vitest run --testTimeout=120000 --hookTimeout=240000 test/rootless.test.ts -t "cgroup|gc as that user|doctor"; rc2=$?; echo; [ $rc -eq 0 ] && exit $rc2; exit $rc'
