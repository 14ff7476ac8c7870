// `tollgate install`: flags → src/installer → a report (table or JSON).
//
// Exit codes: 0 installed (warnings are printed but do not fail), 2 bad flags or agent
// configuration, 3 installation failed (binary, host files, containerd config),
// 4 the requested containerd restart failed (everything else was installed).
import { errorMessage, UsageError } from "../base/errors.js";
import { parseFlags } from "../base/flags.js";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pkg from "../../package.json";
import { ConfigError, DEFAULT_CONFIG_PATH, loadConfig } from "../config/agent.js";
import {
  DEFAULT_BIN_DIR,
  DEFAULT_DROPIN,
  DEFAULT_MAIN_CONFIG,
  DEFAULT_VERIFIER_NAME,
  InstallError,
  type InstallOptions,
  type InstallReport,
  install,
  RESTART_STRATEGIES,
  type RestartStrategy,
  supportsRequiredPlugins,
} from "../installer/index.js";

/** Pods carrying this annotation ("true") are created even while the required plugin is away. */
export const TOLERATE_ANNOTATION = "tollgate.dev/tolerate-missing-nri-plugin";

export const INSTALL_USAGE = `usage: tollgate install --host-root DIR [flags]

Installs Tollgate's node-side pieces under DIR (the host's / as seen by the installer):
the self-contained pull verifier into containerd's verifier bin_dir, its configuration,
and a containerd drop-in enabling the bindir image verifier and NRI. All paths below are
host paths; files are written at DIR + path.

  --host-root DIR               host root ("/" on the host itself; "/host" in the DaemonSet)
  --agent-config FILE           agent configuration to install from (default ${DEFAULT_CONFIG_PATH})
  --verifier-binary FILE        self-contained verifier (default: tollgate-verify next to this CLI)
  --bin-dir PATH                containerd verifier bin_dir (default ${DEFAULT_BIN_DIR})
  --verifier-name NAME          file name in bin_dir; order matters (default ${DEFAULT_VERIFIER_NAME})
  --verifier-config PATH        where the verifier reads its configuration (default ${DEFAULT_CONFIG_PATH})
  --config-dropin PATH          containerd drop-in to write (default ${DEFAULT_DROPIN})
  --containerd-config PATH      containerd main config to read (default ${DEFAULT_MAIN_CONFIG})
  --max-verifiers N             bindir max_verifiers (default: main config's, else 10)
  --per-verifier-timeout DUR    bindir per_verifier_timeout (default: main config's, else 10s)
  --nri-request-timeout DUR     NRI plugin_request_timeout (default: main config's, else 2s)
  --nri-registration-timeout DUR NRI plugin_registration_timeout (default: main config's, else 5s)
  --containerd-version X.Y      the node's containerd version; from 2.2 on the drop-in makes the
                                agent a required NRI plugin (creates fail closed while it is away;
                                pods annotated ${TOLERATE_ANNOTATION}: "true" are exempt)
  --restart none|signal|systemctl
                                what to do when the drop-in changed (default none: print the
                                command; containerd reads its config only at start)
  --containerd-pid PID          --restart signal: the containerd process (default: the only one)
  --systemd-unit UNIT           --restart systemctl: the unit (default containerd.service)
  --output table|json           report format (default table)
  -h, --help                    this help

Exit codes: 0 installed, 2 bad flags or configuration, 3 installation failed,
4 containerd restart failed.`;

export const EXIT = { OK: 0, USAGE: 2, FAILED: 3, RESTART: 4 } as const;

interface Flags {
  hostRoot?: string;
  agentConfig?: string;
  verifierBinary?: string;
  binDir?: string;
  verifierName?: string;
  verifierConfig?: string;
  configDropin?: string;
  containerdConfig?: string;
  maxVerifiers?: string;
  perVerifierTimeout?: string;
  nriRequestTimeout?: string;
  nriRegistrationTimeout?: string;
  restart?: string;
  containerdVersion?: string;
  containerdPid?: string;
  systemdUnit?: string;
  output?: string;
}

