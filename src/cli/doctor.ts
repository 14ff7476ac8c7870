// `tollgate doctor`: checks that enforcement is actually on for this node. Each of the
// containerd settings below silently turns pull-time or create-time enforcement off (or
// breaks every pull) without containerd failing to start (protocols.md §2.6, §4, §8), so
// each finding says what happens and how to fix it.
import { errorMessage } from "../base/errors.js";
import { execFile } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import type { AgentStatus } from "../agent-api/types.js";
import {
  type AgentConfig,
  ConfigError,
  DEFAULT_CONFIG_PATH,
  defaultConfig,
  loadConfig,
} from "../config/agent.js";
import { parseGoDuration } from "../base/duration.js";
import { isTable, PLUGIN } from "../containerd/config.js";
import { agentGet } from "./agent-client.js";
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
import {
  criImagesConfig,
  type LoadedConfig,
  loadContainerdConfig,
  pluginTable,
} from "./containerd-config.js";
import { checkCredentials } from "./doctor-credentials.js";
import { checkPulls } from "./doctor-pulls.js";
import { json } from "./output.js";

export type Severity = "ok" | "info" | "warning" | "error";

export interface Finding {
  /** Stable identifier, e.g. "bindir.missing" (tests and scripts match on it). */
  id: string;
  /** Area: containerd, config, nri, bindir, cri, pull, agent. */
  check: string;
  severity: Severity;
  message: string;
  fix?: string;
}

export const DEFAULTS = {
  containerdConfig: "/etc/containerd/config.toml",
  nriSocket: "/var/run/nri/nri.sock",
  nriRequestTimeout: "2s",
  binDir: "/opt/containerd/image-verifier/bin",
  maxVerifiers: 10,
  perVerifierTimeout: "10s",
};

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

type Add = (f: Finding) => void;

// ---------------------------------------------------------------------------------------
// containerd version

export function parseContainerdVersion(
  text: string,
): { major: number; minor: number; patch: number; raw: string } | undefined {
  const m = /\bv?(\d+)\.(\d+)\.(\d+)([-+.~][0-9A-Za-z.+~-]*)?/.exec(text);
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), raw: m[0] };
}

async function checkVersion(bin: string, add: Add): Promise<void> {
  const text = await new Promise<{ out?: string; err?: NodeJS.ErrnoException }>((resolve) => {
    execFile(bin, ["--version"], { timeout: 5000, maxBuffer: 64 * 1024, encoding: "utf8" }, (err, stdout) =>
      resolve(err ? { err: err as NodeJS.ErrnoException } : { out: stdout }),
    );
  });
  if (text.err) {
    add({
      id: "containerd.version-unknown",
      check: "containerd",
      severity: "warning",
      message: `cannot run "${bin} --version": ${text.err.code === "ENOENT" ? "not found" : text.err.message.split("\n")[0]}`,
      fix: "run the doctor on the node (or in the agent pod with the host's containerd binary) or pass --containerd-bin",
    });
    return;
  }
  const v = parseContainerdVersion(text.out ?? "");
  if (!v) {
    add({
      id: "containerd.version-unknown",
      check: "containerd",
      severity: "warning",
      message: `unrecognised version output: ${(text.out ?? "").trim().slice(0, 200)}`,
    });
    return;
  }
  if (v.major < 2) {
    add({
      id: "containerd.too-old",
      check: "containerd",
      severity: "error",
      message: `containerd ${v.raw} has no image verifier plugin (io.containerd.image-verifier.v1.bindir): pulls are never verified`,
      fix: "upgrade containerd to 2.1 or later",
    });
  } else if (v.major === 2 && v.minor === 0) {
    add({
      id: "containerd.cri-no-transfer",
      check: "containerd",
      severity: "warning",
      message: `containerd ${v.raw}: the CRI plugin does not pull through the transfer service, so kubelet pulls skip the verifier (only the create-time gate applies)`,
      fix: "upgrade containerd to 2.1 or later",
    });
  } else {
    add({ id: "containerd.version", check: "containerd", severity: "ok", message: `containerd ${v.raw}` });
  }
}

// ---------------------------------------------------------------------------------------
// config files

