#!/usr/bin/env bash
# The whole test suite, from a clean clone: install what is needed, then type check,
# lint and run every test (the tests run the real sandbox, so as root), then the example judge.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm test
# The example judge (examples/judge/): every language's submissions, each verdict checked.
npm run --silent example:judge
