// The real agent process (src/agent/main.ts agentMain), bundled for the benchmarks so they
// do not depend on the CLI dispatcher: `node agent.mjs --config <file>`.
import { agentMain } from "../../src/agent/main.js";

agentMain(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench agent crashed: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