const FLAG_KEYS: Record<string, keyof Flags> = {
  "host-root": "hostRoot",
  "agent-config": "agentConfig",
  "verifier-binary": "verifierBinary",
  "bin-dir": "binDir",
  "verifier-name": "verifierName",
  "verifier-config": "verifierConfig",
  "config-dropin": "configDropin",
  "containerd-config": "containerdConfig",
  "max-verifiers": "maxVerifiers",
  "per-verifier-timeout": "perVerifierTimeout",
  "nri-request-timeout": "nriRequestTimeout",
  "nri-registration-timeout": "nriRegistrationTimeout",
  restart: "restart",
  "containerd-version": "containerdVersion",
  "containerd-pid": "containerdPid",
  "systemd-unit": "systemdUnit",
  output: "output",
};

export function parseInstallFlags(argv: string[]): Flags | "help" {
  const p = parseFlags(argv, {
    flags: Object.fromEntries(Object.keys(FLAG_KEYS).map((n) => [n, { kind: "string" } as const])),
    help: true,
    noPositionals: true,
    repeatedText: (flag) => `flag ${flag} given twice`,
  });
  if (p.problems.length > 0) throw new UsageError(p.problems[0]!);
  if (p.help) return "help";
  const f: Flags = {};
  for (const [name, v] of p.given) f[FLAG_KEYS[name]!] = String(v).trim();
  return f;
}

/** The packaged verifier next to this CLI (dist/), or the image's copy. */
export function defaultVerifierBinary(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [
    env.TOLLGATE_VERIFIER_BINARY,
    path.join(here, "tollgate-verify"),
    // this module in a chunk of the code-split bundle: dist/chunks/
    path.resolve(here, "..", "tollgate-verify"),
    path.resolve(here, "..", "..", "dist", "tollgate-verify"),
    "/opt/tollgate/dist/tollgate-verify",
  ].filter((c): c is string => !!c);
  return candidates.find((c) => existsSync(c));
}

export interface CliIO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  env?: NodeJS.ProcessEnv;
  version?: string;
}