function checkConfigFiles(file: string, add: Add): LoadedConfig {
  const cfg = loadContainerdConfig(file);
  for (const e of cfg.errors) {
    if (e.file === file && e.message === "no such file") {
      add({
        id: "config.missing",
        check: "config",
        severity: "info",
        message: `${file} does not exist: containerd runs with its built-in defaults (checked below as such)`,
      });
      continue;
    }
    add({
      id: "config.unreadable",
      check: "config",
      severity: "error",
      message: `${e.file}: ${e.message} (containerd refuses to start with a configuration it cannot load)`,
      fix: e.file === file ? "fix the file" : `fix or remove the file, or the imports entry that names it`,
    });
  }
  for (const g of cfg.unmatchedGlobs)
    add({
      id: "config.import-unmatched",
      check: "config",
      severity: "info",
      message: `imports pattern ${g} matches no file`,
    });
  if (cfg.files.length > 0)
    add({
      id: "config.files",
      check: "config",
      severity: "ok",
      message: `read ${cfg.files.join(", ")} (config version ${cfg.version || "1 (none given)"})`,
    });
  if (cfg.version > 3)
    add({
      id: "config.version",
      check: "config",
      severity: "error",
      message: `config version ${cfg.version} is newer than containerd 2.x understands (3)`,
      fix: "set version = 3",
    });
  else if (cfg.files.length > 0 && cfg.version < 2)
    add({
      id: "config.version-legacy",
      check: "config",
      severity: "warning",
      message:
        "legacy config version 1 (or no version): containerd 2 migrates it; plugin settings are easy to misplace",
      fix: 'write "version = 3" and the io.containerd.* plugin names',
    });
  for (const [plugin, what] of [
    [PLUGIN.nri, "NRI (the create-time gate)"],
    [PLUGIN.bindir, "the image verifier (pull-time enforcement)"],
    [PLUGIN.transfer, "the transfer service (every verified pull)"],
  ] as const) {
    if (cfg.disabledPlugins.includes(plugin))
      add({
        id: "config.plugin-disabled",
        check: "config",
        severity: "error",
        message: `disabled_plugins contains ${plugin}: ${what} is off`,
        fix: `remove ${plugin} from disabled_plugins`,
      });
  }
  return cfg;
}

// ---------------------------------------------------------------------------------------
// NRI

function checkNri(cfg: LoadedConfig, agent: AgentConfig | undefined, add: Add): void {
  const nri = pluginTable(cfg, PLUGIN.nri);
  const section = `[plugins."${PLUGIN.nri}"]`;
  if (nri.disable === true) {
    add({
      id: "nri.disabled",
      check: "nri",
      severity: "error",
      message: `${section} disable = true: containerd runs no NRI plugins, so the create-time gate never sees a container`,
      fix: `set ${section} disable = false and restart containerd`,
    });
  } else {
    add({ id: "nri.enabled", check: "nri", severity: "ok", message: "NRI is enabled" });
  }
  if (nri.disable_connections === true && !agent?.nri.preLaunched)
    add({
      id: "nri.connections-disabled",
      check: "nri",
      severity: "error",
      message: `${section} disable_connections = true: externally started plugins (the Tollgate agent) cannot connect`,
      fix: `set ${section} disable_connections = false`,
    });
  const socket =
    typeof nri.socket_path === "string" && nri.socket_path !== "" ? nri.socket_path : DEFAULTS.nriSocket;
  let st: ReturnType<typeof statSync> | undefined;
  try {
    st = statSync(socket);
  } catch {
    st = undefined;
  }
  if (!st)
    add({
      id: "nri.socket-missing",
      check: "nri",
      severity: "error",
      message: `NRI socket ${socket} does not exist (containerd not running, or NRI disabled): the agent cannot register`,
      fix: "start containerd with NRI enabled; check containerd's log for NRI errors",
    });
  else if (!st.isSocket())
    add({
      id: "nri.socket-not-socket",
      check: "nri",
      severity: "error",
      message: `${socket} exists but is not a socket`,
      fix: `remove ${socket} and restart containerd`,
    });
  else add({ id: "nri.socket", check: "nri", severity: "ok", message: `NRI socket ${socket} exists` });
  if (
    agent &&
    !agent.nri.preLaunched &&
    agent.nri.enabled &&
    path.resolve(agent.nri.socket) !== path.resolve(socket)
  )
    add({
      id: "nri.socket-mismatch",
      check: "nri",
      severity: "error",
      message: `the agent connects to ${agent.nri.socket} but containerd's NRI socket is ${socket}`,
      fix: `set nri.socket: ${socket} in the agent configuration`,
    });
  const rawTimeout = nri.plugin_request_timeout ?? DEFAULTS.nriRequestTimeout;
  const ms = typeof rawTimeout === "string" ? parseGoDuration(rawTimeout) : undefined;
  if (ms === undefined || ms < 0) {
    add({
      id: "nri.timeout-invalid",
      check: "nri",
      severity: "error",
      message: `${section} plugin_request_timeout = ${JSON.stringify(rawTimeout)} is not a duration`,
      fix: 'use a Go duration such as "2s"',
    });
  } else {
    const fraction = agent?.gate.budgetFraction ?? defaultConfig().gate.budgetFraction;
    const budget = Math.round(ms * fraction);
    add({
      id: ms < 1000 ? "nri.timeout-short" : "nri.timeout",
      check: "nri",
      severity: ms < 1000 ? "warning" : "ok",
      message:
        `plugin_request_timeout ${rawTimeout}: the create-time gate answers within ${budget} ms ` +
        `(gate.budgetFraction ${fraction}); a plugin that misses the deadline is dropped and containers are created without it` +
        (ms < 1000
          ? "; this leaves little time for an uncached verification, so the failure policy answers more often"
          : ""),
      ...(ms < 1000 ? { fix: `raise ${section} plugin_request_timeout (default 2s)` } : {}),
    });
  }
}

