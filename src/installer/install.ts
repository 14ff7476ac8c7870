// `tollgate install`: puts Tollgate's node-side pieces onto a host (directly, or from a
// DaemonSet init container with the host's directories under --host-root):
//   1. the self-contained pull verifier → <bin_dir>/50-tollgate (0755, atomic rename)
//   2. the configuration it reads on the host → /etc/tollgate/agent.yaml (the agent's own
//      configuration: API socket, pull-verifier timeout and failure policy, exempt images),
//      plus its JSON sidecar agent.verifier.json (socket + timeout: the verifier's fast path
//      reads only that, never the YAML, while it matches the YAML file)
//   3. a containerd drop-in enabling the bindir verifier and NRI → /etc/containerd/conf.d/
//   4. whether containerd imports that drop-in, and whether to restart it (restart.ts)
// All paths in options are host paths; files land at <hostRoot><path>.
import { errorMessage } from "../base/errors.js";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { stringify } from "yaml";
import { type AgentConfig, DEFAULT_CONFIG_PATH, fileForm, validateConfig } from "../config/agent.js";
import {
  assertSelfContained,
  binDirWarnings,
  DEFAULT_BIN_DIR,
  DEFAULT_VERIFIER_NAME,
  listBinDir,
  type PlacedFile,
  placeAtomically,
} from "./bindir.js";
import {
  DEFAULT_DROPIN,
  DEFAULT_MAIN_CONFIG,
  type DropinSettings,
  type ImportStatus,
  importStatus,
  parseDropinTimeout,
  readMainConfig,
  renderDropin,
} from "./containerd-config.js";
import { renderSidecar, sidecarPath } from "../pull-verifier/sidecar.js";
import { InstallError } from "./errors.js";
import { type RestartResult, type RestartStrategy, restartContainerd } from "./restart.js";

export const DEFAULT_VERIFIER_CONFIG = DEFAULT_CONFIG_PATH;

export interface InstallOptions {
  hostRoot: string;
  /** Self-contained verifier executable to install (a Node SEA). */
  verifierBinary: string;
  agentConfig: AgentConfig;
  binDir?: string;
  verifierName?: string;
  configDropin?: string;
  containerdConfig?: string;
  /** Where the verifier's configuration goes on the host (the verifier reads this path). */
  verifierConfig?: string;
  dropin?: Pick<
    DropinSettings,
    "maxVerifiers" | "perVerifierTimeout" | "nriRequestTimeout" | "nriRegistrationTimeout" | "requirePlugin"
  >;
  restart?: RestartStrategy;
  containerdPid?: number;
  systemdUnit?: string;
  version?: string;
}

export interface InstallReport {
  hostRoot: string;
  verifier: PlacedFile & { hostPath: string };
  verifierConfig: {
    hostPath: string;
    changed: boolean;
    skipped?: string;
    sidecar: { hostPath: string; changed: boolean };
  };
  dropin: { hostPath: string; changed: boolean; text: string };
  import: ImportStatus;
  /** Main-config values the drop-in replaces. */
  overrides: string[];
  warnings: string[];
  restart: RestartResult;
}

const VERIFIER_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function onHost(hostRoot: string, hostPath: string): string {
  if (!path.isAbsolute(hostPath))
    throw new InstallError("USAGE", `${hostPath} must be an absolute host path`);
  return path.join(hostRoot, hostPath);
}

/** Writes text through a temporary file in the same directory and a rename; returns whether it changed. */
export function writeFileAtomically(target: string, text: string, mode: number): boolean {
  if (existsSync(target) && readFileSync(target, "utf8") === text) return false;
  mkdirSync(path.dirname(target), { recursive: true, mode: 0o755 });
  // A name no `*.toml` / `*.yaml` glob matches while it is incomplete.
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.tollgate-tmp-${process.pid}`);
  try {
    writeFileSync(tmp, text, { mode });
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new InstallError("WRITE_FAILED", `cannot write ${target}: ${errorMessage(e)}`, { cause: e });
  }
  return true;
}

/** The verifier's configuration: the agent's, validated again so the file always loads. */
export function renderVerifierConfig(cfg: AgentConfig, source: string | undefined, version: string): string {
  const rest = fileForm(cfg);
  validateConfig(JSON.parse(JSON.stringify(rest)), "rendered verifier configuration");
  return [
    `# Written by \`tollgate install\` ${version}${source ? ` from ${source}` : ""}. Do not edit: re-run the installer.`,
    "# The pull verifier containerd runs on this host reads it: api.socket (where the agent",
    "# answers), pullVerifier.timeoutMs and failurePolicy, policy.exemptImages.",
    stringify(rest, { lineWidth: 0 }),
  ].join("\n");
}

