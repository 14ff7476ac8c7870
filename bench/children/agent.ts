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
import { type AgentHandle, agentLogger, agentMain, startAgent } from "../../src/agent/main.js";

const crash = (e: unknown) => {
  process.stderr.write(`bench agent crashed: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
};

async function resident(argv: string[]): Promise<void> {
  const cfg = await loadConfig({ argv, env: process.env });
  const { log, output } = agentLogger(cfg);
  let agent: AgentHandle | undefined = await startAgent(cfg, log);
  // Stopped, the agent holds no handle that keeps the process alive: this does.
  setInterval(() => {}, 1 << 30);
  let busy = Promise.resolve();
  process.on("SIGUSR2", () => {
    busy = busy.then(async () => {
      if (agent) {
        await agent.stop();
        agent = undefined;
        log.info({ bench: "stopped" }, "bench: agent stopped");
      } else {
        agent = await startAgent(cfg, log);
        log.info({ bench: "started" }, "bench: agent started");
      }
    }, crash);
  });
  process.on("SIGTERM", () => {
    busy
      .then(() => agent?.stop())
      .then(() => output.drain(2_000))
      .then(() => process.exit(0), crash);
  });
}

const argv = process.argv.slice(2);
if (argv[0] === "--resident") resident(argv.slice(1)).catch(crash);
else agentMain(argv).then((code) => process.exit(code), crash);
