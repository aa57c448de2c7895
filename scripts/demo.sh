#!/usr/bin/env bash
# capsule's main job in one command: install, build a small rootfs from the host's
# busybox, and run a program in a sandbox that shows what it can see.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node scripts/demo.mjs
