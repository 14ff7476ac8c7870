// The policy source boundary: what the agent asks ("which policy governs namespace X now?")
// and what it can show operators (loaded revisions, rejected updates, sync state).

import type { CompiledPolicy, CompiledPolicyLike } from "./model.js";

export type {
  CompiledPolicy,
  CompiledPolicyLike,
  PolicyCompiler,
  TrustMaterialRef,
  TrustMaterialResolver,
} from "./model.js";

export interface BreakGlass {
  /** Expiry from the namespace annotation; never later than now + maxBreakGlassSeconds. */
  until: Date;
  reason?: string;
}

/**
 * The answer for one namespace.
 * - policy: evaluate `policy`; with `breakGlass` the caller allows a would-be denial and
 *   audits it (the verdict is computed anyway).
 * - exempt: the namespace is listed in configuration; nothing is verified.
 * - error: the namespace's configuration cannot be honoured (named policy missing, source
 *   not synced, …). Always fail closed: an error never widens access.
 */
export type Selection<P extends CompiledPolicyLike = CompiledPolicy> =
  | {
      kind: "policy";
      namespace: string;
      policy: P;
      /** "annotation" when the namespace named the policy, "default" otherwise. */
      via: "annotation" | "default";
      breakGlass?: BreakGlass;
      /** Things an operator should see in the audit log (e.g. a refused break-glass). */
      notes?: string[];
    }
  | { kind: "exempt"; namespace: string; reason: string }
  | { kind: "error"; namespace: string; message: string; failurePolicy: "Closed" };

export interface PolicyStatusEntry {
  name: string;
  revision: string;
  mode: string;
  failurePolicy: string;
  /** Where the document came from: a file path or "ImagePolicy/<name>@<resourceVersion>". */
  origin: string;
  loadedAt: string;
  /** Set when a newer update of this policy was rejected and this revision was kept. */
  rejectedUpdate?: { reason: string; at: string; origin: string };
}

/** What became of a policy's latest document (ImagePolicy status, tollgate_policy_ready). */
export interface PolicyOutcome {
  name: string;
  /** The revision in force (absent when no document of it ever compiled). */
  revision?: string;
  /** Set when the latest document was refused; `revision`, if any, is an earlier one. */
  rejected?: { reason: string; at: string };
}

export interface RejectedUpdate {
  /** Policy name when known; absent for whole-file rejections. */
  policy?: string;
  origin: string;
  reason: string;
  at: string;
  /** The revision that stayed in force, if any. */
  keptRevision?: string;
}

/** "snapshot": deciding from the on-host snapshot until the live source syncs. */
export type SyncState = "starting" | "snapshot" | "synced" | "reconnecting" | "stopped";

export interface SourceStatus {
  source: "files" | "kubernetes";
  ready: boolean;
  sync: { state: SyncState; lastSyncAt?: string; lastError?: string; lastErrorAt?: string };
  defaultPolicy?: string;
  policies: PolicyStatusEntry[];
  /** Most recent rejections first, bounded. */
  rejected: RejectedUpdate[];
  namespaces: number;
}

export interface PolicySource<P extends CompiledPolicyLike = CompiledPolicy> {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Pure lookup from the source's current state: namespace metadata only, never pod data. */
  select(namespace: string, now?: Date): Selection<P>;
  /** Policies currently in force (last good revisions). */
  policies(): P[];
  /** The default policy and every policy a non-exempt namespace names. */
  policiesInUse(): P[];
  defaultPolicy(): P | undefined;
  /** Known namespaces this policy decides for (pull-time `request.namespace` conditions). */
  namespacesUsing?(policy: { name: string; revision: string }, now?: Date): string[];
  /** Namespaces under a valid break-glass at `now` (for pull-time admission). */
  activeBreakGlass?(now?: Date): Array<{ namespace: string; until: number; reason?: string }>;
  /** Called after any change that can change a selection or a revision. Returns unsubscribe. */
  onChange(cb: () => void): () => void;
  status(): SourceStatus;
  /** Per known policy: revision in force, latest document refused or not. */
  policyOutcomes?(): PolicyOutcome[];
}

/** Agent configuration that drives selection. */
export interface SelectionConfig {
  /** Name of the ImagePolicy for namespaces without the policy annotation. */
  defaultPolicy?: string;
  /** Namespaces exempt from verification (exact names). */
  exemptNamespaces?: string[];
  /** Annotation naming the policy; default "tollgate.dev/policy". */
  policyAnnotation?: string;
  /** Annotation carrying the break-glass expiry (RFC 3339); default "tollgate.dev/break-glass". */
  breakGlassAnnotation?: string;
  /** Annotation carrying the break-glass reason; default "tollgate.dev/break-glass-reason". */
  breakGlassReasonAnnotation?: string;
  /** Longest break-glass window accepted; default 86400 (24 h). 0 disables break-glass. */
  maxBreakGlassSeconds?: number;
}

/** Minimal logger (pino-compatible subset). */
export interface SourceLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: SourceLogger = {
  info() {},
  warn() {},
  error() {},
};
