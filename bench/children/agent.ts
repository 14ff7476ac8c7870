// The real agent process (src/agent/main.ts), bundled for the benchmarks so they do not
// depend on the CLI dispatcher: `node agent.mjs --config <file>`.
//
// With --resident (the CreateContainer benchmark): SIGUSR2 stops the running agent (every
// component: NRI unregistered, event subscription and sockets closed, as on SIGTERM) and,
// sent again, starts a new one in the same process from the same configuration. The
// benchmark takes the agent out of containerd's path between its blocks that way without a
// fresh process each time: V8 optimizes the per-create code only after thousands of calls,
// and a node's agent, which runs for days, has long done so.
import { loadConfig } from "../../src/config/agent.js";
import { agentLogger, agentMain, startAgent } from "../../src/agent/main.js";
import { keepResident } from "../lib/resident.js";

const crash = (e: unknown) => {
  process.stderr.write(`bench agent crashed: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
};

async function resident(argv: string[]): Promise<void> {
  const cfg = await loadConfig({ argv, env: process.env });
  const { log, output } = agentLogger(cfg);
  keepResident({
    first: await startAgent(cfg, log),
    start: () => startAgent(cfg, log),
    stopped: () => log.info({ bench: "stopped" }, "bench: agent stopped"),
    started: () => log.info({ bench: "started" }, "bench: agent started"),
    beforeExit: () => output.drain(2_000),
    fail: crash,
  });
}

const argv = process.argv.slice(2);
if (argv[0] === "--resident") resident(argv.slice(1)).catch(crash);
else agentMain(argv).then((code) => process.exit(code), crash);
