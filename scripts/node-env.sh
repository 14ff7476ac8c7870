# Sourced by the scripts that run node/npm/npx (test, demo, bench) after install-deps.sh:
# puts the pinned Node.js 24 from .cache/node first on PATH, so `node`, and `npm`/`npx`
# (the machine's own npm scripts start with `#!/usr/bin/env node`), child processes the
# tests spawn and the SEA build all run on it, whatever Node the machine itself has.
tollgate_node_bin="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.cache/node/bin"
if [ ! -x "$tollgate_node_bin/node" ]; then
  echo "node-env: $tollgate_node_bin/node is missing; run scripts/install-deps.sh first" >&2
  return 1 2>/dev/null || exit 1
fi
export PATH="$tollgate_node_bin:$PATH"
unset tollgate_node_bin
