// The ESM pull verifier's esbuild options, shared by scripts/build.mjs and the benchmark's
// load breakdown. containerd starts one verifier process per pull, so its fast path (args,
// sidecar, ask the agent, print) is one self-contained file: each extra module file is a
// resolve, read and compile in Node's ES module loader (~4.5 ms for the five shared chunks
// esbuild's code splitting made, bench: pull verifier start-up). What the fast path imports
// only when it must (LAZY) is a second build, split into dist/verify-chunks/; the few small
// modules both builds use are bundled into each.
import path from "node:path";

/** Dynamic imports of the fast path, by the source file they name → the file they load. */
export const LAZY = {
  "src/pull-verifier/slow.ts": "verify-chunks/slow",
  "src/decision/pull-scope.ts": "verify-chunks/pull-scope",
};

/**
 * [the lazy build, the fast entry's build], both writing into `outdir`. Bundled CommonJS
 * dependencies call require(), so each file defines it; the fast file without an ES import
 * of node:module (an ES import of a builtin builds its whole namespace).
 */
export function verifierEsmBuilds({ repo, outdir, common }) {
  const lazyEntries = Object.fromEntries(
    Object.entries(LAZY).map(([src, out]) => [out, path.join(repo, src)]),
  );
  const lazyBuild = {
    ...common,
    entryPoints: lazyEntries,
    outdir,
    banner: {
      js: "import { createRequire as __tgCreateRequire } from 'node:module'; const require = __tgCreateRequire(import.meta.url);",
    },
    outExtension: { ".js": ".mjs" },
    splitting: true,
    chunkNames: "verify-chunks/[name]-[hash]",
  };
  // The fast entry loads a LAZY module by its built path; any other dynamic import of our
  // own code would be inlined into every pull's start-up, so it fails the build instead.
  const lazyImports = {
    name: "verifier-lazy-imports",
    setup(b) {
      b.onResolve({ filter: /^\.\.?\// }, (args) => {
        if (args.kind !== "dynamic-import" || args.path.endsWith(".json")) return undefined;
        const src = path.relative(repo, path.resolve(args.resolveDir, args.path)).replace(/\.js$/, ".ts");
        const out = LAZY[src];
        if (out) return { path: `./${out}.mjs`, external: true };
        return {
          errors: [
            {
              text: `${args.path}: a lazy import of the pull verifier that is not in LAZY (scripts/verifier-esm.mjs)`,
            },
          ],
        };
      });
    },
  };
  const fastBuild = {
    ...common,
    entryPoints: { "tollgate-verify": path.join(repo, "src/pull-verifier/main.ts") },
    outdir,
    banner: {
      js: '#!/usr/bin/env node\nconst require = process.getBuiltinModule("node:module").createRequire(import.meta.url);',
    },
    outExtension: { ".js": ".mjs" },
    plugins: [lazyImports],
  };
  return [lazyBuild, fastBuild];
}