export async function installMain(argv: string[], io: CliIO): Promise<number> {
  let flags: Flags;
  try {
    const parsed = parseInstallFlags(argv);
    if (parsed === "help") {
      io.stdout(`${INSTALL_USAGE}\n`);
      return EXIT.OK;
    }
    flags = parsed;
    if (!flags.hostRoot) throw new UsageError("--host-root is required");
    if (flags.output && flags.output !== "table" && flags.output !== "json")
      throw new UsageError(`--output must be table or json, got ${JSON.stringify(flags.output)}`);
    if (flags.restart && !RESTART_STRATEGIES.includes(flags.restart as RestartStrategy))
      throw new UsageError(
        `--restart must be one of ${RESTART_STRATEGIES.join(", ")}, got ${JSON.stringify(flags.restart)}`,
      );
    for (const k of ["maxVerifiers", "containerdPid"] as const) {
      const v = flags[k];
      if (v !== undefined && !/^-?[0-9]+$/.test(v))
        throw new UsageError(
          `--${k === "maxVerifiers" ? "max-verifiers" : "containerd-pid"} must be an integer, got ${JSON.stringify(v)}`,
        );
    }
  } catch (e) {
    io.stderr(`tollgate install: ${errorMessage(e)}\n(see tollgate install --help)\n`);
    return EXIT.USAGE;
  }

  let agentConfig: InstallOptions["agentConfig"];
  try {
    agentConfig = await loadConfig({
      env: io.env ?? process.env,
      ...(flags.agentConfig ? { path: flags.agentConfig } : {}),
    });
  } catch (e) {
    const msg = errorMessage(e);
    io.stderr(`tollgate install: agent configuration: ${msg}\n`);
    return EXIT.USAGE;
  }
  const verifierBinary = flags.verifierBinary ?? defaultVerifierBinary(io.env);
  if (!verifierBinary) {
    io.stderr(
      "tollgate install: no verifier binary found next to the CLI; pass --verifier-binary (build it with `node scripts/package-verifier.mjs`)\n",
    );
    return EXIT.FAILED;
  }

  let report: InstallReport;
  try {
    report = await install({
      hostRoot: flags.hostRoot,
      verifierBinary,
      agentConfig,
      ...(flags.binDir ? { binDir: flags.binDir } : {}),
      ...(flags.verifierName ? { verifierName: flags.verifierName } : {}),
      ...(flags.verifierConfig ? { verifierConfig: flags.verifierConfig } : {}),
      ...(flags.configDropin ? { configDropin: flags.configDropin } : {}),
      ...(flags.containerdConfig ? { containerdConfig: flags.containerdConfig } : {}),
      dropin: {
        ...(flags.maxVerifiers ? { maxVerifiers: Number(flags.maxVerifiers) } : {}),
        ...(flags.perVerifierTimeout ? { perVerifierTimeout: flags.perVerifierTimeout } : {}),
        ...(flags.nriRequestTimeout ? { nriRequestTimeout: flags.nriRequestTimeout } : {}),
        ...(flags.nriRegistrationTimeout ? { nriRegistrationTimeout: flags.nriRegistrationTimeout } : {}),
        ...(flags.containerdVersion && supportsRequiredPlugins(flags.containerdVersion)
          ? { requirePlugin: { name: agentConfig.nri.pluginName, tolerateAnnotation: TOLERATE_ANNOTATION } }
          : {}),
      },
      restart: (flags.restart as RestartStrategy | undefined) ?? "none",
      ...(flags.containerdPid ? { containerdPid: Number(flags.containerdPid) } : {}),
      ...(flags.systemdUnit ? { systemdUnit: flags.systemdUnit } : {}),
      version: io.version ?? "",
    });
  } catch (e) {
    if (e instanceof InstallError) {
      io.stderr(`tollgate install: ${e.code}: ${e.message}\n`);
      return e.code === "USAGE" ? EXIT.USAGE : e.code === "RESTART_FAILED" ? EXIT.RESTART : EXIT.FAILED;
    }
    io.stderr(`tollgate install: ${errorMessage(e)}\n`);
    return EXIT.FAILED;
  }

  if (flags.output === "json") {
    io.stdout(`${JSON.stringify(report, null, 2)}\n`);
    return EXIT.OK;
  }
  io.stdout(formatReport(report));
  return EXIT.OK;
}

/** The subcommand table's entry (src/cli/main.ts). */
export function installCommand(argv: string[]): Promise<number> {
  return installMain(argv, {
    stdout: (s) => process.stdout.write(s),
    stderr: (s) => process.stderr.write(s),
    version: pkg.version,
  });
}

export function formatReport(r: InstallReport): string {
  const mark = (changed: boolean) => (changed ? "installed" : "unchanged");
  const lines = [
    `host root            ${r.hostRoot}`,
    `pull verifier        ${r.verifier.hostPath} (${mark(r.verifier.changed)}, sha256 ${r.verifier.sha256.slice(0, 12)}…, Node.js single-executable)`,
    `verifier config      ${r.verifierConfig.hostPath} (${r.verifierConfig.skipped ?? mark(r.verifierConfig.changed)})`,
    `verifier sidecar     ${r.verifierConfig.sidecar.hostPath} (${mark(r.verifierConfig.sidecar.changed)})`,
    `containerd drop-in   ${r.dropin.hostPath} (${mark(r.dropin.changed)})`,
    `imported by main     ${r.import.state === "imported" ? `yes (${r.import.by})` : `NO (${r.import.state})`}`,
    `containerd restart   ${r.restart.done ? "done" : "not done"} (${r.restart.strategy}): ${r.restart.message}`,
  ];
  for (const o of r.overrides) lines.push(`override             ${o}`);
  for (const w of r.warnings) lines.push(`WARNING              ${w}`);
  return `${lines.join("\n")}\n`;
}
