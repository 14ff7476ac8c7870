// The agent's settings, each declared once: key path, value check, default, flag, environment
// variable and a one-line description. Defaults, the flag and environment maps, the list
// flags, the unknown-key checks, per-key validation, `tollgate agent --help` and the check of
// docs/configuration.md's table (test/config/settings.test.ts) all derive from SETTINGS.
// `row()` ties each key to AgentConfig at compile time (the value type at that path), and
// `_everySettingDeclared` fails the build when the interface and the table differ.
import { isDigest } from "../base/digest.js";
import { defaultKeyManagement, parseKeyManagementConfig } from "../engine/keys/config.js";
import {
  type CredentialProviderSpec,
  parseCredentialProviderSpecs,
} from "../engine/registry/credentials/spec.js";
import type { AgentConfig } from "./agent.js";

/** Checks a present (non-null) raw value: the value, or undefined after pushing its problems. */
type Check<T> = (raw: unknown, key: string, problems: string[]) => T | undefined;

/** How a setting is spelt and judged; `kind` says how flags and docs treat it. */
export interface SettingType<T> {
  kind: "string" | "path" | "bool" | "int" | "number" | "oneOf" | "list" | "custom";
  check: Check<T>;
  min?: number;
  max?: number;
  values?: readonly string[];
  /** The value as the file spells it, where the checked value has another shape. */
  toFile?: (value: T) => unknown;
}

export interface Setting<K extends string = string, T = unknown> {
  key: K;
  type: SettingType<T>;
  default: T;
  /** `tollgate agent --<flag>`; list flags repeat or take commas, boolean flags may be bare. */
  flag?: string;
  /** TOLLGATE_* environment variable. */
  env?: string;
  /** One line for `tollgate agent --help`. */
  doc: string;
  /** The docs table's Default cell where the default is not a plain value. */
  docDefault?: string;
}

// ---------------------------------------------------------------------------------------
// value types (the problem texts are part of the interface: users and tests read them)

const NON_EMPTY = "must be a non-empty string";

/** A string; `allowEmpty` accepts "" (and blanks); `rule` judges the string further. */
export function text(
  opts: { allowEmpty?: boolean; rule?: (s: string) => string | undefined } = {},
): SettingType<string> {
  return {
    kind: "string",
    check: (v, key, problems) => {
      if (typeof v !== "string" || (!opts.allowEmpty && v.trim() === "")) {
        problems.push(`${key}: ${NON_EMPTY}`);
        return undefined;
      }
      const bad = opts.rule?.(v);
      if (bad !== undefined) {
        problems.push(`${key}: ${bad}`);
        return undefined;
      }
      return v;
    },
  };
}

/** An optional string (absent stays undefined unless there is a default). */
export function optionalText(): SettingType<string | undefined> {
  return text() as SettingType<string | undefined>;
}

/** An absolute path; `emptyMeans` admits "" and says what it does. */
export function absolutePath(emptyMeans?: string): SettingType<string> {
  const t = text({
    allowEmpty: emptyMeans !== undefined,
    rule: (s) =>
      s === "" || s.startsWith("/")
        ? undefined
        : `must be an absolute path${emptyMeans ? ` (or empty to ${emptyMeans})` : ""}`,
  });
  return { ...t, kind: "path" };
}

export function bool(): SettingType<boolean> {
  return {
    kind: "bool",
    check: (v, key, problems) => {
      if (typeof v === "boolean") return v;
      if (v === "true" || v === "1") return true;
      if (v === "false" || v === "0") return false;
      problems.push(`${key}: must be true or false`);
      return undefined;
    },
  };
}

function numeric(kind: "int" | "number", min: number, max: number): SettingType<number> {
  const int = kind === "int";
  return {
    kind,
    min,
    max,
    check: (v, key, problems) => {
      const n = typeof v === "string" && v.trim() !== "" ? Number(v) : v;
      if (
        typeof n !== "number" ||
        !Number.isFinite(n) ||
        (int && !Number.isInteger(n)) ||
        n < min ||
        n > max
      ) {
        problems.push(`${key}: must be ${int ? "an integer" : "a number"} between ${min} and ${max}`);
        return undefined;
      }
      return n;
    },
  };
}
export const int = (min: number, max: number) => numeric("int", min, max);
export const num = (min: number, max: number) => numeric("number", min, max);

