// The OCI distribution client the engine composes: endpoints from containerd's hosts.toml,
// credentials from Docker config files, bearer/basic auth, bounded redirects, and every
// manifest/blob verified against its digest and size-capped before anyone sees it.
import { descriptorFromJson } from "../../base/descriptor.js";
import { isSupportedDigest } from "../../base/digest.js";
import { createHash } from "node:crypto";
import { EngineError, type ErrorCode, isEngineError } from "../errors.js";
import { assertDigest, type ImageReference, isValidDigest, parseReference } from "../reference.js";
import type { Descriptor } from "../types.js";
import { type Challenge, parseTokenResponse, parseWwwAuthenticate, TokenCache } from "./auth.js";
import { ContentCache } from "./cache.js";
import { buildCredentialResolver, type CredentialResolver } from "./credentials/index.js";
import type { Credential } from "./dockerconfig.js";
import { type Capability, loadHostEndpoints, loadTls, type RegistryEndpoint } from "./hosts.js";
import {
  AgentPool,
  type HttpResponse,
  header,
  performRequest,
  type Timeouts,
  type TlsOptions,
} from "./http.js";
import { MANIFEST_ACCEPT, MANIFEST_TYPES, OCI_INDEX } from "./mediatypes.js";
import { abortable } from "../abortable.js";

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

