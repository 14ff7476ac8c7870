// Packages the pull verifier as a self-contained executable for hosts without Node.js:
// a Node.js single-executable application (SEA: `node --experimental-sea-config` + postject;
// Node 24.22 has no `--build-sea` yet). Run it with the project's Node 24 (scripts/node-env.sh):
// the binary it injects into is the running node unless --node says otherwise. The result,
// dist/tollgate-verify (~135 MB: it is the Node 24 binary with the bundled verifier
// injected), runs with an empty environment and needs nothing else on the host but glibc
// (>= 2.28). SEA only runs CommonJS, so the verifier is bundled a second time as CJS;
// the ESM dist/tollgate-verify.mjs stays for hosts that have node.
//
// Start-up is the verifier's cost (one process per pull), so the binary's main script is only
// the fast path (args, JSON sidecar, ask the agent, print): src/pull-verifier/slow.ts (YAML
// config loader, in-process verification, ~6 MB bundled) is a separate SEA asset, compiled
// only when run.ts imports it. The main script carries V8's code cache (useCodeCache).
// Measured in bench/pull-verifier.ts; a startup snapshot (useSnapshot) was not faster there.
//
// Usage: node scripts/package-verifier.mjs [--node PATH] [--out PATH]
//   --node  the node binary to inject into (default: the one running this script)
//   --out   output path (default: dist/tollgate-verify)
import { mkdirSync } from "node:fs";
import path from "node:path";
import { build } from "esbuild";
import { CJS_BUNDLE, embeddedNode, seaArgs, writeSea } from "./sea.mjs";

const repo = path.resolve(import.meta.dirname, "..");
const { nodeBin, out } = seaArgs(process.argv.slice(2), {
  node: process.execPath,
  out: path.join(repo, "dist", "tollgate-verify"),
});
const work = path.join(repo, "dist", ".sea");
const bundle = path.join(repo, "dist", "tollgate-verify.cjs");
const slowBundle = path.join(work, "slow.cjs");
const SLOW_ASSET = "slow.cjs";

// The verifier must embed a supported Node (the project's runtime is 24): refuse to package
// an older runtime by accident (e.g. the machine's own node instead of .cache/node).
const embedded = embeddedNode(nodeBin, "package-verifier");

mkdirSync(work, { recursive: true });
const cjs = CJS_BUNDLE;
// The slow path: everything inlined (SEA's require() only reaches built-in modules).
await build({ ...cjs, entryPoints: [path.join(repo, "src/pull-verifier/slow.ts")], outfile: slowBundle });
// The fast path: run.ts's `import("./slow.js")` becomes a module that evaluates the asset.
const slowFromAsset = {
  name: "slow-from-sea-asset",
  setup(b) {
    b.onResolve({ filter: /^\.\/slow\.js$/ }, () => ({ path: "slow", namespace: "sea-asset" }));
    b.onLoad({ filter: /.*/, namespace: "sea-asset" }, () => ({
      loader: "js",
      contents: `
        const { getAsset } = require("node:sea");
        const { compileFunction } = require("node:vm");
        const fn = compileFunction(getAsset(${JSON.stringify(SLOW_ASSET)}, "utf8"),
          ["exports", "require", "module", "__filename", "__dirname"], { filename: "tollgate-verify/${SLOW_ASSET}" });
        const m = { exports: {} };
        fn(m.exports, require, m, "tollgate-verify/${SLOW_ASSET}", "tollgate-verify");
        module.exports = m.exports;`,
    }));
  },
};
await build({
  ...cjs,
  entryPoints: [path.join(repo, "src/pull-verifier/main.ts")],
  outfile: bundle,
  plugins: [slowFromAsset],
});

const mb = writeSea({
  who: "package-verifier",
  nodeBin,
  main: bundle,
  assets: { [SLOW_ASSET]: slowBundle },
  out,
  work,
});
console.log(`package-verifier: ${path.relative(repo, out)} (Node ${embedded.slice(1)} SEA, ${mb} MB)`);
