// Packages the pull verifier as a self-contained executable for hosts without Node.js:
// a Node.js single-executable application (SEA: `node --experimental-sea-config` + postject;
// Node 24.22 has no `--build-sea` yet). Run it with the project's Node 24 (scripts/node-env.sh):
// the binary it injects into is the running node unless --node says otherwise. The result,
// dist/tollgate-verify (~135 MB: it is the Node 24 binary with the bundled verifier
// injected), runs with an empty environment and needs nothing else on the host but glibc
// (>= 2.28). SEA only runs CommonJS, so the verifier is bundled a second time as one
// CJS file (dist/tollgate-verify.cjs); the ESM dist/tollgate-verify.mjs stays for hosts
// that have node.
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
await build({
  entryPoints: [path.join(repo, "src/pull-verifier/main.ts")],
  outfile: bundle,
  bundle: true,
  platform: "node",
  target: "node24",
  format: "cjs",
  legalComments: "none",
  // Dynamic imports (the in-process fallback, the config loader) are inlined; SEA's
  // require() only reaches built-in modules, so nothing may stay external.
  logLevel: "error",
});

writeFileSync(
  seaConfig,
  JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true, useCodeCache: false }),
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
  renameSync(tmp, out);
} catch (e) {
  rmSync(tmp, { force: true });
  throw new Error(`package-verifier: postject failed: ${e.stderr?.toString() || e.message}`);
}
rmSync(work, { recursive: true, force: true });
const mb = (statSync(out).size / 1e6).toFixed(0);
console.log(`package-verifier: ${path.relative(repo, out)} (Node ${embedded.slice(1)} SEA, ${mb} MB)`);
