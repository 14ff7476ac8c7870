// Agent configuration: a YAML file, overridden by environment variables, overridden by
// command-line flags. Validation collects every problem and reports them together, each
// with the path of the offending key. Every setting is declared once, in settings.ts; this
// module derives defaults, flags, environment and validation from it and adds the rules
// between settings. The pull verifier's in-process fallback reads the same file, so this
// module stays free of heavy imports (only `yaml`, loaded lazily).
import { readFileSync } from "node:fs";
import { errorMessage, TollgateError } from "../base/errors.js";
import { type FlagDef, parseFlags as parseFlagArgs } from "../base/flags.js";
import type { KeyManagementConfig } from "../engine/keys/config.js";
import type { CredentialProviderSpec } from "../engine/registry/credentials/spec.js";
import { SECTIONS, SETTINGS, type Setting } from "./settings.js";

export { checkExemptPattern, parseListen } from "./settings.js";

export type PolicySourceKind = "files" | "kubernetes";
export type PullVerifierMode = "default-policy" | "any-policy-in-use";
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";

export interface AgentConfig {
  /** Where the configuration came from (for messages and status). */
  file?: string;
  nri: {
    /** NRI socket containerd listens on. */
    socket: string;
    /** Pre-launched by containerd: connect through the inherited fd in NRI_PLUGIN_SOCKET. */
    preLaunched: boolean;
    pluginName: string;
    /** Two-digit plugin index ("00".."99"); decides the order among NRI plugins. */
    pluginIndex: string;
    /** Opt-in: ask the runtime to evict non-compliant containers found by the Synchronize audit. */
    evictOnSync: boolean;
    /** evictOnSync: seconds between SIGTERM and SIGKILL when a container is stopped. */
    evictGracePeriodSeconds: number;
    /** Record of containers the gate has seen (tells "created while away" apart); "" = memory only. */
    statePath: string;
    /** Set false to run without the create-time gate (pull API only; e.g. for tests). */
    enabled: boolean;
  };
  containerd: {
    /** containerd gRPC socket (plain path or unix:// URL). */
    address: string;
    namespace: string;
    /** Deadline for one images API call. */
    timeoutMs: number;
    /** Snapshotters whose container rootfs the gate compares with the judged image (CRI's, per runtime handler). */
    snapshotters: string[];
  };
  api: {
    /** Local API for the pull verifier (unix socket, 0600). */
    socket: string;
  };
  policy: {
    source: PolicySourceKind;
    /** files source: directory of policy documents. */
    dir?: string;
    /** kubernetes source: kubeconfig path (in-cluster when absent). */
    kubeconfig?: string;
    defaultPolicy: string;
    exemptNamespaces: string[];
    /** Image patterns that are always allowed (e.g. the pinned sandbox image). */
    exemptImages: string[];
    /** Longest break-glass window honoured, whatever the annotation says. */
    breakGlassMaxSeconds: number;
    /**
     * Images the exempt namespaces run (e.g. registry.k8s.io/**). A pull has no namespace:
     * these are admitted at pull time because an exempt namespace could run them; at create
     * time every other namespace still needs its own policy (docs/pull-semantics.md).
     */
    exemptNamespaceImages: string[];
    /** kubernetes source: on-host snapshot of the last good policy set ("" disables). */
    snapshotPath: string;
    /** A snapshot older than this is not used: the failure policy applies instead. */
    snapshotMaxAgeSeconds: number;
  };
  gate: {
    /** Fraction of containerd's NRI request timeout the create-time gate may spend. */
    budgetFraction: number;
    /** Request timeout assumed until Configure tells us the real one. */
    defaultRequestTimeoutMs: number;
    /**
     * Where containerd's rootfs record cannot be read: a name that pointed at more than one
     * digest within this many seconds is allowed only if every one of them passes.
     */
    tagMoveWindowSeconds: number;
  };
  pullVerifier: {
    mode: PullVerifierMode;
    /** Time the verifier binary waits for the agent; keep below containerd's per_verifier_timeout. */
    timeoutMs: number;
    /** Applied when neither the agent nor the in-process fallback can decide. */
    failurePolicy: "Closed" | "Open";
  };
  verification: {
    /** Upper bound for one background verification (it outlives a create-time budget). */
    timeoutMs: number;
    /** Verifications running at once, overall and against one registry host (others queue). */
    maxConcurrent: number;
    maxConcurrentPerRegistry: number;
    /** Registry response bytes running verifications may hold, overall and per registry host. */
    maxBytesInFlightMiB: number;
    maxBytesPerRegistryMiB: number;
    /** Verifications waiting for a slot; more are refused (the failure policy answers). */
    maxQueued: number;
    /** Verdict cache size (TTLs come from each policy's cache settings). */
    cacheMaxEntries: number;
  };
  registry: {
    /** containerd-style hosts directory (<dir>/<host>/hosts.toml). */
    certsDir: string;
    /** Docker-style credential files, first match wins (serve hosts no provider below names). */
    dockerConfigs: string[];
    /** Credential providers by registry host pattern, first match wins (docs/credentials.md). */
    credentialProviders: CredentialProviderSpec[];
  };
  sigstore: {
    /** Cache of TUF metadata and trusted roots for keyless verifiers naming a TUF mirror (root-only). */
    tufCacheDir: string;
    /** Deadline of one request to a TUF mirror. */
    tufFetchTimeoutMs: number;
  };
  /** Key management providers: the Azure identity for Key Vault (docs/keys.md). */
  keyManagement: KeyManagementConfig;
  log: { level: LogLevel };
  /**
   * Kubernetes visibility (kubernetes source only): ImagePolicy status and pod Events.
   * Field meanings: ClusterSettings in src/k8s/cluster.ts (config does not import k8s).
   */
  cluster: {
    statusWriter: boolean;
    podEvents: boolean;
    leaseNamespace: string;
    leaseName: string;
    leaseDurationSeconds: number;
    nodeName: string;
  };
  metrics: {
    /** host:port for /metrics, /healthz, /readyz; empty disables. */
    listen: string;
  };
}

