// Bundles the entry points with esbuild into dist/: the agent/CLI and the pull verifier.
// The pull verifier runs once per pull, so its fast path (ask the agent) must stay small:
// it is one file, and its lazily imported in-process fallback (the whole engine, policy
// sources) lands in separate chunks that are only loaded when used (scripts/verifier-esm.mjs).
import { existsSync, rmSync } from "node:fs";
import path from "node:path";
import { build } from "esbuild";
import { verifierEsmBuilds } from "./verifier-esm.mjs";

const common = {
  bundle: true,
  platform: "node",
  target: "node24",
  format: "esm",
  sourcemap: "linked",
  legalComments: "none",
  // Whitespace and comments out, identifiers kept (stack traces stay readable; the .map files
  // map back). V8 keeps every loaded source text in memory for lazy compilation, as one byte
  // per character only while it is all Latin-1: one "—" in a bundled comment made the 8 MB
  // agent bundle a 16 MB string. Measured: agent RSS after load 86 → 73 MB (bench memory).
  minifyWhitespace: true,
  minifySyntax: true,
  // CommonJS dependencies bundled into ESM still call require().
  banner: {
    js: "import { createRequire as __tgCreateRequire } from 'node:module'; const require = __tgCreateRequire(import.meta.url);",
  },
  logLevel: "warning",
  // @azure/identity imports `open` lazily for its interactive browser login, which the agent
  // never uses; bundled, its regex of curly quotes made the whole agent bundle a two-byte
  // string in V8 (see above).
  external: ["open"],
};

const built = [];
if (existsSync("src/cli/main.ts")) {
  // Split too: each subcommand, and what the agent imports only when configured (the
  // Kubernetes source, Azure, Key Vault, TUF, YAML), is a chunk loaded on first use. V8 keeps
  // the source of every loaded module in memory, so what is never imported costs nothing.
  rmSync("dist/chunks", { recursive: true, force: true });
  await build({
    ...common,
    entryPoints: { tollgate: "src/cli/main.ts" },
    outdir: "dist",
    outExtension: { ".js": ".mjs" },
    splitting: true,
    chunkNames: "chunks/[name]-[hash]",
    banner: { js: `#!/usr/bin/env node\n${common.banner.js}` },
  });
  built.push("dist/tollgate.mjs (+ dist/chunks/)");
}
if (existsSync("src/pull-verifier/main.ts")) {
  // The fast path is one file; what it imports only when needed is split into verify-chunks/
  // (scripts/verifier-esm.mjs).
  rmSync("dist/verify-chunks", { recursive: true, force: true });
  for (const options of verifierEsmBuilds({
    repo: path.resolve(import.meta.dirname, ".."),
    outdir: "dist",
    common,
  }))
    await build(options);
  built.push("dist/tollgate-verify.mjs (+ dist/verify-chunks/)");
}
console.log(`build: ${built.join(", ") || "nothing to build yet"}`);
