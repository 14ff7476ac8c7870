// Wire types of the agent's local API (JSON over HTTP on a root-only unix socket). Types
// only: the pull verifier imports them without pulling in any agent code.

import type { ProviderStatus } from "../engine/registry/credentials/resolver.js";
import type { KeyProviderStatus, TrustSourceStatus } from "../engine/index.js";
import type { Descriptor } from "../engine/types.js";

/** POST /v1/pull-verdict */
export interface PullVerdictRequest {
  /** Reference as containerd pulled it (the verifier's -name). */
  name: string;
  /** Top-level digest (the verifier's -digest). */
  digest: string;
  /** The descriptor containerd wrote on the verifier's stdin. */
  descriptor?: Descriptor;
}

export interface PullVerdictResponse {
  allowed: boolean;
  /** One line, shown by containerd in the pull error when denied. */
  message: string;
  kind: string;
  policy?: { name: string; revision: string };
  policies?: Array<{ name: string; revision: string; allowed: boolean; kind: string; reason: string }>;
}

/** GET /v1/status */
export interface AgentStatus {
  version: string;
  startedAt: string;
  ready: boolean;
  notReady: string[];
  nri: { enabled: boolean; state: string; requestTimeoutMs?: number; lastSyncAudit?: SyncAuditSummary };
  policySource: unknown;
  defaultPolicy?: { name: string; revision: string; mode: string; failurePolicy: string };
  policies: Array<{ name: string; revision: string; mode: string; failurePolicy: string }>;
  pullVerifier: { mode: string };
  exemptNamespaces: string[];
  exemptImages: string[];
  /** Registry credential providers: calls, cache hits, last failure (never a credential). */
  credentialProviders?: ProviderStatus[];
  /** Sigstore trusted roots from TUF mirrors: state, fetched at, expires, last error. */
  sigstoreTrust?: TrustSourceStatus[];
  /** Key management providers: ready, stale, last refresh, error, material revision (never material). */
  keyProviders?: KeyProviderStatus[];
}

export interface SyncAuditSummary {
  at: string;
  containers: number;
  nonCompliant: Array<{
    id: string;
    name: string;
    pod: string;
    namespace: string;
    image: string;
    reason: string;
  }>;
  evictionsRequested: number;
}
