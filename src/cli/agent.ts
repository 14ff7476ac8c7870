// `tollgate agent`: the node daemon (src/agent/main.ts). Only --help is handled here; every
// other flag is parsed by the agent's own configuration loader (unknown flags → exit 2).
import { SETTINGS, type Setting, type SettingType } from "../config/settings.js";
import { stdio } from "./args.js";

const PLACEHOLDER: Record<SettingType<unknown>["kind"], string> = {
  string: "VALUE",
  path: "PATH",
  bool: "BOOL",
  int: "N",
  number: "X",
  oneOf: "VALUE",
  list: "VALUE",
  custom: "VALUE",
};

/** `--flag VALUE` and what it sets, from the settings table (booleans whose default is true take BOOL). */
export const AGENT_FLAGS: Array<[flag: string, key: string]> = [
  [
    "--config FILE",
    "configuration file (default $TOLLGATE_CONFIG, else /etc/tollgate/agent.yaml if present)",
  ],
  ...(SETTINGS as readonly Setting[]).flatMap((s): Array<[string, string]> => {
    if (!s.flag) return [];
    const placeholder =
      s.type.kind === "bool"
        ? s.default === true
          ? " BOOL"
          : ""
        : ` ${s.type.values?.join("|") ?? PLACEHOLDER[s.type.kind]}`;
    const repeat = s.type.kind === "list" ? " (repeatable, or comma-separated)" : "";
    return [[`--${s.flag}${placeholder}`, `${s.key}${repeat}: ${s.doc}`]];
  }),
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