export async function install(o: InstallOptions): Promise<InstallReport> {
  const hostRoot = path.resolve(o.hostRoot);
  if (!existsSync(hostRoot)) throw new InstallError("USAGE", `host root ${hostRoot} does not exist`);
  const binDir = o.binDir ?? DEFAULT_BIN_DIR;
  const name = o.verifierName ?? DEFAULT_VERIFIER_NAME;
  if (!VERIFIER_NAME_RE.test(name))
    throw new InstallError("USAGE", `verifier name ${JSON.stringify(name)} must be a plain file name`);
  const dropinPath = o.configDropin ?? DEFAULT_DROPIN;
  const mainPath = o.containerdConfig ?? DEFAULT_MAIN_CONFIG;
  const verifierConfigPath = o.verifierConfig ?? DEFAULT_VERIFIER_CONFIG;
  const version = o.version ?? "";
  const warnings: string[] = [];

  assertSelfContained(o.verifierBinary);

  // containerd's view first: nothing is written when its main config is broken.
  const mainFile = onHost(hostRoot, mainPath);
  const main = readMainConfig(mainPath, mainFile);
  const rendered = renderDropin({ binDir, nriSocket: o.agentConfig.nri.socket, ...(o.dropin ?? {}) }, main, [
    `Written by \`tollgate install\` ${version}. Do not edit: re-run the installer.`,
    "Enables containerd's bindir image verifier (Tollgate's pull verifier lives in bin_dir) and",
    "NRI with external plugins (Tollgate's create-time gate connects to socket_path).",
    `containerd reads this file only if ${mainPath} imports it and only when it starts.`,
  ]);
  const timeoutMs = parseDropinTimeout(rendered.perVerifierTimeout) ?? 10_000;
  if (o.agentConfig.pullVerifier.timeoutMs >= timeoutMs)
    warnings.push(
      `pullVerifier.timeoutMs (${o.agentConfig.pullVerifier.timeoutMs} ms) is not below per_verifier_timeout (${rendered.perVerifierTimeout}): containerd kills a slow verifier before it answers, which blocks the pull without a reason`,
    );
  if (o.agentConfig.nri.preLaunched)
    warnings.push(
      "nri.preLaunched is set: the agent expects containerd to start it, but this install sets up an external plugin socket",
    );
  if (!o.agentConfig.nri.enabled)
    warnings.push(
      "nri.enabled is false: the create-time gate is off, so pre-existing images and cross-tenant reuse are not checked",
    );

  // 1. the verifier binary
  const binDirOnHost = onHost(hostRoot, binDir);
  const entries = listBinDir(binDirOnHost);
  warnings.push(...binDirWarnings(entries, name, rendered.maxVerifiers, binDir));
  const placed = placeAtomically(
    o.verifierBinary,
    path.join(binDirOnHost, name),
    0o755,
    // Staged next to bin_dir, never inside it: containerd would run a half-written entry.
    path.dirname(binDirOnHost),
  );

  // 2. the verifier's configuration
  const vcTarget = onHost(hostRoot, verifierConfigPath);
  let verifierConfig: InstallReport["verifierConfig"];
  const sidecar = sidecarPath(verifierConfigPath);
  const writeSidecar = () =>
    writeFileAtomically(
      onHost(hostRoot, sidecar),
      renderSidecar(vcTarget, {
        socket: o.agentConfig.api.socket,
        timeoutMs: o.agentConfig.pullVerifier.timeoutMs,
      }),
      0o600,
    );
  if (o.agentConfig.file && path.resolve(o.agentConfig.file) === path.resolve(vcTarget)) {
    verifierConfig = {
      hostPath: verifierConfigPath,
      changed: false,
      skipped: "the agent already uses this file",
      sidecar: { hostPath: sidecar, changed: writeSidecar() },
    };
  } else {
    const text = renderVerifierConfig(o.agentConfig, o.agentConfig.file, version);
    const changed = writeFileAtomically(vcTarget, text, 0o600);
    // After the YAML: the sidecar records the size and mtime the YAML has now.
    verifierConfig = {
      hostPath: verifierConfigPath,
      changed,
      sidecar: { hostPath: sidecar, changed: writeSidecar() },
    };
  }

  // 3. the containerd drop-in
  const dropinChanged = writeFileAtomically(onHost(hostRoot, dropinPath), rendered.text, 0o644);

  // 4. import and restart
  const imp = importStatus(main, dropinPath);
  if (imp.state !== "imported") warnings.push(`containerd will not read ${dropinPath}: ${imp.fix}`);
  const restart = await restartContainerd(
    {
      strategy: o.restart ?? "none",
      hostRoot,
      ...(o.containerdPid !== undefined ? { containerdPid: o.containerdPid } : {}),
      ...(o.systemdUnit ? { unit: o.systemdUnit } : {}),
    },
    dropinChanged,
  );

  return {
    hostRoot,
    verifier: { ...placed, hostPath: path.join(binDir, name) },
    verifierConfig,
    dropin: { hostPath: dropinPath, changed: dropinChanged, text: rendered.text },
    import: imp,
    overrides: rendered.overrides,
    warnings,
    restart,
  };
}
