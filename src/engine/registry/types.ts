// The registry client's public types: what it is configured with and what it answers.
import type { ErrorCode } from "../errors.js";
import type { ImageReference } from "../reference.js";
import type { Descriptor } from "../types.js";
import type { CredentialResolver } from "./credentials/index.js";
import type { Credential } from "./dockerconfig.js";
import type { Timeouts } from "./http.js";

export interface RepositoryRef {
  registry: string;
  repository: string;
}

export interface RegistryLimits {
  /** Cap on a manifest, an index, a referrers page or a tag index. */
  maxManifestBytes: number;
  /** Default cap on a blob (signature envelopes, bundles, payloads). */
  maxBlobBytes: number;
  /** Cap on a token endpoint response. */
  maxTokenBytes: number;
  /** Redirects followed per request. */
  maxRedirects: number;
  /** Referrer descriptors read per subject (over all pages); the rest is dropped, `truncated` set. */
  maxReferrers: number;
  /** Referrers API pages followed per subject. */
  maxReferrerPages: number;
  /** Candidate signature manifests fetched per subject during discovery. */
  maxArtifacts: number;
}

export const DEFAULT_LIMITS: RegistryLimits = {
  maxManifestBytes: 4 * 1024 * 1024,
  maxBlobBytes: 16 * 1024 * 1024,
  maxTokenBytes: 1024 * 1024,
  maxRedirects: 5,
  maxReferrers: 1000,
  maxReferrerPages: 20,
  maxArtifacts: 64,
};

export const DEFAULT_TIMEOUTS: Timeouts = { connectMs: 5_000, totalMs: 30_000 };

export interface RequestEvent {
  method: string;
  url: string;
  /** "manifest" | "blob" | "referrers" | "token" */
  kind: string;
  status?: number;
  error?: ErrorCode;
}

export interface RegistryClientOptions {
  /** containerd's registry config_path (e.g. /etc/containerd/certs.d); unset = defaults only. */
  hostsDir?: string;
  /** Docker-style config files, earlier wins (e.g. ["/var/lib/kubelet/config.json", "/root/.docker/config.json"]). */
  dockerConfigFiles?: string[];
  /** Explicit credentials by registry host; win over config files. */
  credentials?: Record<string, Credential>;
  /** Credential providers by host pattern; when unset, `dockerConfigFiles` serve every host. */
  credentialResolver?: CredentialResolver;
  limits?: Partial<RegistryLimits>;
  timeouts?: Partial<Timeouts>;
  /** Bytes of verified manifests/blobs kept in memory (default 64 MiB; 0 disables). */
  cacheBytes?: number;
  /** Called after every HTTP exchange (tests count requests with it). */
  onRequest?: (ev: RequestEvent) => void;
  /** Clock for token expiry (tests inject one). */
  now?: () => number;
  userAgent?: string;
}

export interface FetchedManifest {
  descriptor: Descriptor;
  bytes: Uint8Array;
  /** The parsed JSON object (shape checked only as far as "is an object with a media type"). */
  json: Record<string, unknown>;
}

export interface ReferrersResult {
  descriptors: Descriptor[];
  source: "referrers-api" | "referrers-tag";
  /** True when a cap (count or pages) cut the list short. */
  truncated: boolean;
  /** True when the server filtered by artifactType (else the client did). */
  filtersApplied: boolean;
}

export interface RequestOptions {
  signal?: AbortSignal;
}

export interface RegistryStats {
  requests: number;
  cacheHits: number;
  tokenFetches: number;
}

export interface RegistryClient {
  readonly limits: Readonly<RegistryLimits>;
  readonly stats: Readonly<RegistryStats>;
  /** Resolves a reference (tag or digest) to its top-level descriptor. */
  resolve(ref: string | ImageReference, opts?: RequestOptions): Promise<Descriptor>;
  /** A manifest by reference, or by repository + digest/tag. Digest-verified; cached by digest. */
  getManifest(ref: string | ImageReference, opts?: ManifestOptions): Promise<FetchedManifest>;
  getManifest(repo: RepositoryRef, reference: string, opts?: ManifestOptions): Promise<FetchedManifest>;
  /** A blob, verified against desc.digest and desc.size, capped at maxBytes (default limits.maxBlobBytes). */
  getBlob(
    repo: RepositoryRef,
    desc: Descriptor,
    opts?: RequestOptions & { maxBytes?: number },
  ): Promise<Uint8Array>;
  /** Referrers of `digest`: the Referrers API, or the referrers tag schema when it 404s. */
  listReferrers(
    repo: RepositoryRef,
    digest: string,
    opts?: RequestOptions & { artifactType?: string },
  ): Promise<ReferrersResult>;
  /** Closes keep-alive sockets. */
  close(): void;
}

export interface ManifestOptions extends RequestOptions {
  /** When known (e.g. from an index), the fetched size must match. */
  expected?: Descriptor;
}
