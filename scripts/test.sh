#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need, type-checks, lints,
# builds, then runs every vitest project (unit + integration + e2e on a real containerd).
# Run as root on Debian 12; everything runs on the pinned Node 24 that install-deps puts in
# .cache/node. Extra arguments go to vitest (e.g. a file filter).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# shellcheck source=scripts/node-env.sh
source scripts/node-env.sh
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npx tsc -p tsconfig.json --noEmit
npx biome lint --diagnostic-level=error .
node scripts/build.mjs
mkdir -p .cache
status=0
npx vitest run --reporter=default --reporter=json --outputFile=.cache/vitest-results.json "$@" || status=$?
node scripts/test-summary.mjs .cache/vitest-results.json || true
exit "$status"
