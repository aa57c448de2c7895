#!/usr/bin/env bash
# The whole test suite, from a clean clone: install what is needed, then type check,
# lint and run every test (the tests run the real sandbox, so as root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm test
