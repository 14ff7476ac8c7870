// Agent configuration: a YAML file, overridden by environment variables, overridden by
// command-line flags. Validation collects every problem and reports them together, each
// with the path of the offending key. The pull verifier's in-process fallback reads the
// same file, so this module stays free of heavy imports (only `yaml`, loaded lazily).
import { isDigest } from "../base/digest.js";
import { errorMessage } from "../base/errors.js";
import { readFileSync } from "node:fs";
import { TollgateError } from "../base/errors.js";
import {
  DEFAULT_KEY_MANAGEMENT,
  type KeyManagementConfig,
  parseKeyManagementConfig,
} from "../engine/keys/config.js";
import {
  type CredentialProviderSpec,
  parseCredentialProviderSpecs,
} from "../engine/registry/credentials/spec.js";

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

export function defaultConfig(): AgentConfig {
  return {
    nri: {
      socket: "/var/run/nri/nri.sock",
      preLaunched: false,
      pluginName: "tollgate",
      pluginIndex: "10",
      evictOnSync: false,
      evictGracePeriodSeconds: 30,
      statePath: "",
      enabled: true,
    },
    containerd: {
      address: "/run/containerd/containerd.sock",
      namespace: "k8s.io",
      timeoutMs: 500,
      snapshotters: ["overlayfs"],
    },
    api: { socket: "/run/tollgate/agent.sock" },
    policy: {
      source: "files",
      dir: "/etc/tollgate/policies",
      defaultPolicy: "default",
      exemptNamespaces: [],
      exemptImages: [],
      breakGlassMaxSeconds: 86_400,
      exemptNamespaceImages: [],
      // Off unless configured (the shipped ConfigMap sets /var/lib/tollgate/policy-snapshot.json).
      snapshotPath: "",
      snapshotMaxAgeSeconds: 86_400,
    },
    gate: { budgetFraction: 0.5, defaultRequestTimeoutMs: 2000, tagMoveWindowSeconds: 600 },
    pullVerifier: { mode: "default-policy", timeoutMs: 8000, failurePolicy: "Closed" },
    verification: {
      timeoutMs: 30_000,
      maxConcurrent: 16,
      maxConcurrentPerRegistry: 4,
      maxBytesInFlightMiB: 64,
      maxBytesPerRegistryMiB: 32,
      maxQueued: 512,
      cacheMaxEntries: 10_000,
    },
    registry: { certsDir: "/etc/containerd/certs.d", dockerConfigs: [], credentialProviders: [] },
    sigstore: { tufCacheDir: "/var/lib/tollgate/sigstore-tuf", tufFetchTimeoutMs: 10_000 },
    keyManagement: structuredClone(DEFAULT_KEY_MANAGEMENT),
    log: { level: "info" },
    cluster: {
      statusWriter: true,
      podEvents: true,
      leaseNamespace: "",
      leaseName: "tollgate-status-writer",
      leaseDurationSeconds: 15,
      nodeName: "",
    },
    metrics: { listen: "127.0.0.1:9464" },
  };
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

/** Flag → config key path. Flags take `--flag value` or `--flag=value`. */
const FLAGS: Record<string, string> = {
  "nri-socket": "nri.socket",
  "nri-pre-launched": "nri.preLaunched",
  "plugin-name": "nri.pluginName",
  "plugin-index": "nri.pluginIndex",
  "evict-on-sync": "nri.evictOnSync",
  "nri-enabled": "nri.enabled",
  "containerd-address": "containerd.address",
  "containerd-namespace": "containerd.namespace",
  "api-socket": "api.socket",
  "policy-source": "policy.source",
  "policy-dir": "policy.dir",
  kubeconfig: "policy.kubeconfig",
  "default-policy": "policy.defaultPolicy",
  "exempt-namespace": "policy.exemptNamespaces",
  "exempt-image": "policy.exemptImages",
  "break-glass-max-seconds": "policy.breakGlassMaxSeconds",
  "exempt-namespace-image": "policy.exemptNamespaceImages",
  "snapshot-path": "policy.snapshotPath",
  "snapshot-max-age-seconds": "policy.snapshotMaxAgeSeconds",
  "budget-fraction": "gate.budgetFraction",
  "pull-verifier-mode": "pullVerifier.mode",
  "certs-dir": "registry.certsDir",
  "docker-config": "registry.dockerConfigs",
  "log-level": "log.level",
  "metrics-listen": "metrics.listen",
};

/** Environment variable → config key path. */
const ENV: Record<string, string> = {
  TOLLGATE_NRI_SOCKET: "nri.socket",
  TOLLGATE_CONTAINERD_ADDRESS: "containerd.address",
  TOLLGATE_API_SOCKET: "api.socket",
  TOLLGATE_POLICY_DIR: "policy.dir",
  TOLLGATE_DEFAULT_POLICY: "policy.defaultPolicy",
  TOLLGATE_LOG_LEVEL: "log.level",
  TOLLGATE_METRICS_LISTEN: "metrics.listen",
};

const LIST_KEYS = new Set([
  "policy.exemptNamespaces",
  "policy.exemptImages",
  "policy.exemptNamespaceImages",
  "registry.dockerConfigs",
]);

export interface ParsedArgs {
  configPath?: string;
  overrides: Array<[string, string]>;
}

/** Parses agent flags; unknown flags are errors (a typo must not silently keep a default). */
export function parseFlags(argv: string[]): ParsedArgs {
  const out: ParsedArgs = { overrides: [] };
  const problems: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) {
      problems.push(`unexpected argument "${arg}"`);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    let value: string | undefined = eq >= 0 ? arg.slice(eq + 1) : undefined;
    const key = name === "config" ? "config" : FLAGS[name];
    if (!key) {
      problems.push(`unknown flag --${name}`);
      continue;
    }
    if (value === undefined) {
      const next = argv[i + 1];
      const boolean = ["evict-on-sync", "nri-pre-launched", "nri-enabled"].includes(name);
      if (boolean && (next === undefined || next.startsWith("--"))) value = "true";
      else if (next === undefined) {
        problems.push(`flag --${name} needs a value`);
        continue;
      } else {
        value = next;
        i++;
      }
    }
    if (key === "config") out.configPath = value;
    else out.overrides.push([key, value]);
  }
  if (problems.length > 0) throw new ConfigError("flags", problems);
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
  for (const [name, key] of Object.entries(ENV)) {
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

/** Validates a raw (parsed) configuration object against the schema; fills defaults. */
export function validateConfig(raw: unknown, source = "config"): AgentConfig {
  const d = defaultConfig();
  const problems: string[] = [];
  if (raw === null || typeof raw !== "object" || Array.isArray(raw) || "__notAnObject" in (raw as Obj)) {
    throw new ConfigError(source, ["top level must be a mapping"]);
  }
  const root = raw as Obj;
  const known: Record<string, string[]> = {
    nri: [
      "socket",
      "preLaunched",
      "pluginName",
      "pluginIndex",
      "evictOnSync",
      "evictGracePeriodSeconds",
      "statePath",
      "enabled",
    ],
    containerd: ["address", "namespace", "timeoutMs", "snapshotters"],
    api: ["socket"],
    policy: [
      "source",
      "dir",
      "kubeconfig",
      "defaultPolicy",
      "exemptNamespaces",
      "exemptImages",
      "breakGlassMaxSeconds",
      "exemptNamespaceImages",
      "snapshotPath",
      "snapshotMaxAgeSeconds",
    ],
    gate: ["budgetFraction", "defaultRequestTimeoutMs", "tagMoveWindowSeconds"],
    pullVerifier: ["mode", "timeoutMs", "failurePolicy"],
    verification: [
      "timeoutMs",
      "cacheMaxEntries",
      "maxConcurrent",
      "maxConcurrentPerRegistry",
      "maxBytesInFlightMiB",
      "maxBytesPerRegistryMiB",
      "maxQueued",
    ],
    registry: ["certsDir", "dockerConfigs", "credentialProviders"],
    sigstore: ["tufCacheDir", "tufFetchTimeoutMs"],
    keyManagement: ["azure"],
    log: ["level"],
    cluster: ["statusWriter", "podEvents", "leaseNamespace", "leaseName", "leaseDurationSeconds", "nodeName"],
    metrics: ["listen"],
  };
  for (const k of Object.keys(root)) {
    if (!(k in known)) problems.push(`${k}: unknown key`);
  }
  const section = (name: string): Obj => {
    const v = root[name];
    if (v === undefined || v === null) return {};
    if (typeof v !== "object" || Array.isArray(v)) {
      problems.push(`${name}: must be a mapping`);
      return {};
    }
    for (const k of Object.keys(v)) {
      if (!known[name]!.includes(k)) problems.push(`${name}.${k}: unknown key`);
    }
    return v as Obj;
  };
  const str = (o: Obj, sec: string, k: string, def: string, opts: { allowEmpty?: boolean } = {}): string => {
    const v = o[k];
    if (v === undefined || v === null) return def;
    if (typeof v !== "string" || (!opts.allowEmpty && v.trim() === "")) {
      problems.push(`${sec}.${k}: must be a non-empty string`);
      return def;
    }
    return v;
  };
  const optStr = (o: Obj, sec: string, k: string, def?: string): string | undefined => {
    const v = o[k];
    if (v === undefined || v === null) return def;
    if (typeof v !== "string" || v.trim() === "") {
      problems.push(`${sec}.${k}: must be a non-empty string`);
      return def;
    }
    return v;
  };
  const bool = (o: Obj, sec: string, k: string, def: boolean): boolean => {
    const v = o[k];
    if (v === undefined || v === null) return def;
    if (typeof v === "boolean") return v;
    if (v === "true" || v === "1") return true;
    if (v === "false" || v === "0") return false;
    problems.push(`${sec}.${k}: must be true or false`);
    return def;
  };
  const num = (o: Obj, sec: string, k: string, def: number, min: number, max: number, int = true): number => {
    const v = o[k];
    if (v === undefined || v === null) return def;
    const n = typeof v === "string" && v.trim() !== "" ? Number(v) : v;
    if (typeof n !== "number" || !Number.isFinite(n) || (int && !Number.isInteger(n)) || n < min || n > max) {
      problems.push(`${sec}.${k}: must be ${int ? "an integer" : "a number"} between ${min} and ${max}`);
      return def;
    }
    return n;
  };
  const oneOf = <T extends string>(o: Obj, sec: string, k: string, def: T, values: readonly T[]): T => {
    const v = o[k];
    if (v === undefined || v === null) return def;
    if (typeof v !== "string" || !values.includes(v as T)) {
      problems.push(`${sec}.${k}: must be one of ${values.join(", ")}`);
      return def;
    }
    return v as T;
  };
  const list = (o: Obj, sec: string, k: string, def: string[]): string[] => {
    const v = o[k];
    if (v === undefined || v === null) return def;
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string" || x.trim() === "")) {
      problems.push(`${sec}.${k}: must be a list of non-empty strings`);
      return def;
    }
    return v as string[];
  };

  const nri = section("nri");
  const containerd = section("containerd");
  const api = section("api");
  const policy = section("policy");
  const gate = section("gate");
  const pv = section("pullVerifier");
  const ver = section("verification");
  const reg = section("registry");
  const log = section("log");
  const metrics = section("metrics");
  const sigstore = section("sigstore");
  const cluster = section("cluster");

  const cfg: AgentConfig = {
    nri: {
      socket: str(nri, "nri", "socket", d.nri.socket),
      preLaunched: bool(nri, "nri", "preLaunched", d.nri.preLaunched),
      pluginName: str(nri, "nri", "pluginName", d.nri.pluginName),
      pluginIndex: String(nri.pluginIndex ?? d.nri.pluginIndex),
      evictOnSync: bool(nri, "nri", "evictOnSync", d.nri.evictOnSync),
      evictGracePeriodSeconds: num(
        nri,
        "nri",
        "evictGracePeriodSeconds",
        d.nri.evictGracePeriodSeconds,
        0,
        3600,
      ),
      statePath: str(nri, "nri", "statePath", d.nri.statePath, { allowEmpty: true }),
      enabled: bool(nri, "nri", "enabled", d.nri.enabled),
    },
    containerd: {
      address: str(containerd, "containerd", "address", d.containerd.address),
      namespace: str(containerd, "containerd", "namespace", d.containerd.namespace),
      timeoutMs: num(containerd, "containerd", "timeoutMs", d.containerd.timeoutMs, 10, 60_000),
      snapshotters: list(containerd, "containerd", "snapshotters", d.containerd.snapshotters),
    },
    api: { socket: str(api, "api", "socket", d.api.socket) },
    policy: {
      source: oneOf(policy, "policy", "source", d.policy.source, ["files", "kubernetes"] as const),
      dir: optStr(policy, "policy", "dir", d.policy.dir),
      kubeconfig: optStr(policy, "policy", "kubeconfig"),
      defaultPolicy: str(policy, "policy", "defaultPolicy", d.policy.defaultPolicy),
      exemptNamespaces: list(policy, "policy", "exemptNamespaces", d.policy.exemptNamespaces),
      exemptImages: list(policy, "policy", "exemptImages", d.policy.exemptImages),
      breakGlassMaxSeconds: num(
        policy,
        "policy",
        "breakGlassMaxSeconds",
        d.policy.breakGlassMaxSeconds,
        0,
        30 * 86_400,
      ),
      exemptNamespaceImages: list(policy, "policy", "exemptNamespaceImages", d.policy.exemptNamespaceImages),
      snapshotPath: str(policy, "policy", "snapshotPath", d.policy.snapshotPath, { allowEmpty: true }),
      snapshotMaxAgeSeconds: num(
        policy,
        "policy",
        "snapshotMaxAgeSeconds",
        d.policy.snapshotMaxAgeSeconds,
        1,
        30 * 86_400,
      ),
    },
    gate: {
      budgetFraction: num(gate, "gate", "budgetFraction", d.gate.budgetFraction, 0.05, 0.9, false),
      defaultRequestTimeoutMs: num(
        gate,
        "gate",
        "defaultRequestTimeoutMs",
        d.gate.defaultRequestTimeoutMs,
        100,
        600_000,
      ),
      tagMoveWindowSeconds: num(gate, "gate", "tagMoveWindowSeconds", d.gate.tagMoveWindowSeconds, 0, 86_400),
    },
    pullVerifier: {
      mode: oneOf(pv, "pullVerifier", "mode", d.pullVerifier.mode, [
        "default-policy",
        "any-policy-in-use",
      ] as const),
      timeoutMs: num(pv, "pullVerifier", "timeoutMs", d.pullVerifier.timeoutMs, 100, 600_000),
      failurePolicy: oneOf(pv, "pullVerifier", "failurePolicy", d.pullVerifier.failurePolicy, [
        "Closed",
        "Open",
      ] as const),
    },
    verification: {
      timeoutMs: num(ver, "verification", "timeoutMs", d.verification.timeoutMs, 100, 600_000),
      maxConcurrent: num(ver, "verification", "maxConcurrent", d.verification.maxConcurrent, 1, 1024),
      maxConcurrentPerRegistry: num(
        ver,
        "verification",
        "maxConcurrentPerRegistry",
        d.verification.maxConcurrentPerRegistry,
        1,
        1024,
      ),
      maxBytesInFlightMiB: num(
        ver,
        "verification",
        "maxBytesInFlightMiB",
        d.verification.maxBytesInFlightMiB,
        8,
        16_384,
      ),
      maxBytesPerRegistryMiB: num(
        ver,
        "verification",
        "maxBytesPerRegistryMiB",
        d.verification.maxBytesPerRegistryMiB,
        4,
        16_384,
      ),
      maxQueued: num(ver, "verification", "maxQueued", d.verification.maxQueued, 0, 100_000),
      cacheMaxEntries: num(
        ver,
        "verification",
        "cacheMaxEntries",
        d.verification.cacheMaxEntries,
        1,
        10_000_000,
      ),
    },
    registry: {
      certsDir: str(reg, "registry", "certsDir", d.registry.certsDir),
      dockerConfigs: list(reg, "registry", "dockerConfigs", d.registry.dockerConfigs),
      credentialProviders: (() => {
        const r = parseCredentialProviderSpecs(reg.credentialProviders);
        problems.push(...r.problems);
        return r.specs;
      })(),
    },
    sigstore: {
      tufCacheDir: str(sigstore, "sigstore", "tufCacheDir", d.sigstore.tufCacheDir),
      tufFetchTimeoutMs: num(
        sigstore,
        "sigstore",
        "tufFetchTimeoutMs",
        d.sigstore.tufFetchTimeoutMs,
        100,
        120_000,
      ),
    },
    keyManagement: (() => {
      const r = parseKeyManagementConfig(root.keyManagement);
      problems.push(...r.problems);
      return r.config;
    })(),
    log: {
      level: oneOf(log, "log", "level", d.log.level, [
        "trace",
        "debug",
        "info",
        "warn",
        "error",
        "fatal",
        "silent",
      ] as const),
    },
    cluster: {
      statusWriter: bool(cluster, "cluster", "statusWriter", d.cluster.statusWriter),
      podEvents: bool(cluster, "cluster", "podEvents", d.cluster.podEvents),
      leaseNamespace: str(cluster, "cluster", "leaseNamespace", d.cluster.leaseNamespace, {
        allowEmpty: true,
      }),
      leaseName: str(cluster, "cluster", "leaseName", d.cluster.leaseName),
      leaseDurationSeconds: num(
        cluster,
        "cluster",
        "leaseDurationSeconds",
        d.cluster.leaseDurationSeconds,
        3,
        3600,
      ),
      nodeName: str(cluster, "cluster", "nodeName", d.cluster.nodeName, { allowEmpty: true }),
    },
    metrics: { listen: str(metrics, "metrics", "listen", d.metrics.listen, { allowEmpty: true }) },
  };

  // Cross-field rules.
  if (!/^[0-9]{2}$/.test(cfg.nri.pluginIndex))
    problems.push('nri.pluginIndex: must be two digits, e.g. "10"');
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(cfg.nri.pluginName))
    problems.push("nri.pluginName: must be 1-63 characters of letters, digits, '.', '_' or '-'");
  for (const [k, p] of [
    ["nri.socket", cfg.nri.socket],
    ["api.socket", cfg.api.socket],
  ] as const) {
    if (!p.startsWith("/")) problems.push(`${k}: must be an absolute path`);
  }
  if (cfg.policy.source === "files" && !cfg.policy.dir)
    problems.push("policy.dir: required when policy.source is files");
  if (cfg.metrics.listen !== "" && parseListen(cfg.metrics.listen) === undefined)
    problems.push("metrics.listen: must be host:port (e.g. 127.0.0.1:9464) or empty to disable");
  for (const p of cfg.policy.exemptImages) {
    const err = checkExemptPattern(p);
    if (err) problems.push(`policy.exemptImages: "${p}": ${err}`);
  }
  for (const p of cfg.policy.exemptNamespaceImages) {
    const err = checkExemptPattern(p);
    if (err) problems.push(`policy.exemptNamespaceImages: "${p}": ${err}`);
  }
  if (cfg.policy.exemptNamespaceImages.length > 0 && cfg.policy.exemptNamespaces.length === 0)
    problems.push(
      "policy.exemptNamespaceImages: has no effect without policy.exemptNamespaces (it names what the exempt namespaces pull)",
    );
  if (cfg.nri.statePath !== "" && !cfg.nri.statePath.startsWith("/"))
    problems.push("nri.statePath: must be an absolute path (or empty to keep it in memory)");
  if (!cfg.sigstore.tufCacheDir.startsWith("/"))
    problems.push("sigstore.tufCacheDir: must be an absolute path");
  if (cfg.policy.snapshotPath !== "" && !cfg.policy.snapshotPath.startsWith("/"))
    problems.push("policy.snapshotPath: must be an absolute path (or empty to disable)");
  for (const ns of cfg.policy.exemptNamespaces) {
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(ns))
      problems.push(`policy.exemptNamespaces: "${ns}" is not a valid namespace name`);
  }
  if (cfg.pullVerifier.timeoutMs <= cfg.containerd.timeoutMs)
    problems.push("pullVerifier.timeoutMs: must be larger than containerd.timeoutMs");

  if (problems.length > 0) throw new ConfigError(source, problems);
  return cfg;
}

export function parseListen(s: string): { host: string; port: number } | undefined {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$/.exec(s);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port > 65535) return undefined;
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port };
}

/**
 * Exempt image patterns: `repo:tag`, `repo@sha256:<hex>` or `repo` (any tag/digest), where
 * `*` matches within one path segment and a trailing `/**` any sub-path. A digest in the
 * pattern must match the image's resolved digest exactly, which is the safe form for the
 * pinned sandbox image.
 */
export function checkExemptPattern(p: string): string | undefined {
  if (/\s/.test(p)) return "must not contain whitespace";
  const at = p.indexOf("@");
  if (at >= 0 && !isDigest(p.slice(at + 1)))
    return "digest after '@' must be algorithm:hex";
  if (p.startsWith("*")) return "must name a registry host (a leading '*' would exempt everything)";
  return undefined;
}
