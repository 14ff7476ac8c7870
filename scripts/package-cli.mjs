// Packages the whole `tollgate` CLI (doctor, verify, policy, install, agent) as a
// self-contained executable, like the pull verifier (scripts/sea.mjs): for nodes and laptops
// without Node.js, e.g. `tollgate doctor` run on a node (docs/quickstart.md). Run it with the
// project's Node 24 (scripts/node-env.sh); the binary it injects into is the running node
// unless --node says otherwise. The result, dist/tollgate (~135 MB: the Node 24 binary with
// the CLI bundled as CommonJS — SEA runs only CommonJS — and V8's code cache), needs nothing
// on the host but glibc (>= 2.28). dist/tollgate.mjs stays for hosts that have node.
//
// Usage: node scripts/package-cli.mjs [--node PATH] [--out PATH]
//   --node  the node binary to inject into (default: the one running this script)
//   --out   output path (default: dist/tollgate)
import path from "node:path";
import { build } from "esbuild";
import { CJS_BUNDLE, embeddedNode, seaArgs, writeSea } from "./sea.mjs";

const repo = path.resolve(import.meta.dirname, "..");
const { nodeBin, out } = seaArgs(process.argv.slice(2), {
  node: process.execPath,
  out: path.join(repo, "dist", "tollgate"),
});
const embedded = embeddedNode(nodeBin, "package-cli");
const work = path.join(repo, "dist", ".sea-cli");
const bundle = path.join(work, "tollgate.cjs");

await build({
  ...CJS_BUNDLE,
  entryPoints: [path.join(repo, "src/cli/main.ts")],
  outfile: bundle,
  // import.meta does not exist in CommonJS: the CLI's own location is the binary's (install.ts looks for the
  // verifier next to it, as dist/tollgate-verify is next to dist/tollgate).
  define: { "import.meta.url": "__tgSelfUrl" },
  banner: { js: 'const __tgSelfUrl = require("node:url").pathToFileURL(process.execPath).href;' },
});

const mb = writeSea({ who: "package-cli", nodeBin, main: bundle, out, work });
console.log(`package-cli: ${path.relative(repo, out)} (Node ${embedded.slice(1)} SEA, ${mb} MB)`);
