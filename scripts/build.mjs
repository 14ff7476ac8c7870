// Bundles the entry points with esbuild into dist/: the agent/CLI and the pull verifier.
// The pull verifier is bundled separately with a small import graph: it runs once per pull.
import { existsSync } from "node:fs";
import { build } from "esbuild";

const entries = [
  { in: "src/cli/main.ts", out: "dist/tollgate.mjs" },
  { in: "src/pull-verifier/main.ts", out: "dist/tollgate-verify.mjs" },
].filter((e) => existsSync(e.in));

for (const e of entries) {
  await build({
    entryPoints: [e.in],
    outfile: e.out,
    bundle: true,
    platform: "node",
    target: "node20",
    format: "esm",
    sourcemap: "linked",
    legalComments: "none",
    // CommonJS dependencies bundled into ESM still call require().
    banner: {
      js: "#!/usr/bin/env node\nimport { createRequire as __tgCreateRequire } from 'node:module'; const require = __tgCreateRequire(import.meta.url);",
    },
    logLevel: "warning",
  });
}
console.log(`build: ${entries.map((e) => e.out).join(", ") || "nothing to build yet"}`);