// ---------------------------------------------------------------------------------------
// bindir image verifier

function checkBindir(cfg: LoadedConfig, agent: AgentConfig | undefined, add: Add): void {
  const t = pluginTable(cfg, PLUGIN.bindir);
  const section = `[plugins."${PLUGIN.bindir}"]`;
  const dir = typeof t.bin_dir === "string" && t.bin_dir !== "" ? t.bin_dir : DEFAULTS.binDir;
  const max = typeof t.max_verifiers === "number" ? t.max_verifiers : DEFAULTS.maxVerifiers;
  const failOpen = "containerd only logs a warning and allows every pull without verification";
  let st: ReturnType<typeof statSync> | undefined;
  try {
    st = statSync(dir);
  } catch {
    st = undefined;
  }
  if (!st) {
    add({
      id: "bindir.missing",
      check: "bindir",
      severity: "error",
      message: `verifier bin_dir ${dir} does not exist: ${failOpen}`,
      fix: `install the Tollgate pull verifier into ${dir} (the deploy/ installer does), or point ${section} bin_dir at where it is`,
    });
    return;
  }
  if (!st.isDirectory()) {
    add({
      id: "bindir.not-directory",
      check: "bindir",
      severity: "error",
      message: `verifier bin_dir ${dir} is not a directory`,
      fix: `make ${dir} a directory holding the verifier`,
    });
    return;
  }
  const entries = readdirSync(dir).sort();
  if (entries.length === 0) {
    add({
      id: "bindir.empty",
      check: "bindir",
      severity: "error",
      message: `verifier bin_dir ${dir} is empty: ${failOpen}`,
      fix: `install the Tollgate pull verifier into ${dir}`,
    });
    return;
  }
  let bad = 0;
  for (const name of entries) {
    const full = path.join(dir, name);
    let es: ReturnType<typeof statSync> | undefined;
    try {
      es = statSync(full);
    } catch {
      es = undefined;
    }
    const problem = !es
      ? "is a broken symbolic link"
      : es.isDirectory()
        ? "is a directory"
        : !es.isFile()
          ? "is not a regular file"
          : (es.mode & 0o111) === 0
            ? "is not executable"
            : undefined;
    if (problem) {
      bad++;
      add({
        id: "bindir.bad-entry",
        check: "bindir",
        severity: "error",
        message: `${full} ${problem}: containerd runs every entry of bin_dir, fails to execute this one and blocks every pull`,
        fix: `remove ${full} from ${dir}`,
      });
    }
  }
  if (max >= 0 && entries.length > max) {
    const skipped = entries.slice(max);
    add({
      id: "bindir.too-many",
      check: "bindir",
      severity: "error",
      message: `${dir} has ${entries.length} entries, more than max_verifiers = ${max}: containerd skips ALL verifiers with only a warning (would-be skipped in order: ${skipped.join(", ")})`,
      fix: `remove entries from ${dir} or raise ${section} max_verifiers to at least ${entries.length}`,
    });
  }
  const ours = entries.filter((e) => /tollgate/i.test(e));
  if (ours.length === 0)
    add({
      id: "bindir.no-tollgate",
      check: "bindir",
      severity: "warning",
      message: `no Tollgate verifier in ${dir} (entries: ${entries.join(", ")}): pulls are not checked against ImagePolicies`,
      fix: `install the Tollgate pull verifier into ${dir}`,
    });
  else if (bad === 0 && !(max >= 0 && entries.length > max))
    add({
      id: "bindir.ok",
      check: "bindir",
      severity: "ok",
      message: `${dir}: ${entries.length} verifier(s) (${entries.join(", ")}), max_verifiers ${max}`,
    });
  const rawTimeout = t.per_verifier_timeout ?? DEFAULTS.perVerifierTimeout;
  const ms = typeof rawTimeout === "string" ? parseGoDuration(rawTimeout) : undefined;
  if (ms === undefined || ms <= 0)
    add({
      id: "bindir.timeout-invalid",
      check: "bindir",
      severity: "error",
      message: `${section} per_verifier_timeout = ${JSON.stringify(rawTimeout)} is not a positive duration`,
      fix: 'use a Go duration such as "10s"',
    });
  else if (agent && agent.pullVerifier.timeoutMs >= ms)
    add({
      id: "bindir.timeout-short",
      check: "bindir",
      severity: "warning",
      message: `per_verifier_timeout ${rawTimeout} is not above the agent's pullVerifier.timeoutMs (${agent.pullVerifier.timeoutMs} ms): containerd kills a slow verifier and fails the pull with an error instead of a verdict`,
      fix: `raise ${section} per_verifier_timeout or lower pullVerifier.timeoutMs`,
    });
}