export function oneOf<T extends string>(values: readonly T[]): SettingType<T> {
  return {
    kind: "oneOf",
    values,
    check: (v, key, problems) => {
      if (typeof v !== "string" || !values.includes(v as T)) {
        problems.push(`${key}: must be one of ${values.join(", ")}`);
        return undefined;
      }
      return v as T;
    },
  };
}

/** A list of non-empty strings; `item` judges each entry (its problems name the entry). */
export function list(item?: (s: string) => string | undefined): SettingType<string[]> {
  return {
    kind: "list",
    check: (v, key, problems) => {
      if (!Array.isArray(v) || v.some((x) => typeof x !== "string" || x.trim() === "")) {
        problems.push(`${key}: must be a list of non-empty strings`);
        return undefined;
      }
      if (item) {
        for (const s of v as string[]) {
          const bad = item(s);
          if (bad !== undefined) problems.push(`${key}: ${JSON.stringify(s)}${bad}`);
        }
      }
      return v as string[];
    },
  };
}

/**
 * A structured value judged by its owner's parser (its problems carry their own paths);
 * `toFile` spells a parsed value back as the file would, where the shapes differ.
 */
export function custom<T>(
  parse: (raw: unknown) => { value: T; problems: string[] },
  toFile?: (value: T) => unknown,
): SettingType<T> {
  return {
    kind: "custom",
    ...(toFile ? { toFile } : {}),
    check: (v, _key, problems) => {
      const r = parse(v);
      problems.push(...r.problems);
      return r.value;
    },
  };
}

// ---------------------------------------------------------------------------------------
// rules of single settings

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
  if (at >= 0 && !isDigest(p.slice(at + 1))) return "digest after '@' must be algorithm:hex";
  if (p.startsWith("*")) return "must name a registry host (a leading '*' would exempt everything)";
  return undefined;
}

const exemptPattern = (p: string): string | undefined => {
  const err = checkExemptPattern(p);
  return err === undefined ? undefined : `: ${err}`;
};

const namespaceName = (ns: string): string | undefined =>
  /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(ns) ? undefined : " is not a valid namespace name";

/** nri.pluginIndex: YAML may give 10 or "10"; either is read as text, then judged. */
const pluginIndex: SettingType<string> = {
  kind: "string",
  check: (v, key, problems) => {
    const s = String(v);
    if (/^[0-9]{2}$/.test(s)) return s;
    problems.push(`${key}: must be two digits, e.g. "10"`);
    return undefined;
  },
};

// ---------------------------------------------------------------------------------------
// the table

/**
 * "section.key" for every setting of AgentConfig (`file` is where it came from, not a
 * setting). A setting may hold a structure (registry.credentialProviders); its own parser
 * judges what is inside.
 */
export type SettingKey = {
  [S in Exclude<keyof AgentConfig, "file">]: {
    [K in keyof AgentConfig[S] & string]-?: `${S}.${K}`;
  }[keyof AgentConfig[S] & string];
}[Exclude<keyof AgentConfig, "file">];
type ValueAt<K extends SettingKey> = K extends `${infer S extends keyof AgentConfig}.${infer F}`
  ? F extends keyof AgentConfig[S]
    ? AgentConfig[S][F]
    : never
  : never;

/** One row; the key must be an AgentConfig setting and the type and default must fit it. */
function row<K extends SettingKey>(
  key: K,
  type: SettingType<ValueAt<K>>,
  default_: ValueAt<K>,
  doc: string,
  names: { flag?: string; env?: string; docDefault?: string } = {},
): Setting<K, ValueAt<K>> {
  return { key, type, default: default_, doc, ...names };
}

