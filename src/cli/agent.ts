// `tollgate agent`: the node daemon (src/agent/main.ts). Only --help is handled here; every
// other flag is parsed by the agent's own configuration loader (unknown flags → exit 2).
import { stdio } from "./args.js";

export const AGENT_FLAGS: Array<[flag: string, key: string]> = [
  [
    "--config FILE",
    "configuration file (default $TOLLGATE_CONFIG, else /etc/tollgate/agent.yaml if present)",
  ],
  ["--nri-socket PATH", "nri.socket"],
  ["--nri-pre-launched", "nri.preLaunched"],
  ["--plugin-name NAME", "nri.pluginName"],
  ["--plugin-index NN", "nri.pluginIndex"],
  ["--evict-on-sync", "nri.evictOnSync"],
  ["--nri-enabled BOOL", "nri.enabled"],
  ["--containerd-address PATH", "containerd.address"],
  ["--containerd-namespace NS", "containerd.namespace"],
  ["--api-socket PATH", "api.socket"],
  ["--policy-source files|kubernetes", "policy.source"],
  ["--policy-dir DIR", "policy.dir"],
  ["--kubeconfig FILE", "policy.kubeconfig"],
  ["--default-policy NAME", "policy.defaultPolicy"],
  ["--exempt-namespace NS", "policy.exemptNamespaces (repeatable, or comma-separated)"],
  ["--exempt-image PATTERN", "policy.exemptImages (repeatable, or comma-separated)"],
  ["--break-glass-max-seconds N", "policy.breakGlassMaxSeconds"],
  ["--budget-fraction F", "gate.budgetFraction"],
  ["--pull-verifier-mode MODE", "pullVerifier.mode (default-policy | any-policy-in-use)"],
  ["--certs-dir DIR", "registry.certsDir"],
  ["--docker-config FILE", "registry.dockerConfigs (repeatable, or comma-separated)"],
  ["--log-level LEVEL", "log.level"],
  ["--metrics-listen HOST:PORT", "metrics.listen (empty disables)"],
];

export function agentHelp(): string {
  const w = Math.max(...AGENT_FLAGS.map(([f]) => f.length));
  return [
    "Usage: tollgate agent [--config FILE] [flags]",
    "",
    "Runs the node agent: the NRI create-time gate, the local API the pull verifier asks,",
    "metrics and health. Settings come from the configuration file, overridden by",
    "TOLLGATE_* environment variables, overridden by flags (each sets the key shown;",
    "see docs/configuration.md). Flags take --flag value or --flag=value.",
    "",
    "Flags:",
    ...AGENT_FLAGS.map(([f, k]) => `  ${f.padEnd(w)}  ${k}`),
    `  ${"-h, --help".padEnd(w)}  show this help`,
    "",
    "Exit codes:",
    "  0  stopped cleanly (SIGTERM / SIGINT)",
    "  1  failed to start, or did not stop within 10 s",
    "  2  invalid configuration or flags",
    "",
  ].join("\n");
}

export async function agentCommand(argv: readonly string[], io = stdio): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    io.out(agentHelp());
    return 0;
  }
  const { agentMain } = await import("../agent/main.js");
  return agentMain([...argv]);
}