type AuthState = { kind: "basic" } | { kind: "bearer"; realm: string; service: string };

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export function digestOf(bytes: Uint8Array, algorithm = "sha256"): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest("hex")}`;
}

function verifyDigest(bytes: Uint8Array, digest: string, what: string): void {
  const alg = digest.slice(0, digest.indexOf(":"));
  const got = digestOf(bytes, alg);
  if (got !== digest) {
    throw new EngineError("DIGEST_MISMATCH", `${what}: content digest is ${got}, expected ${digest}`, {
      details: { expected: digest, actual: got },
    });
  }
}

function parseJsonObject(bytes: Uint8Array, what: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch (e) {
    throw new EngineError("MALFORMED", `${what} is not valid JSON`, { cause: e });
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new EngineError("MALFORMED", `${what} is not a JSON object`);
  }
  return doc as Record<string, unknown>;
}

/** Parses `Link: <url>; rel="next"` (RFC 8288, just enough for distribution paging). */
export function parseNextLink(value: string | undefined): string | undefined {
  if (!value) return undefined;
  for (const part of value.split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]*)>\s*(.*)$/.exec(part);
    if (!m) continue;
    if (/(^|;)\s*rel\s*=\s*"?([^";]*\s)?next(\s[^";]*)?"?\s*(;|$)/i.test(m[2] ?? "")) return m[1];
  }
  return undefined;
}

function statusError(res: HttpResponse, what: string): EngineError {
  const host = res.url.host;
  let detail = "";
  try {
    const j = JSON.parse(res.body.toString("utf8")) as {
      errors?: Array<{ code?: string; message?: string }>;
    };
    const e = j.errors?.[0];
    if (e) detail = `: ${e.code ?? ""} ${e.message ?? ""}`.trimEnd();
  } catch {
    detail = "";
  }
  detail = detail.slice(0, 300);
  const details = { host, status: res.status };
  if (res.status === 404)
    return new EngineError("NOT_FOUND", `${what} not found on ${host}${detail}`, { details });
  if (res.status === 401 || res.status === 403) {
    return new EngineError(
      "REGISTRY_AUTH",
      `registry ${host} refused access to ${what} (HTTP ${res.status}: ${res.status === 401 ? "authentication failed" : "not authorized"})${detail}`,
      { details },
    );
  }
  return new EngineError(
    "REGISTRY_ERROR",
    `registry ${host} answered HTTP ${res.status} for ${what}${detail}`,
    { details },
  );
}

class Client implements RegistryClient {
  readonly limits: RegistryLimits;
  readonly stats: RegistryStats = { requests: 0, cacheHits: 0, tokenFetches: 0 };
  private readonly timeouts: Timeouts;
  private readonly pool = new AgentPool();
  private readonly cache: ContentCache;
  private readonly tokens: TokenCache;
  private readonly now: () => number;
  private readonly authStates = new Map<string, AuthState>();
  private readonly endpoints = new Map<string, RegistryEndpoint[]>();
  private readonly tlsByEndpoint = new Map<RegistryEndpoint, TlsOptions | undefined>();
  private readonly resolver: CredentialResolver;
  /** Token requests in flight, by cache key: concurrent requests share one. */
  private readonly tokenFlights = new Map<string, Promise<{ token: string; expiresAt: number }>>();

  constructor(private readonly opts: RegistryClientOptions) {
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
    this.cache = new ContentCache(opts.cacheBytes ?? 64 * 1024 * 1024);
    this.now = opts.now ?? Date.now;
    this.tokens = new TokenCache(this.now);
    this.resolver =
      opts.credentialResolver ?? buildCredentialResolver([], opts.dockerConfigFiles ?? [], this.now);
  }

  close(): void {
    this.pool.destroy();
  }

  // ---- configuration -------------------------------------------------------------------

  private endpointsFor(registry: string, cap: Capability): RegistryEndpoint[] {
    let eps = this.endpoints.get(registry);
    if (!eps) {
      eps = loadHostEndpoints(this.opts.hostsDir, registry);
      this.endpoints.set(registry, eps);
    }
    const usable = eps.filter((e) => e.capabilities.has(cap));
    if (usable.length === 0) {
      throw new EngineError(
        "INVALID_CONFIG",
        `no endpoint for ${registry} has the "${cap}" capability (hosts.toml)`,
      );
    }
    return usable;
  }

  private tlsFor(ep: RegistryEndpoint): TlsOptions | undefined {
    if (!this.tlsByEndpoint.has(ep)) this.tlsByEndpoint.set(ep, loadTls(ep));
    return this.tlsByEndpoint.get(ep);
  }

  private async credentialFor(
    host: string,
    repo: RepositoryRef,
    signal: AbortSignal | undefined,
  ): Promise<Credential | undefined> {
    const explicit = this.opts.credentials?.[host] ?? this.opts.credentials?.[repo.registry];
    if (explicit) return explicit;
    // A mirror endpoint no provider names is served by the registry's own provider.
    const useHost = this.resolver.ruleFor(host) ? host : repo.registry;
    try {
      return await this.resolver.credentialFor({
        host: useHost,
        image: `${repo.registry}/${repo.repository}`,
        ...(signal ? { signal } : {}),
      });
    } catch (e) {
      if (isEngineError(e) && e.code === "REGISTRY_AUTH")
        throw new EngineError("REGISTRY_AUTH", `authentication to ${useHost} failed: ${e.message}`, {
          cause: e,
          ...(e.details ? { details: e.details } : {}),
        });
      throw e;
    }
  }

  // ---- transport ------------------------------------------------------------------------

  private endpointUrl(ep: RegistryEndpoint, repo: RepositoryRef, suffix: string): URL {
    const u = new URL(`${ep.scheme}://${ep.host}${ep.path}/${repo.repository}/${suffix}`);
    if (ep.mirror) u.searchParams.set("ns", repo.registry);
    return u;
  }

  private emit(ev: RequestEvent): void {
    try {
      this.opts.onRequest?.(ev);
    } catch {
      // A test hook must never break a fetch.
    }
  }

  private async exchange(
    url: URL,
    headers: Record<string, string>,
    maxBytes: number,
    what: string,
    kind: string,
    tls: TlsOptions | undefined,
    signal: AbortSignal | undefined,
    method: "GET" | "POST" = "GET",
    body?: string,
  ): Promise<HttpResponse> {
    this.stats.requests++;
    try {
      const res = await performRequest(
        {
          method,
          url,
          headers,
          maxBytes,
          what,
          tls,
          ...(signal ? { signal } : {}),
          ...(body !== undefined ? { body } : {}),
        },
        this.pool,
        this.timeouts,
      );
      this.emit({ method, url: url.toString(), kind, status: res.status });
      return res;
    } catch (e) {
      this.emit({ method, url: url.toString(), kind, error: isEngineError(e) ? e.code : "INTERNAL" });
      throw e;
    }
  }

  /** GET with auth and bounded redirects against one endpoint. */
  private async get(
    ep: RegistryEndpoint,
    repo: RepositoryRef,
    url: URL,
    o: { accept?: string; maxBytes: number; what: string; kind: string; signal?: AbortSignal | undefined },
  ): Promise<HttpResponse> {
    const tls = this.tlsFor(ep);
    const scope = `repository:${repo.repository}:pull`;
    const origin = url.origin;
    const baseHeaders: Record<string, string> = { "user-agent": this.opts.userAgent ?? "tollgate/0.1" };
    for (const [k, v] of Object.entries(ep.header ?? {})) baseHeaders[k.toLowerCase()] = v.join(", ");
    if (o.accept) baseHeaders.accept = o.accept;

    let authorization = await this.authorizationFor(ep, repo, scope, undefined, o.signal);
    let retriedAuth = false;
    let current = url;
    const seen = new Set<string>();
    for (let redirects = 0; ; ) {
      const headers = { ...baseHeaders };
      // Credentials go only to the endpoint's own origin, never to a redirect target elsewhere.
      if (authorization && current.origin === origin) headers.authorization = authorization;
      const res = await this.exchange(
        current,
        headers,
        o.maxBytes,
        o.what,
        o.kind,
        current.origin === origin ? tls : undefined,
        o.signal,
      );
      if (res.status === 401 && current.origin === origin && !retriedAuth) {
        retriedAuth = true;
        authorization = await this.authorizationFor(
          ep,
          repo,
          scope,
          header(res.headers, "www-authenticate") ?? "",
          o.signal,
          authorization,
        );
        if (authorization === undefined) throw statusError(res, o.what);
        continue;
      }
      if (REDIRECTS.has(res.status)) {
        const loc = header(res.headers, "location");
        if (!loc)
          throw new EngineError(
            "REGISTRY_ERROR",
            `registry ${current.host} redirected ${o.what} without a Location`,
          );
        seen.add(current.toString());
        let next: URL;
        try {
          next = new URL(loc, current);
        } catch (e) {
          throw new EngineError(
            "REGISTRY_ERROR",
            `registry ${current.host} redirected ${o.what} to an invalid URL`,
            { cause: e },
          );
        }
        if (next.protocol !== "http:" && next.protocol !== "https:") {
          throw new EngineError(
            "REGISTRY_ERROR",
            `registry ${current.host} redirected ${o.what} to a ${next.protocol} URL`,
          );
        }
        // Never downgrade https → http on a redirect.
        if (current.protocol === "https:" && next.protocol === "http:") {
          throw new EngineError(
            "REGISTRY_ERROR",
            `registry ${current.host} redirected ${o.what} from https to http`,
          );
        }
        redirects++;
        if (seen.has(next.toString()) || redirects > this.limits.maxRedirects) {
          throw new EngineError(
            "REGISTRY_ERROR",
            seen.has(next.toString())
              ? `registry ${current.host} redirected ${o.what} in a loop`
              : `registry ${current.host} redirected ${o.what} more than ${this.limits.maxRedirects} times`,
          );
        }
        current = next;
        continue;
      }
      return res;
    }
  }

  /**
   * The Authorization header for a request: from the remembered challenge of this endpoint
   * (proactively, saving a 401 round trip), or from a fresh challenge after a 401.
   */
  private async authorizationFor(
    ep: RegistryEndpoint,
    repo: RepositoryRef,
    scope: string,
    challengeHeader: string | undefined,
    signal: AbortSignal | undefined,
    /** The Authorization the refused request carried. */
    refused?: string,
  ): Promise<string | undefined> {
    const key = `${ep.scheme}://${ep.host}`;
    let state = this.authStates.get(key);
    let challengeScope: string | undefined;
    if (challengeHeader !== undefined) {
      if (challengeHeader === "") {
        throw new EngineError(
          "REGISTRY_AUTH",
          `registry ${ep.host} answered 401 without a WWW-Authenticate challenge`,
        );
      }
      const challenges: Challenge[] = parseWwwAuthenticate(challengeHeader);
      const bearer = challenges.find((c) => c.scheme === "bearer");
      const basic = challenges.find((c) => c.scheme === "basic");
      if (bearer) {
        const realm = bearer.params.realm;
        if (!realm)
          throw new EngineError(
            "REGISTRY_AUTH",
            `registry ${ep.host} sent a Bearer challenge without a realm`,
          );
        state = { kind: "bearer", realm, service: bearer.params.service ?? "" };
        challengeScope = bearer.params.scope;
        // A 401 for the token we hold means it is no longer good: forget it. A 401 for a
        // request sent before that token arrived says nothing about it (keeping it is what
        // makes concurrent requests share one token).
        const tkey = TokenCache.key(realm, state.service, challengeScope ?? scope);
        const held = this.tokens.get(tkey);
        if (held !== undefined && refused === `Bearer ${held}`) this.tokens.delete(tkey);
      } else if (basic) {
        state = { kind: "basic" };
      } else {
        throw new EngineError(
          "REGISTRY_AUTH",
          `registry ${ep.host} asked for unsupported authentication "${challenges[0]?.scheme ?? ""}"`,
        );
      }
      this.authStates.set(key, state);
    }
    if (!state) return undefined;
    if (state.kind === "basic") {
      const cred = await this.credentialFor(ep.host, repo, signal);
      if (!cred?.username) {
        if (challengeHeader !== undefined) {
          throw new EngineError(
            "REGISTRY_AUTH",
            `registry ${ep.host} requires credentials and none are configured (authentication failed)`,
          );
        }
        return undefined;
      }
      return `Basic ${Buffer.from(`${cred.username}:${cred.password ?? ""}`).toString("base64")}`;
    }
    const { realm, service } = state;
    const useScope = challengeScope ?? scope;
    const tkey = TokenCache.key(realm, service, useScope);
    const cached = this.tokens.get(tkey);
    if (cached) {
      this.stats.cacheHits++;
      return `Bearer ${cached}`;
    }
    // One token request per key however many verifications need it at once (the credential
    // lookup is shared the same way); it runs without any one caller's signal, its own
    // timeouts bound it.
    let flight = this.tokenFlights.get(tkey);
    if (!flight) {
      flight = this.credentialFor(ep.host, repo, undefined)
        .then((cred) => this.fetchToken(ep, realm, service, useScope, cred, undefined))
        .then(
          (tok) => {
            this.tokenFlights.delete(tkey);
            this.tokens.set(tkey, tok.token, tok.expiresAt);
            return tok;
          },
          (e: unknown) => {
            this.tokenFlights.delete(tkey);
            throw e;
          },
        );
      this.tokenFlights.set(tkey, flight);
    } else this.stats.cacheHits++;
    const tok = await abortable(flight, signal, "cancelled");
    return `Bearer ${tok.token}`;
  }

  private async fetchToken(
    ep: RegistryEndpoint,
    realm: string,
    service: string,
    scope: string,
    cred: Credential | undefined,
    signal: AbortSignal | undefined,
  ): Promise<{ token: string; expiresAt: number }> {
    let url: URL;
    try {
      url = new URL(realm);
    } catch (e) {
      throw new EngineError("REGISTRY_AUTH", `registry ${ep.host} sent an invalid token realm`, { cause: e });
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      throw new EngineError("REGISTRY_AUTH", `registry ${ep.host} sent a ${url.protocol} token realm`);
    }
    // Credentials over plain HTTP only to a loopback/plain-HTTP-configured registry's own host.
    const tls = url.host === ep.host ? this.tlsFor(ep) : undefined;
    const headers: Record<string, string> = { "user-agent": this.opts.userAgent ?? "tollgate/0.1" };
    this.stats.tokenFetches++;
    let res: HttpResponse;
    const what = `token for ${scope}`;
    if (cred?.identityToken) {
      const form = new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: cred.identityToken,
        service,
        scope,
        client_id: "tollgate",
      }).toString();
      headers["content-type"] = "application/x-www-form-urlencoded";
      res = await this.exchange(
        url,
        headers,
        this.limits.maxTokenBytes,
        what,
        "token",
        tls,
        signal,
        "POST",
        form,
      );
    } else {
      if (service) url.searchParams.set("service", service);
      if (scope) url.searchParams.set("scope", scope);
      if (cred?.username) {
        headers.authorization = `Basic ${Buffer.from(`${cred.username}:${cred.password ?? ""}`).toString("base64")}`;
      }
      res = await this.exchange(url, headers, this.limits.maxTokenBytes, what, "token", tls, signal);
    }
    if (res.status !== 200) {
      const err = statusError(res, what);
      throw new EngineError(
        err.code === "NOT_FOUND" ? "REGISTRY_AUTH" : err.code,
        `token endpoint: ${err.message}`,
      );
    }
    return parseTokenResponse(res.body, this.now(), url.host);
  }

  /** Runs `op` on each endpoint with `cap` in order, returning the first success. */
  private async onEndpoints<T>(
    repo: RepositoryRef,
    cap: Capability,
    op: (ep: RegistryEndpoint) => Promise<T>,
  ): Promise<T> {
    const eps = this.endpointsFor(repo.registry, cap);
    let firstHard: EngineError | undefined;
    let notFound: EngineError | undefined;
    for (const ep of eps) {
      try {
        return await op(ep);
      } catch (e) {
        const err = isEngineError(e) ? e : new EngineError("INTERNAL", String(e), { cause: e });
        if (err.code === "CANCELLED") throw err;
        if (err.code === "NOT_FOUND") notFound ??= err;
        else firstHard ??= err;
      }
    }
    // A failure to reach or trust an endpoint beats "not found" elsewhere: absence is only
    // reported when every endpoint said so.
    throw firstHard ?? notFound ?? new EngineError("INTERNAL", "no endpoint answered");
  }

  // ---- manifests & blobs ----------------------------------------------------------------

  getManifest(ref: string | ImageReference, opts?: ManifestOptions): Promise<FetchedManifest>;
  getManifest(repo: RepositoryRef, reference: string, opts?: ManifestOptions): Promise<FetchedManifest>;
  getManifest(
    a: string | ImageReference | RepositoryRef,
    b?: string | ManifestOptions,
    c?: ManifestOptions,
  ): Promise<FetchedManifest> {
    if (typeof a === "string" || typeof b !== "string") {
      const ref = typeof a === "string" ? parseReference(a) : (a as ImageReference);
      const reference = ref.digest ?? ref.tag;
      if (!reference)
        throw new EngineError("INVALID_REFERENCE", `reference ${ref.toString()} has neither tag nor digest`);
      return this.fetchManifest(ref, reference, (b as ManifestOptions | undefined) ?? {});
    }
    return this.fetchManifest(a, b, c ?? {});
  }

  private async fetchManifest(
    repo: RepositoryRef,
    reference: string,
    o: ManifestOptions,
  ): Promise<FetchedManifest> {
    const byDigest = reference.includes(":");
    if (byDigest) assertDigest(reference, "manifest digest");
    if (o.expected && o.expected.digest !== reference && byDigest) {
      throw new EngineError("INTERNAL", "expected descriptor does not match the requested digest");
    }
    const what = `manifest ${repo.registry}/${repo.repository}${byDigest ? "@" : ":"}${reference}`;
    if (byDigest) {
      const hit = this.cache.get(reference);
      if (hit) {
        this.stats.cacheHits++;
        return this.toManifest(hit, reference, undefined, o.expected, what);
      }
    }
    if (o.expected && o.expected.size > this.limits.maxManifestBytes) {
      throw new EngineError(
        "TOO_LARGE",
        `${what} is ${o.expected.size} bytes, more than the ${this.limits.maxManifestBytes}-byte cap`,
      );
    }
    return this.onEndpoints(repo, byDigest ? "pull" : "resolve", async (ep) => {
      const res = await this.get(ep, repo, this.endpointUrl(ep, repo, `manifests/${reference}`), {
        accept: MANIFEST_ACCEPT,
        maxBytes: this.limits.maxManifestBytes,
        what,
        kind: "manifest",
        signal: o.signal,
      });
      if (res.status !== 200) throw statusError(res, what);
      let digest: string;
      if (byDigest) digest = reference;
      else {
        const hdr = header(res.headers, "docker-content-digest");
        digest = hdr && isValidDigest(hdr) ? hdr : digestOf(res.body);
      }
      verifyDigest(res.body, digest, what);
      const m = this.toManifest(res.body, digest, header(res.headers, "content-type"), o.expected, what);
      this.cache.set(digest, m.bytes);
      return m;
    });
  }

  private toManifest(
    bytes: Uint8Array,
    digest: string,
    contentType: string | undefined,
    expected: Descriptor | undefined,
    what: string,
  ): FetchedManifest {
    if (expected && expected.size !== bytes.byteLength) {
      throw new EngineError(
        "DIGEST_MISMATCH",
        `${what}: size is ${bytes.byteLength} bytes, the descriptor says ${expected.size}`,
      );
    }
    const json = parseJsonObject(bytes, what);
    const ct = contentType?.split(";")[0]?.trim();
    const mediaType = typeof json.mediaType === "string" ? json.mediaType : ct;
    if (!mediaType || !MANIFEST_TYPES.has(mediaType)) {
      throw new EngineError(
        "UNSUPPORTED",
        `${what} has unsupported media type ${JSON.stringify(mediaType ?? null)}`,
      );
    }
    const descriptor: Descriptor = { mediaType, digest, size: bytes.byteLength };
    if (typeof json.artifactType === "string") descriptor.artifactType = json.artifactType;
    return { descriptor, bytes, json };
  }

  async resolve(ref: string | ImageReference, opts: RequestOptions = {}): Promise<Descriptor> {
    const m = await this.getManifest(typeof ref === "string" ? parseReference(ref) : ref, opts);
    return m.descriptor;
  }

  async getBlob(
    repo: RepositoryRef,
    desc: Descriptor,
    opts: RequestOptions & { maxBytes?: number } = {},
  ): Promise<Uint8Array> {
    assertDigest(desc.digest, "blob digest");
    const what = `blob ${repo.registry}/${repo.repository}@${desc.digest}`;
    const max = Math.min(opts.maxBytes ?? this.limits.maxBlobBytes, this.limits.maxBlobBytes);
    if (!Number.isSafeInteger(desc.size) || desc.size < 0) {
      throw new EngineError("MALFORMED", `${what}: descriptor size ${String(desc.size)} is not a byte count`);
    }
    if (desc.size > max) {
      throw new EngineError("TOO_LARGE", `${what} is ${desc.size} bytes, more than the ${max}-byte cap`, {
        details: { size: desc.size, max },
      });
    }
    const hit = this.cache.get(desc.digest);
    if (hit) {
      this.stats.cacheHits++;
      return hit;
    }
    return this.onEndpoints(repo, "pull", async (ep) => {
      // Reading one byte past the descriptor size is enough to prove a lie.
      const res = await this.get(ep, repo, this.endpointUrl(ep, repo, `blobs/${desc.digest}`), {
        maxBytes: desc.size,
        what,
        kind: "blob",
        signal: opts.signal,
      });
      if (res.status !== 200) throw statusError(res, what);
      if (res.body.length !== desc.size) {
        throw new EngineError(
          "DIGEST_MISMATCH",
          `${what}: got ${res.body.length} bytes, the descriptor says ${desc.size}`,
        );
      }
      verifyDigest(res.body, desc.digest, what);
      const out = new Uint8Array(res.body);
      this.cache.set(desc.digest, out);
      return out;
    });
  }

  // ---- referrers ------------------------------------------------------------------------

  async listReferrers(
    repo: RepositoryRef,
    digest: string,
    opts: RequestOptions & { artifactType?: string } = {},
  ): Promise<ReferrersResult> {
    assertDigest(digest, "subject digest");
    let api: ReferrersResult | undefined;
    try {
      api = await this.onEndpoints(repo, "referrers", (ep) => this.referrersApi(ep, repo, digest, opts));
    } catch (e) {
      if (!isEngineError(e) || e.code !== "NOT_FOUND") throw e;
    }
    const result = api ?? (await this.referrersTag(repo, digest, opts));
    if (opts.artifactType && !result.filtersApplied) {
      result.descriptors = result.descriptors.filter((d) => d.artifactType === opts.artifactType);
    }
    return result;
  }

  private async referrersApi(
    ep: RegistryEndpoint,
    repo: RepositoryRef,
    digest: string,
    opts: RequestOptions & { artifactType?: string },
  ): Promise<ReferrersResult> {
    let url: URL | undefined = this.endpointUrl(ep, repo, `referrers/${digest}`);
    if (opts.artifactType) url.searchParams.set("artifactType", opts.artifactType);
    const origin = url.origin;
    const out: Descriptor[] = [];
    let truncated = false;
    let filtersApplied = true;
    const seen = new Set<string>();
    for (let page = 0; url; page++) {
      if (page >= this.limits.maxReferrerPages) {
        truncated = true;
        break;
      }
      seen.add(url.toString());
      const what = `referrers of ${digest} in ${repo.registry}/${repo.repository}`;
      const res = await this.get(ep, repo, url, {
        accept: OCI_INDEX,
        maxBytes: this.limits.maxManifestBytes,
        what,
        kind: "referrers",
        signal: opts.signal,
      });
      // 404 = no Referrers API here (distribution spec); the caller falls back to the tag schema.
      if (res.status !== 200) throw statusError(res, what);
      const filters = header(res.headers, "oci-filters-applied") ?? "";
      if (!filters.split(",").some((f) => f.trim() === "artifactType")) filtersApplied = false;
      const room = this.limits.maxReferrers - out.length;
      const { descriptors, more } = indexEntries(parseJsonObject(res.body, what), what, room);
      out.push(...descriptors);
      if (more) {
        truncated = true;
        break;
      }
      const next = parseNextLink(header(res.headers, "link"));
      if (!next) break;
      const nextUrl: URL = new URL(next, url);
      // Paging stays on the registry that answered (it carries our token).
      if (nextUrl.origin !== origin) {
        throw new EngineError(
          "MALFORMED",
          `${what}: Link header points to another origin (${nextUrl.origin})`,
        );
      }
      if (seen.has(nextUrl.toString())) break;
      url = nextUrl;
    }
    return {
      descriptors: out,
      source: "referrers-api",
      truncated,
      filtersApplied: opts.artifactType ? filtersApplied : false,
    };
  }

  private async referrersTag(
    repo: RepositoryRef,
    digest: string,
    opts: RequestOptions,
  ): Promise<ReferrersResult> {
    const tag = referrersTagFor(digest);
    let m: FetchedManifest;
    try {
      m = await this.fetchManifest(repo, tag, opts);
    } catch (e) {
      if (isEngineError(e) && e.code === "NOT_FOUND") {
        return { descriptors: [], source: "referrers-tag", truncated: false, filtersApplied: false };
      }
      throw e;
    }
    const what = `referrers tag ${tag} in ${repo.registry}/${repo.repository}`;
    if (m.descriptor.mediaType !== OCI_INDEX) {
      throw new EngineError("MALFORMED", `${what} is a ${m.descriptor.mediaType}, not an OCI index`);
    }
    const { descriptors, more } = indexEntries(m.json, what, this.limits.maxReferrers);
    return { descriptors, source: "referrers-tag", truncated: more, filtersApplied: false };
  }
}