export const SETTINGS = [
  row("nri.socket", absolutePath(), "/var/run/nri/nri.sock", "NRI socket containerd listens on", {
    flag: "nri-socket",
    env: "TOLLGATE_NRI_SOCKET",
  }),
  row(
    "nri.preLaunched",
    bool(),
    false,
    "pre-launched by containerd: connect through the fd in NRI_PLUGIN_SOCKET",
    { flag: "nri-pre-launched" },
  ),
  row(
    "nri.pluginName",
    text({
      rule: (s) =>
        /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(s)
          ? undefined
          : "must be 1-63 characters of letters, digits, '.', '_' or '-'",
    }),
    "tollgate",
    "NRI plugin name",
    { flag: "plugin-name" },
  ),
  row("nri.pluginIndex", pluginIndex, "10", "two-digit order among NRI plugins", { flag: "plugin-index" }),
  row("nri.evictOnSync", bool(), false, "stop non-compliant containers created while the plugin was away", {
    flag: "evict-on-sync",
  }),
  row("nri.evictGracePeriodSeconds", int(0, 3600), 30, "evictOnSync: seconds between SIGTERM and SIGKILL"),
  row(
    "nri.statePath",
    absolutePath("keep it in memory"),
    "",
    'record of containers the gate has seen ("" = memory only)',
  ),
  row("nri.enabled", bool(), true, "false runs without the create-time gate", { flag: "nri-enabled" }),
  row("containerd.address", text(), "/run/containerd/containerd.sock", "containerd gRPC socket", {
    flag: "containerd-address",
    env: "TOLLGATE_CONTAINERD_ADDRESS",
  }),
  row("containerd.namespace", text(), "k8s.io", "containerd namespace of the CRI images", {
    flag: "containerd-namespace",
  }),
  row("containerd.timeoutMs", int(10, 60_000), 500, "deadline for one images API call"),
  row("containerd.snapshotters", list(), ["overlayfs"], "snapshotters holding container rootfs"),
  row("api.socket", absolutePath(), "/run/tollgate/agent.sock", "local API the pull verifier asks", {
    flag: "api-socket",
    env: "TOLLGATE_API_SOCKET",
  }),
  row("policy.source", oneOf(["files", "kubernetes"] as const), "files", "where policies come from", {
    flag: "policy-source",
  }),
  row("policy.dir", optionalText(), "/etc/tollgate/policies", "files source: directory of policy documents", {
    flag: "policy-dir",
    env: "TOLLGATE_POLICY_DIR",
  }),
  row(
    "policy.kubeconfig",
    optionalText(),
    undefined,
    "kubernetes source: kubeconfig (in-cluster when absent)",
    {
      flag: "kubeconfig",
    },
  ),
  row("policy.defaultPolicy", text(), "default", "ImagePolicy of namespaces without an annotation", {
    flag: "default-policy",
    env: "TOLLGATE_DEFAULT_POLICY",
  }),
  row("policy.exemptNamespaces", list(namespaceName), [], "namespaces never verified", {
    flag: "exempt-namespace",
  }),
  row(
    "policy.exemptImages",
    list(exemptPattern),
    [],
    "images always allowed (e.g. the pinned sandbox image)",
    {
      flag: "exempt-image",
    },
  ),
  row("policy.breakGlassMaxSeconds", int(0, 30 * 86_400), 86_400, "longest break-glass window honoured", {
    flag: "break-glass-max-seconds",
  }),
  row("policy.exemptNamespaceImages", list(exemptPattern), [], "images the exempt namespaces run", {
    flag: "exempt-namespace-image",
  }),
  row(
    "policy.snapshotPath",
    absolutePath("disable"),
    "",
    "kubernetes source: on-host snapshot of the last good policy set",
    { flag: "snapshot-path" },
  ),
  row("policy.snapshotMaxAgeSeconds", int(1, 30 * 86_400), 86_400, "a snapshot older than this is not used", {
    flag: "snapshot-max-age-seconds",
  }),
  row("gate.budgetFraction", num(0.05, 0.9), 0.5, "share of the NRI request timeout the gate may spend", {
    flag: "budget-fraction",
  }),
  row(
    "gate.defaultRequestTimeoutMs",
    int(100, 600_000),
    2000,
    "request timeout assumed until containerd announces its own",
  ),
  row(
    "gate.tagMoveWindowSeconds",
    int(0, 86_400),
    600,
    "a name that moved within this window must pass for every digest",
  ),
  row(
    "pullVerifier.mode",
    oneOf(["default-policy", "any-policy-in-use"] as const),
    "default-policy",
    "what a pull must satisfy",
    { flag: "pull-verifier-mode" },
  ),
  row("pullVerifier.timeoutMs", int(100, 600_000), 8000, "time the verifier binary waits for the agent"),
  row(
    "pullVerifier.failurePolicy",
    oneOf(["Closed", "Open"] as const),
    "Closed",
    "the verifier's answer when nothing can decide",
  ),
  row("verification.timeoutMs", int(100, 600_000), 30_000, "upper bound for one verification"),
  row("verification.maxConcurrent", int(1, 1024), 16, "verifications running at once"),
  row("verification.maxConcurrentPerRegistry", int(1, 1024), 4, "verifications at once per registry host"),
  row(
    "verification.maxBytesInFlightMiB",
    int(8, 16_384),
    64,
    "registry response bytes verifications may hold",
  ),
  row("verification.maxBytesPerRegistryMiB", int(4, 16_384), 32, "the same, per registry host"),
  row("verification.maxQueued", int(0, 100_000), 512, "verifications waiting for a slot"),
  row("verification.cacheMaxEntries", int(1, 10_000_000), 10_000, "verdict cache size"),
  row("registry.certsDir", text(), "/etc/containerd/certs.d", "containerd-style hosts directory", {
    flag: "certs-dir",
  }),
  row("registry.dockerConfigs", list(), [], "Docker-style credential files, first match wins", {
    flag: "docker-config",
  }),
  row(
    "registry.credentialProviders",
    custom<CredentialProviderSpec[]>((raw) => {
      const r = parseCredentialProviderSpecs(raw);
      return { value: r.specs, problems: r.problems };
    }),
    [],
    "credential providers by registry host pattern",
  ),
  row(
    "sigstore.tufCacheDir",
    absolutePath(),
    "/var/lib/tollgate/sigstore-tuf",
    "TUF metadata and Sigstore trusted roots for keyless verifiers naming a TUF mirror",
  ),
  row("sigstore.tufFetchTimeoutMs", int(100, 120_000), 10_000, "deadline of one request to a TUF mirror"),
  row(
    "keyManagement.azure",
    custom(
      (raw) => {
        const r = parseKeyManagementConfig({ azure: raw });
        return { value: r.config.azure, problems: r.problems };
      },
      // The file spells the credential's keys beside the others, not under `credential`.
      ({ credential, ...rest }) => ({ ...credential, ...rest }),
    ),
    defaultKeyManagement().azure,
    "the Azure identity that reads Key Vault trust material, stale bound",
    { docDefault: "managed identity" },
  ),
  row(
    "log.level",
    oneOf(["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const),
    "info",
    "log level",
    { flag: "log-level", env: "TOLLGATE_LOG_LEVEL" },
  ),
  row(
    "cluster.statusWriter",
    bool(),
    true,
    "kubernetes source: stand in the election for the agent that writes ImagePolicy.status",
  ),
  row("cluster.podEvents", bool(), true, "kubernetes source: a Warning Event on the pod for each denial"),
  row(
    "cluster.leaseNamespace",
    text({ allowEmpty: true }),
    "",
    'namespace of the status Lease ("" = $POD_NAMESPACE, else tollgate-system)',
  ),
  row("cluster.leaseName", text(), "tollgate-status-writer", "name of the status Lease"),
  row("cluster.leaseDurationSeconds", int(3, 3600), 15, "how long the Lease holds without renewal"),
  row(
    "cluster.nodeName",
    text({ allowEmpty: true }),
    "",
    'this node in Events and the Lease identity ("" = $NODE_NAME, else the host name)',
  ),
  row(
    "metrics.listen",
    text({
      allowEmpty: true,
      rule: (s) =>
        s === "" || parseListen(s) !== undefined
          ? undefined
          : "must be host:port (e.g. 127.0.0.1:9464) or empty to disable",
    }),
    "127.0.0.1:9464",
    "host:port for /metrics, /healthz, /readyz (empty disables)",
    { flag: "metrics-listen", env: "TOLLGATE_METRICS_LISTEN" },
  ),
] as const;

type Exact<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
/** Fails to compile when a setting of AgentConfig has no row (or a row no setting). */
const _everySettingDeclared: Exact<(typeof SETTINGS)[number]["key"], SettingKey> = true;
void _everySettingDeclared;

/** The sections of AgentConfig, in table order. */
export const SECTIONS: readonly string[] = [...new Set(SETTINGS.map((s) => s.key.split(".")[0]!))];