export const DEFAULT_CONFIG_PATH = "/etc/tollgate/agent.yaml";

/** The settings table, each row's value type erased (the table ties them to AgentConfig). */
const ROWS = SETTINGS as readonly Setting[];

export function defaultConfig(): AgentConfig {
  const cfg: Record<string, Record<string, unknown>> = {};
  for (const st of ROWS) {
    const [section, field] = split(st.key);
    cfg[section] ??= {};
    cfg[section][field] = structuredClone(st.default);
  }
  return cfg as unknown as AgentConfig;
}

function split(key: string): [section: string, field: string] {
  const dot = key.indexOf(".");
  return [key.slice(0, dot), key.slice(dot + 1)];
}

/** Raised for any configuration problem; `problems` lists each one with its key path. */
export class ConfigError extends TollgateError<"INVALID_CONFIG"> {
  readonly problems: string[];
  constructor(source: string, problems: string[]) {
    super("INVALID_CONFIG", `invalid configuration (${source}): ${problems.join("; ")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

// ---------------------------------------------------------------------------------------
// flags and environment

/** Flag → config key path. */
const FLAGS: ReadonlyMap<string, string> = new Map(ROWS.flatMap((s) => (s.flag ? [[s.flag, s.key]] : [])));
/** Environment variable → config key path. */
const ENV: ReadonlyMap<string, string> = new Map(ROWS.flatMap((s) => (s.env ? [[s.env, s.key]] : [])));
const LIST_KEYS = new Set(ROWS.filter((s) => s.type.kind === "list").map((s) => s.key));

const flagKind = (s: Setting): FlagDef["kind"] =>
  s.type.kind === "bool" ? "boolean" : s.type.kind === "list" ? "list" : "string";

/** The agent's flags for the shared parser: `--config` and one per setting that has one. */
const FLAG_GRAMMAR = {
  flags: Object.fromEntries([
    ["config", { kind: "string" } as FlagDef],
    ...ROWS.flatMap((s): Array<[string, FlagDef]> => (s.flag ? [[s.flag, { kind: flagKind(s) }]] : [])),
  ]),
  // `--nri-enabled false`; the value is judged with the setting, so "1"/"0" work as in YAML.
  looseBooleans: true,
  // "" is meaningful (`--metrics-listen=` disables metrics); the setting's check decides.
  allowEmpty: true,
  // A later flag overrides an earlier one, as flags override the file.
  repeat: "last",
  noPositionals: true,
} as const;

export interface ParsedArgs {
  configPath?: string;
  overrides: Array<[string, string]>;
}

/** Parses agent flags; unknown flags are errors (a typo must not silently keep a default). */
export function parseFlags(argv: string[]): ParsedArgs {
  const p = parseFlagArgs(argv, FLAG_GRAMMAR);
  if (p.problems.length > 0) throw new ConfigError("flags", p.problems);
  const out: ParsedArgs = { overrides: [] };
  for (const [name, value] of p.given) {
    if (name === "config") out.configPath = String(value);
    else out.overrides.push([FLAGS.get(name)!, String(value)]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// loading

export interface LoadOptions {
  argv?: string[];
  env?: NodeJS.ProcessEnv;
  /** Config file path; else --config, else $TOLLGATE_CONFIG, else the default path if present. */
  path?: string;
}

/** Loads, merges and validates the configuration. Throws ConfigError. */
export async function loadConfig(opts: LoadOptions = {}): Promise<AgentConfig> {
  const env = opts.env ?? process.env;
  const args = parseFlags(opts.argv ?? []);
  const explicit = opts.path ?? args.configPath ?? env.TOLLGATE_CONFIG;
  const path = explicit ?? DEFAULT_CONFIG_PATH;
  let text: string | undefined;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // The default path is optional; a path someone named must exist.
    if (explicit !== undefined || code !== "ENOENT") {
      throw new ConfigError(path, [`cannot read file: ${errorMessage(e)}`]);
    }
  }
  let raw: unknown = {};
  if (text !== undefined) {
    // A CommonJS package imported lazily from a code-split ESM bundle only has a default
    // export (esbuild); from source it has named ones. Accept both.
    const mod: typeof import("yaml") & { default?: typeof import("yaml") } = await import("yaml");
    const parse = mod.parse ?? mod.default!.parse;
    try {
      raw = parse(text, { maxAliasCount: 100 }) ?? {};
    } catch (e) {
      throw new ConfigError(path, [`YAML: ${errorMessage(e).split("\n")[0]}`]);
    }
  }
  const layered = structuredCloneObject(raw);
  const problems: string[] = [];
  for (const [name, key] of ENV) {
    const v = env[name];
    if (v !== undefined && v !== "") setPath(layered, key, v, `$${name}`, problems);
  }
  const seenList = new Set<string>();
  for (const [key, v] of args.overrides) {
    if (LIST_KEYS.has(key) && !seenList.has(key)) {
      // A repeated list flag replaces the file's list once, then appends.
      setPath(layered, key, [], "flag", problems);
      seenList.add(key);
    }
    setPath(layered, key, v, "flag", problems);
  }
  if (problems.length > 0) throw new ConfigError(text === undefined ? "flags" : path, problems);
  const cfg = validateConfig(layered, text === undefined ? "defaults" : path);
  if (text !== undefined) cfg.file = path;
  return cfg;
}

function structuredCloneObject(v: unknown): Record<string, unknown> {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return { __notAnObject: v };
  return JSON.parse(JSON.stringify(v)) as Record<string, unknown>;
}

function setPath(
  obj: Record<string, unknown>,
  key: string,
  value: unknown,
  origin: string,
  problems: string[],
) {
  const parts = key.split(".");
  let cur: Record<string, unknown> = obj;
  for (const p of parts.slice(0, -1)) {
    const next = cur[p];
    if (next === undefined || next === null) cur[p] = {};
    else if (typeof next !== "object" || Array.isArray(next)) {
      problems.push(`${origin}: cannot set ${key}: ${p} is not a mapping`);
      return;
    }
    cur = cur[p] as Record<string, unknown>;
  }
  const last = parts[parts.length - 1]!;
  if (LIST_KEYS.has(key) && typeof value === "string") {
    const list = Array.isArray(cur[last]) ? (cur[last] as unknown[]) : [];
    list.push(...value.split(",").filter((s) => s !== ""));
    cur[last] = list;
  } else {
    cur[last] = value;
  }
}

// ---------------------------------------------------------------------------------------
// validation

type Obj = Record<string, unknown>;

/** Validates a raw (parsed) configuration object against the settings; fills defaults. */
export function validateConfig(raw: unknown, source = "config"): AgentConfig {
  const problems: string[] = [];
  if (raw === null || typeof raw !== "object" || Array.isArray(raw) || "__notAnObject" in (raw as Obj)) {
    throw new ConfigError(source, ["top level must be a mapping"]);
  }
  const root = raw as Obj;
  for (const k of Object.keys(root)) {
    if (!SECTIONS.includes(k)) problems.push(`${k}: unknown key`);
  }
  const given: Record<string, Obj> = {};
  for (const name of SECTIONS) {
    const v = root[name];
    given[name] = {};
    if (v === undefined || v === null) continue;
    if (typeof v !== "object" || Array.isArray(v)) {
      problems.push(`${name}: must be a mapping`);
      continue;
    }
    for (const k of Object.keys(v)) {
      if (!KNOWN_KEYS.has(`${name}.${k}`)) problems.push(`${name}.${k}: unknown key`);
    }
    given[name] = v as Obj;
  }
  const cfg: Record<string, Obj> = {};
  for (const st of ROWS) {
    const [section, field] = split(st.key);
    const v = given[section]![field];
    const value = v === undefined || v === null ? undefined : st.type.check(v, st.key, problems);
    cfg[section] ??= {};
    cfg[section][field] = value === undefined ? structuredClone(st.default) : value;
  }
  problems.push(...crossRules(cfg as unknown as AgentConfig));
  if (problems.length > 0) throw new ConfigError(source, problems);
  return cfg as unknown as AgentConfig;
}

const KNOWN_KEYS = new Set(ROWS.map((s) => s.key));

/** A configuration as a file would spell it: validateConfig(fileForm(cfg)) gives cfg back. */
export function fileForm(cfg: AgentConfig): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  const values = cfg as unknown as Record<string, Record<string, unknown>>;
  for (const st of ROWS) {
    const [section, field] = split(st.key);
    const v = values[section]?.[field];
    if (v === undefined) continue;
    out[section] ??= {};
    out[section][field] = st.type.toFile ? st.type.toFile(v) : v;
  }
  return out;
}

/** The rules between settings (each setting's own rules are in its row). */
function crossRules(cfg: AgentConfig): string[] {
  const problems: string[] = [];
  if (cfg.policy.source === "files" && !cfg.policy.dir)
    problems.push("policy.dir: required when policy.source is files");
  if (cfg.policy.exemptNamespaceImages.length > 0 && cfg.policy.exemptNamespaces.length === 0)
    problems.push(
      "policy.exemptNamespaceImages: has no effect without policy.exemptNamespaces (it names what the exempt namespaces pull)",
    );
  if (cfg.pullVerifier.timeoutMs <= cfg.containerd.timeoutMs)
    problems.push("pullVerifier.timeoutMs: must be larger than containerd.timeoutMs");
  return problems;
}
