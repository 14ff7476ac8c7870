// The shapes the agent needs from the engine and the policy source, stated structurally so
// the gate, the pull API and the Synchronize audit can be tested with small fakes. The real
// `Engine` (src/engine) and `PolicySource` (src/policy-source) satisfy these.
import type { FailurePolicy, Mode, Subject, Verdict } from "../engine/types.js";

/** What the agent reads from a compiled policy. */
export interface PolicyRef {
  name: string;
  revision: string;
  mode: Mode;
  failurePolicy: FailurePolicy;
}

export interface VerifyEngine<P extends PolicyRef = PolicyRef> {
  /** Verifies (single flight, cached inside). A verify we stop waiting for keeps running. */
  verify(subject: Subject, policy: P, opts?: { signal?: AbortSignal; timeoutMs?: number }): Promise<Verdict>;
  /**
   * The verdict for this subject without verifying, if it needs none: name-dependent parts
   * decided for subject.reference, signatures from the cache (digest × revision).
   */
  cached(subject: Subject, policy: P): Verdict | undefined;
}

export type BreakGlass = { until: Date | string | number };

export type Selection<P extends PolicyRef = PolicyRef> =
  | { kind: "policy"; namespace: string; policy: P; breakGlass?: BreakGlass; notes?: string[] }
  | { kind: "exempt"; namespace: string; reason: string }
  | { kind: "error"; namespace: string; message: string; failurePolicy: "Closed" };

export interface PolicySelector<P extends PolicyRef = PolicyRef> {
  select(namespace: string, now?: Date): Selection<P>;
  /** Compiled policies in use (the default and those a namespace names). */
  policiesInUse(): P[];
  defaultPolicy(): P | undefined;
  /** Known namespaces this policy decides for at `now` (pull-time `request.namespace` conditions). */
  namespacesUsing?(policy: P, now: Date): string[];
  /** Namespaces under a valid break-glass at `now` (for pull-time admission). */
  activeBreakGlass?(now: Date): Array<{ namespace: string; until: number; reason?: string }>;
}

/** One image record: containerd's name for it and its top-level digest. */
export interface ResolvedImage {
  reference: string;
  digest: string;
}

/** Resolves the container's image to the top-level digest containerd holds for it. */
export interface ImageResolver {
  /**
   * Throws when the content cannot be pinned down exactly. For an image ID (full or short)
   * `records` lists every named record carrying it and `imageId` the ID it named.
   * `forContainer`: the container whose create the lookup serves (a cache may use what
   * containerd already told about that create).
   */
  resolve(
    name: string,
    opts: { deadline: number; forContainer?: string },
  ): Promise<ResolvedImage & { imageId?: string; records?: ResolvedImage[] }>;
  /** The same answer at once when it needs no waiting for the create of `forContainer`; else undefined. */
  resolveNow?(
    name: string,
    forContainer: string,
  ): (ResolvedImage & { imageId?: string; records?: ResolvedImage[] }) | undefined;
}

export function breakGlassUntil(bg: BreakGlass | undefined): number | undefined {
  if (!bg) return undefined;
  const u = bg.until;
  const t = u instanceof Date ? u.getTime() : typeof u === "number" ? u : Date.parse(u);
  return Number.isFinite(t) ? t : undefined;
}
