// Node.js single-executable applications (SEA: `node --experimental-sea-config` + postject;
// Node 24.22 has no `--build-sea` yet), shared by scripts/package-verifier.mjs and
// scripts/package-cli.mjs. The result is the given node binary with a CommonJS bundle (and
// assets) injected: it runs with an empty environment and needs nothing on the host but
// glibc (>= 2.28, like the official Node.js 24 builds).
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";

// The fuse string postject flips; it is fixed in Node's source (src/node_sea.cc).
const FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";

/** esbuild options for a SEA's CommonJS bundle (SEA runs only CommonJS; its require() reaches
 * only built-in modules, so everything is inlined). As scripts/build.mjs: whitespace and
 * comments out, identifiers kept. */
export const CJS_BUNDLE = {
  bundle: true,
  platform: "node",
  target: "node24",
  format: "cjs",
  legalComments: "none",
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: "error",
};

/** Parses `--node PATH` / `--out PATH` (resolved), with defaults. */
export function seaArgs(argv, defaults) {
  const flag = (name, def) => {
    const i = argv.indexOf(`--${name}`);
    if (i < 0) return def;
    const v = argv[i + 1];
    if (!v) throw new Error(`--${name} needs a value`);
    return path.resolve(v);
  };
  return { nodeBin: flag("node", defaults.node), out: flag("out", defaults.out) };
}

/** The node binary's version, refusing anything older than the project's Node 24. */
export function embeddedNode(nodeBin, who) {
  const v = execFileSync(nodeBin, ["--version"], { encoding: "utf8" }).trim();
  if (Number(v.slice(1).split(".")[0]) < 24)
    throw new Error(`${who}: ${nodeBin} is Node ${v}; it must embed Node 24 (source scripts/node-env.sh)`);
  return v;
}

/**
 * Writes `out`: `nodeBin` with the SEA blob of `main` (a CommonJS bundle) and `assets`
 * ({name: file}) injected. `work` is a scratch directory (removed afterwards).
 */
export function writeSea({ who, nodeBin, main, assets = {}, out, work, useCodeCache = true }) {
  mkdirSync(work, { recursive: true });
  const blob = path.join(work, "sea-prep.blob");
  const seaConfig = path.join(work, "sea-config.json");
  writeFileSync(
    seaConfig,
    JSON.stringify({ main, output: blob, disableExperimentalSEAWarning: true, useCodeCache, assets }),
  );
  try {
    // Node 24 reports "Wrote single executable preparation blob…" on stderr: shown only on failure.
    execFileSync(nodeBin, ["--experimental-sea-config", seaConfig], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (e) {
    throw new Error(`${who}: --experimental-sea-config failed: ${e.stderr?.toString() || e.message}`);
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
        path.join(import.meta.dirname, "..", "node_modules/postject/dist/cli.js"),
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
    throw new Error(`${who}: postject failed: ${e.stderr?.toString() || e.message}`);
  }
  rmSync(work, { recursive: true, force: true });
  return (statSync(out).size / 1e6).toFixed(0);
}