/** The referrers tag schema tag for a digest: "<alg>-<hex>" (distribution-spec). */
export function referrersTagFor(digest: string): string {
  const i = digest.indexOf(":");
  const alg = digest.slice(0, i).slice(0, 32);
  const hex = digest.slice(i + 1).slice(0, 64);
  return `${alg}-${hex}`.replace(/[^a-zA-Z0-9_.-]/g, "-");
}

/** Validated descriptors of an index's `manifests`, at most `room` of them. */
function indexEntries(
  json: Record<string, unknown>,
  what: string,
  room: number,
): { descriptors: Descriptor[]; more: boolean } {
  const list = json.manifests;
  if (list === undefined || list === null) return { descriptors: [], more: false };
  if (!Array.isArray(list)) throw new EngineError("MALFORMED", `${what}: "manifests" is not an array`);
  const out: Descriptor[] = [];
  for (const raw of list) {
    if (out.length >= room) return { descriptors: out, more: true };
    const d = toDescriptor(raw);
    if (d) out.push(d);
  }
  return { descriptors: out, more: false };
}

/**
 * A descriptor from untrusted JSON, or undefined when it is not one (skipped, not fatal).
 * Its content is fetched and hashed, so the digest must use an algorithm we can check.
 */
export function toDescriptor(raw: unknown): Descriptor | undefined {
  const d = descriptorFromJson(raw);
  return d && isSupportedDigest(d.digest) ? d : undefined;
}

export function createRegistryClient(opts: RegistryClientOptions = {}): RegistryClient {
  return new Client(opts);
}
