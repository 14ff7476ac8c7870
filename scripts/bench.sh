#!/usr/bin/env bash
# The benchmark command (`npm run bench`): works on a fresh clone as root — installs the
# test tools, Node 24 and npm packages if needed, then runs bench/run.ts, which rebuilds dist/ and
# regenerates docs/benchmarks.md. Takes a few minutes; not part of the test command.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# shellcheck source=scripts/node-env.sh
source scripts/node-env.sh
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
exec node --import tsx bench/run.ts "$@"
