// The agent container as deploy/base/daemonset.yaml ships it, for tests and benchmarks that
// must run the agent the way nodes do (same Node flags, same memory limit).
import { readFileSync } from "node:fs";
import path from "node:path";
import { parseAllDocuments } from "yaml";
import { repoRoot } from "./tools.js";

interface ContainerSpec {
  name?: string;
  command?: string[];
  resources?: { limits?: { memory?: string } };
}

export function shippedAgentContainer(): ContainerSpec {
  const file = path.join(repoRoot, "deploy", "base", "daemonset.yaml");
  for (const d of parseAllDocuments(readFileSync(file, "utf8"))) {
    const o = d.toJS() as { spec?: { template?: { spec?: { containers?: ContainerSpec[] } } } };
    const agent = o?.spec?.template?.spec?.containers?.find((c) => c.name === "agent");
    if (agent) return agent;
  }
  throw new Error(`no agent container in ${file}`);
}

/** The Node options the DaemonSet starts the agent with (between `node` and the script). */
export function shippedAgentNodeFlags(): string[] {
  const cmd = shippedAgentContainer().command ?? [];
  if (cmd[0] !== "node") throw new Error(`agent command does not start with node: ${JSON.stringify(cmd)}`);
  const flags: string[] = [];
  for (const a of cmd.slice(1)) {
    if (!a.startsWith("--")) break;
    flags.push(a);
  }
  return flags;
}
