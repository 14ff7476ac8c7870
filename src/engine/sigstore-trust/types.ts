// A Sigstore trusted root distributed through TUF: what a policy names (TufSource), what the
// agent holds (TrustedRootSnapshot) and what operators see (TrustSourceStatus).

/** A TUF repository serving `trusted_root.json`, as a compiled policy names it. */
export interface TufSource {
  /** Metadata base URL, without a trailing slash (targets are under `<mirror>/targets`). */
  mirror: string;
  /** The TUF root.json (JSON text) the chain of trust starts from. */
  rootJson: string;
  /** sha256 hex of `rootJson`. */
  rootDigest: string;
  /** How often the agent asks the mirror for newer metadata. */
  refreshIntervalSeconds: number;
  /** Stable key of (mirror, initial root): names the cache directory and the status entry. */
  id: string;
}

/** A verified trusted root as held in memory. */
export interface TrustedRootSnapshot {
  /** Parsed trusted_root.json (Sigstore TrustedRoot, JSON form). */
  json: unknown;
  /** sha256 hex of the trusted_root.json bytes. */
  digest: string;
  /** When the mirror last confirmed this root (a completed TUF refresh). */
  fetchedAt: string;
  /** Earliest expiry of the TUF metadata (root, timestamp, snapshot, targets) that vouched for it. */
  expires: string;
  /** Version of the TUF root metadata at that refresh. */
  rootVersion: number;
  /** "tuf": fetched by this process; "cache": loaded from the on-disk cache of an earlier refresh. */
  origin: "tuf" | "cache";
}

export interface TrustSourceStatus {
  id: string;
  mirror: string;
  /** First 12 hex of the initial TUF root's sha256. */
  initialRoot: string;
  /**
   * fresh: a root is held and the last refresh succeeded within its metadata's lifetime.
   * stale: a root is held but the last refresh failed or its metadata expired (it is still used).
   * unavailable: no verified root at all; keyless verifications using it cannot complete.
   */
  state: "fresh" | "stale" | "unavailable";
  origin?: "tuf" | "cache";
  fetchedAt?: string;
  expires?: string;
  rootVersion?: number;
  /** First 12 hex of the held trusted_root.json's sha256. */
  trustedRoot?: string;
  refreshIntervalSeconds: number;
  lastAttemptAt?: string;
  nextRefreshAt?: string;
  lastError?: { message: string; at: string };
  consecutiveFailures: number;
}

/** What the engine asks for a trusted root named by TUF. */
export interface TrustedRootResolver {
  /**
   * The current verified root: held in memory, else loaded from the on-disk cache, else
   * fetched (unless offline). Throws EngineError TRUST_ROOT_UNAVAILABLE when none can be had.
   */
  get(src: TufSource, signal?: AbortSignal): Promise<TrustedRootSnapshot>;
  /** The root held in memory now, without any I/O. */
  peek(src: TufSource): TrustedRootSnapshot | undefined;
}
