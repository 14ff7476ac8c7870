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
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { build } from "esbuild";

const repo = path.resolve(import.meta.dirname, "..");
const args = process.argv.slice(2);
function flag(name, def) {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = args[i + 1];
  if (!v) throw new Error(`--${name} needs a value`);
  return path.resolve(v);
}
const nodeBin = flag("node", process.execPath);
const out = flag("out", path.join(repo, "dist", "tollgate-verify"));
const work = path.join(repo, "dist", ".sea");
const bundle = path.join(repo, "dist", "tollgate-verify.cjs");
const slowBundle = path.join(work, "slow.cjs");
const SLOW_ASSET = "slow.cjs";
const blob = path.join(work, "sea-prep.blob");
const seaConfig = path.join(work, "sea-config.json");
// The fuse string postject flips; it is fixed in Node's source (src/node_sea.cc).
const FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";

// The verifier must embed a supported Node (the project's runtime is 24): refuse to package
// an older runtime by accident (e.g. the machine's own node instead of .cache/node).
const embedded = execFileSync(nodeBin, ["--version"], { encoding: "utf8" }).trim();
if (Number(embedded.slice(1).split(".")[0]) < 24)
  throw new Error(
    `package-verifier: ${nodeBin} is Node ${embedded}; the verifier must embed Node 24 (source scripts/node-env.sh)`,
  );

mkdirSync(work, { recursive: true });
const cjs = {
  bundle: true,
  platform: "node",
  target: "node24",
  format: "cjs",
  legalComments: "none",
  // As scripts/build.mjs: less source text to load and keep (identifiers kept).
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: "error",
};
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

writeFileSync(
  seaConfig,
  JSON.stringify({
    main: bundle,
    output: blob,
    disableExperimentalSEAWarning: true,
    useCodeCache: true,
    assets: { [SLOW_ASSET]: slowBundle },
  }),
);
try {
  // Node 24 reports "Wrote single executable preparation blob…" on stderr: shown only on failure.
  execFileSync(nodeBin, ["--experimental-sea-config", seaConfig], { stdio: ["ignore", "ignore", "pipe"] });
} catch (e) {
  throw new Error(`package-verifier: --experimental-sea-config failed: ${e.stderr?.toString() || e.message}`);
}

// Write next to the target and rename: a half-written binary never has the final name.
const tmp = `${out}.tmp-${process.pid}`;
mkdirSync(path.dirname(out), { recursive: true });
copyFileSync(nodeBin, tmp);
chmodSync(tmp, 0o755);
try {
  execFileSync(
    process.execPath,
    [
      path.join(repo, "node_modules/postject/dist/cli.js"),
      tmp,
      "NODE_SEA_BLOB",
      blob,
      "--sentinel-fuse",
      FUSE,
    ],
    // postject warns "Can't find string offset for section name '.note.100'" on Linux: harmless.
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  // Renamed as a fresh copy: postject rewrote the file in place, and the pages it left in the
  // page cache made each run of that very file map ~30 MB more of it (measured, Linux 6.18);
  // a copy (what `tollgate install` does on every node anyway) starts like a plain node.
  copyFileSync(tmp, `${tmp}.copy`);
  renameSync(`${tmp}.copy`, out);
  rmSync(tmp, { force: true });
} catch (e) {
  rmSync(tmp, { force: true });
  rmSync(`${tmp}.copy`, { force: true });
  throw new Error(`package-verifier: postject failed: ${e.stderr?.toString() || e.message}`);
}
rmSync(work, { recursive: true, force: true });
const mb = (statSync(out).size / 1e6).toFixed(0);
console.log(`package-verifier: ${path.relative(repo, out)} (Node ${embedded.slice(1)} SEA, ${mb} MB)`);
