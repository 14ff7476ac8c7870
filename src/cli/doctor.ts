import { existsSync } from "node:fs";
import {
  type AgentConfig,
  ConfigError,
  DEFAULT_CONFIG_PATH,
  defaultConfig,
  loadConfig,
} from "../config/agent.js";
import {
  type CommandSpec,
  EXIT,
  OUTPUT_FLAG,
  type Parsed,
  runCommand,
  stdio,
  str,
  UsageError,
} from "./args.js";
import { checkAgent } from "./doctor-agent.js";
import { checkBindir } from "./doctor-bindir.js";
import { checkConfigFiles, checkVersion } from "./doctor-containerd.js";
import { checkCredentials } from "./doctor-credentials.js";
import { checkCri } from "./doctor-cri.js";
import { DEFAULTS, type Finding } from "./doctor-finding.js";
import { checkNri } from "./doctor-nri.js";
import { checkPulls } from "./doctor-pulls.js";
import { json } from "./output.js";

export { DEFAULTS, type Finding, type Severity } from "./doctor-finding.js";

export const doctorSpec: CommandSpec = {
  name: "tollgate doctor",
  usage: "tollgate doctor [--containerd-config FILE] [--agent-socket PATH] [--config FILE] [flags]",
  summary:
    "Checks this node: the containerd version, NRI, the image verifier bin_dir, CRI settings that\n" +
    "make containerd pull without the transfer service (and so without any verifier), and the\n" +
    "agent's health and loaded policies. Every finding comes with a fix.",
  positionals: { min: 0, max: 0, name: "" },
  flags: [
    {
      name: "containerd-config",
      type: "string",
      value: "FILE",
      help: `containerd configuration (default ${DEFAULTS.containerdConfig}); its imports are followed`,
    },
    {
      name: "agent-socket",
      type: "string",
      value: "PATH",
      help: "the agent's local API socket (default: from the agent configuration, else /run/tollgate/agent.sock)",
    },
    {
      name: "config",
      type: "string",
      value: "FILE",
      help: `agent configuration to cross-check (default ${DEFAULT_CONFIG_PATH} when present)`,
    },
    {
      name: "containerd-bin",
      type: "string",
      value: "PATH",
      help: "containerd binary asked for its version (default: containerd on PATH)",
    },
    {
      name: "image",
      type: "string",
      value: "REF",
      help: "also tell which registry credential provider would serve this image",
    },
    OUTPUT_FLAG,
  ],
  details: `Exit codes:
  0  no finding of severity error (warnings may remain)
  1  at least one finding of severity error
  2  usage error (bad flags, unreadable or invalid agent configuration given with --config)`,
};

type Io = typeof stdio;

export function doctorMain(argv: readonly string[], io: Io = stdio): Promise<number> {
  return runCommand(doctorSpec, argv, (p) => doctor(p, io), io);
}

async function doctor(p: Parsed, io: Io): Promise<number> {
  let agentCfg: AgentConfig | undefined;
  const cfgPath = str(p, "config");
  if (cfgPath !== undefined || existsSync(DEFAULT_CONFIG_PATH)) {
    try {
      agentCfg = await loadConfig({ ...(cfgPath ? { path: cfgPath } : {}) });
    } catch (e) {
      if (e instanceof ConfigError) throw new UsageError(e.message);
      throw e;
    }
  }
  const findings = await runChecks({
    containerdConfig: str(p, "containerd-config") ?? DEFAULTS.containerdConfig,
    agentSocket: str(p, "agent-socket") ?? agentCfg?.api.socket ?? defaultConfig().api.socket,
    containerdBin: str(p, "containerd-bin") ?? "containerd",
    agentConfig: agentCfg,
    ...(str(p, "image") !== undefined ? { image: str(p, "image") } : {}),
  });
  const errors = findings.filter((f) => f.severity === "error").length;
  const warnings = findings.filter((f) => f.severity === "warning").length;
  if (str(p, "output") === "json") io.out(json({ ok: errors === 0, errors, warnings, findings }));
  else io.out(render(findings, errors, warnings));
  return errors > 0 ? EXIT.FAIL : EXIT.OK;
}

export interface DoctorInput {
  containerdConfig: string;
  agentSocket: string;
  containerdBin: string;
  agentConfig?: AgentConfig;
  /** `--image`: report which credential provider serves it. */
  image?: string;
}

export async function runChecks(input: DoctorInput): Promise<Finding[]> {
  const out: Finding[] = [];
  const add = (f: Finding) => out.push(f);
  await checkVersion(input.containerdBin, add);
  const cfg = checkConfigFiles(input.containerdConfig, add);
  checkNri(cfg, input.agentConfig, add);
  checkBindir(cfg, input.agentConfig, add);
  checkCri(cfg, add);
  checkCredentials(input.agentConfig, input.image, add);
  checkPulls(cfg, input.agentConfig, add);
  await checkAgent(input.agentSocket, add);
  return out;
}

// ---------------------------------------------------------------------------------------

function render(findings: Finding[], errors: number, warnings: number): string {
  const lines: string[] = [];
  for (const f of findings) {
    lines.push(`${`[${f.severity}]`.padEnd(10)}${f.check.padEnd(11)}${f.message}`);
    if (f.fix && f.severity !== "ok") lines.push(`${" ".repeat(21)}fix: ${f.fix}`);
  }
  lines.push("", `${errors} error(s), ${warnings} warning(s)`);
  return `${lines.join("\n")}\n`;
}