// ---------------------------------------------------------------------------------------
// CRI settings that make containerd 2.1 pull without the transfer service

function nonEmptyTable(v: unknown): boolean {
  return isTable(v) && Object.keys(v).length > 0;
}

function checkCri(cfg: LoadedConfig, add: Add): void {
  const { table, origin } = criImagesConfig(cfg);
  const where = (k: string) => origin[k] ?? `[plugins."${PLUGIN.images}"] ${k}`;
  const bypass =
    "containerd pulls without the transfer service, so no image verifier runs for any kubelet pull";
  let found = 0;
  const flag = (id: string, message: string, fix: string) => {
    found++;
    add({ id, check: "cri", severity: "error", message: `${message}: ${bypass}`, fix });
  };
  if (table.use_local_image_pull === true)
    flag(
      "cri.use-local-image-pull",
      `${where("use_local_image_pull")} = true`,
      "remove use_local_image_pull (or set it to false)",
    );
  const registry = isTable(table.registry) ? table.registry : {};
  const regWhere = where("registry");
  if (nonEmptyTable(registry.mirrors))
    flag(
      "cri.registry-mirrors",
      `${regWhere}.mirrors is set`,
      `move mirrors to hosts.toml files under the registry config_path (e.g. /etc/containerd/certs.d/<host>/hosts.toml) and delete ${regWhere}.mirrors`,
    );
  if (nonEmptyTable(registry.configs))
    flag(
      "cri.registry-configs",
      `${regWhere}.configs is set`,
      `move TLS settings to hosts.toml (ca, client, skip_verify) and credentials to image pull secrets; delete ${regWhere}.configs`,
    );
  if (nonEmptyTable(registry.auths))
    flag(
      "cri.registry-auths",
      `${regWhere}.auths is set`,
      `use image pull secrets (or a credential file) instead; delete ${regWhere}.auths`,
    );
  if (table.discard_unpacked_layers === true)
    flag(
      "cri.discard-unpacked-layers",
      `${where("discard_unpacked_layers")} = true`,
      "remove discard_unpacked_layers (not supported with the transfer service)",
    );
  if ("max_concurrent_downloads" in table && table.max_concurrent_downloads !== 3)
    flag(
      "cri.max-concurrent-downloads",
      `${where("max_concurrent_downloads")} = ${JSON.stringify(table.max_concurrent_downloads)} (only 3, the default, keeps the transfer service)`,
      `remove it and set max_concurrent_downloads in [plugins."${PLUGIN.transfer}"] instead`,
    );
  if (table.image_pull_with_sync_fs === true)
    flag(
      "cri.image-pull-with-sync-fs",
      `${where("image_pull_with_sync_fs")} = true`,
      "remove image_pull_with_sync_fs",
    );
  if (table.disable_snapshot_annotations === false)
    flag(
      "cri.snapshot-annotations",
      `${where("disable_snapshot_annotations")} = false`,
      "remove it (default true); snapshotters that need the annotations are configured in the snapshotter plugin when the transfer service pulls",
    );
  if (found === 0)
    add({
      id: "cri.transfer",
      check: "cri",
      severity: "ok",
      message: "CRI pulls go through the transfer service (no setting forces local pulls)",
    });
}

// ---------------------------------------------------------------------------------------
// the agent

