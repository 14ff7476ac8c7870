// Which policy governs a namespace: a pure function of the namespace's own metadata, the
// loaded policies and the agent configuration. Pod labels and annotations are written by
// tenants, so there is deliberately no parameter through which they could reach this code.
//
// Order of decisions:
//   1. exemptNamespaces (configuration, exact names)        → exempt
//   2. namespace unknown to the source                        → error (fail closed)
//   3. annotation `tollgate.dev/policy` present               → that policy, or error if missing
//   4. otherwise                                              → the default policy, or error
// Break-glass (annotation with an RFC 3339 expiry) only decorates a "policy" selection: the
// policy is still evaluated and the caller allows-and-audits. It never turns an error into
// an allow, and it never applies to a namespace whose metadata we do not have.
//
// Break-glass beyond the cap is REFUSED (normal enforcement + a note), not clamped: a
// clamp relative to "now" slides forward on every evaluation, so an expiry in year 3000
// would be an endless break-glass. Malformed expiries are refused the same way.

import type { CompiledPolicyLike } from "./model.js";
import type { BreakGlass, Selection, SelectionConfig } from "./types.js";

export const DEFAULT_POLICY_ANNOTATION = "tollgate.dev/policy";
export const DEFAULT_BREAK_GLASS_ANNOTATION = "tollgate.dev/break-glass";
export const DEFAULT_BREAK_GLASS_REASON_ANNOTATION = "tollgate.dev/break-glass-reason";
export const DEFAULT_MAX_BREAK_GLASS_SECONDS = 86_400;
const MAX_REASON_CHARS = 256;

/** The only input about a tenant: its Namespace object's name and annotations. */
export interface NamespaceMeta {
  name: string;
  annotations: Readonly<Record<string, string>>;
}

export interface SelectInput<P extends CompiledPolicyLike> {
  namespace: string;
  /** undefined: the source does not know this namespace (yet). */
  meta: NamespaceMeta | undefined;
  /** The loaded policies by name (only `get` is used: a source passes a view, not a copy). */
  policies: Pick<ReadonlyMap<string, P>, "get">;
  config: SelectionConfig;
  now: Date;
}

// RFC 1123 label: what a namespace name can be.
const NAMESPACE_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
// RFC 1123 subdomain: what a cluster-scoped object name can be.
const OBJECT_NAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const RFC3339_RE = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

export function isValidNamespaceName(ns: string): boolean {
  // By character codes: this runs on every CreateContainer, and the pattern's test cost
  // about 1 µs there (bench/, NRI round trip). NAMESPACE_RE states the same rule.
  const n = ns.length;
  if (n === 0 || n > 63) return false;
  for (let i = 0; i < n; i++) {
    const c = ns.charCodeAt(i);
    const alnum = (c >= 97 && c <= 122) || (c >= 48 && c <= 57);
    if (!alnum && (c !== 45 || i === 0 || i === n - 1)) return false;
  }
  return true;
}

/** The rule isValidNamespaceName implements, as a pattern (tests compare the two). */
export const NAMESPACE_PATTERN = NAMESPACE_RE;

export function isValidObjectName(name: string): boolean {
  return name.length <= 253 && OBJECT_NAME_RE.test(name);
}

export function selectPolicy<P extends CompiledPolicyLike>(input: SelectInput<P>): Selection<P> {
  const { namespace, meta, policies, config, now } = input;
  const error = (message: string): Selection<P> => ({
    kind: "error",
    namespace,
    message,
    failurePolicy: "Closed",
  });

  if (!isValidNamespaceName(namespace)) return error(`"${clip(namespace)}" is not a valid namespace name`);

  if ((config.exemptNamespaces ?? []).includes(namespace)) {
    return { kind: "exempt", namespace, reason: `namespace ${namespace} is exempt by configuration` };
  }

  if (meta === undefined || meta.name !== namespace) {
    return error(`namespace ${namespace} is not known to the policy source yet`);
  }

  const policyAnnotation = config.policyAnnotation ?? DEFAULT_POLICY_ANNOTATION;
  const named = Object.hasOwn(meta.annotations, policyAnnotation)
    ? meta.annotations[policyAnnotation]
    : undefined;

  let policy: P | undefined;
  let via: "annotation" | "default";
  if (named !== undefined) {
    via = "annotation";
    if (!isValidObjectName(named)) {
      return error(
        `namespace ${namespace}: annotation ${policyAnnotation}="${clip(named)}" is not a valid policy name`,
      );
    }
    policy = policies.get(named);
    if (policy === undefined) {
      return error(
        `namespace ${namespace} selects ImagePolicy "${named}", which does not exist or never loaded`,
      );
    }
  } else {
    via = "default";
    if (config.defaultPolicy === undefined) {
      return error(
        `namespace ${namespace} has no ${policyAnnotation} annotation and no default policy is configured`,
      );
    }
    policy = policies.get(config.defaultPolicy);
    if (policy === undefined) {
      return error(`default ImagePolicy "${config.defaultPolicy}" does not exist or never loaded`);
    }
  }

  const bg = breakGlassOf(meta, config, now);
  const out: Selection<P> = { kind: "policy", namespace, policy, via };
  if (bg.active) out.breakGlass = bg.active;
  if (bg.note) out.notes = [bg.note];
  return out;
}

interface BreakGlassResult {
  active?: BreakGlass;
  note?: string;
}

/** Reads the break-glass annotations; see the header for the refuse-not-clamp rule. */
export function breakGlassOf(meta: NamespaceMeta, config: SelectionConfig, now: Date): BreakGlassResult {
  const key = config.breakGlassAnnotation ?? DEFAULT_BREAK_GLASS_ANNOTATION;
  if (!Object.hasOwn(meta.annotations, key)) return {};
  const raw = meta.annotations[key] ?? "";
  const cap = config.maxBreakGlassSeconds ?? DEFAULT_MAX_BREAK_GLASS_SECONDS;
  if (cap <= 0) return { note: `break-glass annotation ignored: break-glass is disabled by configuration` };
  if (!RFC3339_RE.test(raw.trim())) {
    return { note: `break-glass annotation ignored: "${clip(raw)}" is not an RFC 3339 time` };
  }
  const until = new Date(raw.trim());
  if (Number.isNaN(until.getTime())) {
    return { note: `break-glass annotation ignored: "${clip(raw)}" is not a valid time` };
  }
  if (until.getTime() <= now.getTime()) {
    return { note: `break-glass expired at ${until.toISOString()}` };
  }
  if (until.getTime() > now.getTime() + cap * 1000) {
    return {
      note: `break-glass refused: expiry ${until.toISOString()} is more than ${cap}s after now (the configured maximum)`,
    };
  }
  const reasonKey = config.breakGlassReasonAnnotation ?? DEFAULT_BREAK_GLASS_REASON_ANNOTATION;
  const reason = Object.hasOwn(meta.annotations, reasonKey) ? meta.annotations[reasonKey] : undefined;
  const active: BreakGlass = { until };
  if (reason !== undefined) active.reason = sanitize(reason).slice(0, MAX_REASON_CHARS);
  return { active };
}

function sanitize(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping control characters is the point
  return s.replace(/[\u0000-\u001f\u007f]/g, " ");
}

function clip(s: string): string {
  const clean = sanitize(s);
  return clean.length > 80 ? `${clean.slice(0, 80)}…` : clean;
}
