#!/usr/bin/env bash
# The Tollgate demo (README): on a Debian 12 machine as root, installs what it needs
# (scripts/install-deps.sh: containerd 2.1, docker-registry, cosign, notation… unpacked into
# .cache/), installs npm packages if needed, builds the agent and the self-contained pull
# verifier, then runs demo/run.ts: a private containerd + registry + agent, allowed and
# denied pulls and container creations in two namespaces, and a full teardown.
# Runs on the pinned Node.js 24 that install-deps fetches into .cache/node (the machine's
# own Node, e.g. Debian 12's 18, only runs npm to fetch it). Exit code 0 = every outcome
# was what the design promises.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "demo: run as root (containerd and runc need it): sudo bash scripts/demo.sh" >&2
  exit 2
fi
echo "demo: installing dependencies (first run downloads Node.js 24 and Debian packages; later runs take a second)" >&2
bash scripts/install-deps.sh
# shellcheck source=scripts/node-env.sh
source scripts/node-env.sh
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "demo: npm ci" >&2
  npm ci --no-audit --no-fund >/dev/null
fi
echo "demo: building dist/ (agent, pull verifier, self-contained verifier)" >&2
node scripts/build.mjs >/dev/null
if [ ! -x dist/tollgate-verify ] || [ -n "$(find src package-lock.json -newer dist/tollgate-verify -print -quit)" ]; then
  node scripts/package-verifier.mjs >/dev/null 2>&1 || node scripts/package-verifier.mjs
fi
exec node --import tsx demo/run.ts "$@"