async function checkAgent(socket: string, add: Add): Promise<void> {
  const fixStart = "check the agent DaemonSet pod (kubectl -n <ns> logs) or start `tollgate agent`";
  try {
    const h = await agentGet(socket, "/healthz");
    if (h.status !== 200) {
      add({
        id: "agent.unhealthy",
        check: "agent",
        severity: "error",
        message: `agent at ${socket} answered /healthz with HTTP ${h.status}`,
        fix: fixStart,
      });
      return;
    }
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT"
        ? "no such socket (agent not running?)"
        : code === "ECONNREFUSED"
          ? "connection refused (stale socket: agent not running)"
          : code === "EACCES"
            ? "permission denied (the socket is root-only: run the doctor as root)"
            : errorMessage(e);
    add({
      id: "agent.unreachable",
      check: "agent",
      severity: "error",
      message: `agent API ${socket}: ${why}. Without the agent the pull verifier falls back to in-process verification, and no create-time gate runs`,
      fix: fixStart,
    });
    return;
  }
  add({ id: "agent.healthy", check: "agent", severity: "ok", message: `agent at ${socket} is healthy` });
  let status: AgentStatus | undefined;
  try {
    const r = await agentGet(socket, "/readyz");
    const body = r.body as { ready?: boolean; notReady?: unknown };
    if (r.status !== 200) {
      const reasons = Array.isArray(body?.notReady)
        ? body.notReady.map(String).join("; ")
        : `HTTP ${r.status}`;
      add({
        id: "agent.not-ready",
        check: "agent",
        severity: "error",
        message: `agent is not ready: ${reasons}`,
        fix: fixStart,
      });
    } else add({ id: "agent.ready", check: "agent", severity: "ok", message: "agent is ready" });
    const s = await agentGet(socket, "/v1/status");
    if (s.status === 200 && isTable(s.body)) status = s.body as unknown as AgentStatus;
    else
      add({
        id: "agent.status-unavailable",
        check: "agent",
        severity: "warning",
        message: `/v1/status answered HTTP ${s.status}`,
      });
  } catch (e) {
    add({
      id: "agent.status-unavailable",
      check: "agent",
      severity: "warning",
      message: `agent status: ${errorMessage(e)}`,
    });
  }
  if (!status) return;
  const policies = Array.isArray(status.policies) ? status.policies : [];
  if (policies.length === 0)
    add({
      id: "agent.no-policies",
      check: "agent",
      severity: "error",
      message: "the agent has no ImagePolicy loaded: every namespace without an exemption fails closed",
      fix: "create ImagePolicy objects (or policy files) and the default policy named in the agent configuration",
    });
  else
    add({
      id: "agent.policies",
      check: "agent",
      severity: "ok",
      message: `policies loaded: ${policies.map((p) => `${p.name} (${p.mode}, failurePolicy ${p.failurePolicy})`).join(", ")}`,
    });
  if (policies.length > 0 && !status.defaultPolicy)
    add({
      id: "agent.no-default-policy",
      check: "agent",
      severity: "warning",
      message:
        "the default policy is not loaded: namespaces without a tollgate.dev/policy annotation fail closed",
      fix: "create the ImagePolicy named by policy.defaultPolicy in the agent configuration",
    });
  for (const p of policies)
    if (p.mode === "Audit")
      add({
        id: "agent.policy-audit",
        check: "agent",
        severity: "info",
        message: `policy ${p.name} is in Audit mode: it records would-be denials and denies nothing`,
      });
  const src = status.policySource as
    | { rejected?: Array<{ policy?: string; origin?: string; reason?: string }> }
    | undefined;
  for (const r of (src?.rejected ?? []).slice(0, 10))
    add({
      id: "agent.policy-rejected",
      check: "agent",
      severity: "warning",
      message: `rejected update of ${r.policy ? `policy ${r.policy}` : (r.origin ?? "a policy")}: ${r.reason ?? "?"} (the last good revision stays in force)`,
      fix: "fix the document (tollgate policy validate FILE)",
    });
  if (status.nri?.enabled === false)
    add({
      id: "agent.nri-off",
      check: "agent",
      severity: "warning",
      message: "the agent runs without the NRI create-time gate (nri.enabled: false)",
    });
  else if (status.nri && status.nri.state !== "registered")
    add({
      id: "agent.nri-not-registered",
      check: "agent",
      severity: "error",
      message: `the agent's NRI plugin is ${status.nri.state}, not registered: containerd creates containers without the create-time gate`,
      fix: "check the NRI socket path and containerd's NRI settings (see the nri findings)",
    });
  else if (status.nri)
    add({
      id: "agent.nri-registered",
      check: "agent",
      severity: "ok",
      message: `NRI plugin registered (request timeout ${status.nri.requestTimeoutMs ?? "?"} ms)`,
    });
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
