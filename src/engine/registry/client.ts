// The OCI distribution client the engine composes: endpoints from containerd's hosts.toml,
// credentials from Docker config files, bearer/basic auth, bounded redirects, and every
// manifest/blob verified against its digest and size-capped before anyone sees it.
//
// The pieces along its seams: types.ts (the public shapes), authorizer.ts (the auth state
// machine and tokens), referrers.ts (Referrers API and tag fallback), responses.ts (digests,
// JSON, statuses). This file holds endpoints, transport with redirects, manifests and blobs.
import { EngineError, isEngineError } from "../errors.js";
import { assertDigest, type ImageReference, isValidDigest, parseReference } from "../reference.js";
import type { Descriptor } from "../types.js";
import { Authorizer, type ExchangeRequest } from "./authorizer.js";
import { ContentCache } from "./cache.js";
import { buildCredentialResolver } from "./credentials/index.js";
import { type Capability, loadHostEndpoints, loadTls, type RegistryEndpoint } from "./hosts.js";
import {
  AgentPool,
  type HttpResponse,
  header,
  performRequest,
  type Timeouts,
  type TlsOptions,
} from "./http.js";
import { MANIFEST_ACCEPT, MANIFEST_TYPES } from "./mediatypes.js";
import { listReferrers, type ReferrersTransport } from "./referrers.js";
import { digestOf, parseJsonObject, statusError, verifyDigest } from "./responses.js";
import {
  DEFAULT_LIMITS,
  DEFAULT_TIMEOUTS,
  type FetchedManifest,
  type ManifestOptions,
  type ReferrersResult,
  type RegistryClient,
  type RegistryClientOptions,
  type RegistryLimits,
  type RegistryStats,
  type RepositoryRef,
  type RequestEvent,
  type RequestOptions,
} from "./types.js";

export { referrersTagFor } from "./referrers.js";
export { digestOf, parseNextLink, toDescriptor } from "./responses.js";
export * from "./types.js";

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

class Client implements RegistryClient {
  readonly limits: RegistryLimits;
  readonly stats: RegistryStats = { requests: 0, cacheHits: 0, tokenFetches: 0 };
  private readonly timeouts: Timeouts;
  private readonly pool = new AgentPool();
  private readonly cache: ContentCache;
  private readonly endpoints = new Map<string, RegistryEndpoint[]>();
  private readonly tlsByEndpoint = new Map<RegistryEndpoint, TlsOptions | undefined>();
  private readonly auth: Authorizer;
  private readonly transport: ReferrersTransport;

  constructor(private readonly opts: RegistryClientOptions) {
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
    this.cache = new ContentCache(opts.cacheBytes ?? 64 * 1024 * 1024);
    const now = opts.now ?? Date.now;
    this.auth = new Authorizer({
      credentials: opts.credentials,
      resolver: opts.credentialResolver ?? buildCredentialResolver([], opts.dockerConfigFiles ?? [], now),
      now,
      maxTokenBytes: this.limits.maxTokenBytes,
      userAgent: opts.userAgent ?? "tollgate/0.1",
      stats: this.stats,
      tlsFor: (ep) => this.tlsFor(ep),
      exchange: (req) => this.exchange(req),
    });
    this.transport = {
      limits: this.limits,
      onEndpoints: (repo, cap, op) => this.onEndpoints(repo, cap, op),
      get: (ep, repo, url, o) => this.get(ep, repo, url, o),
      endpointUrl: (ep, repo, suffix) => this.endpointUrl(ep, repo, suffix),
      fetchManifest: (repo, reference, o) => this.fetchManifest(repo, reference, o),
    };
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

  private async exchange({
    url,
    headers,
    maxBytes,
    what,
    kind,
    tls,
    signal,
    method = "GET",
    body,
  }: ExchangeRequest): Promise<HttpResponse> {
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

    let authorization = await this.auth.authorizationFor(ep, repo, scope, undefined, o.signal);
    let retriedAuth = false;
    let current = url;
    const seen = new Set<string>();
    for (let redirects = 0; ; ) {
      const headers = { ...baseHeaders };
      // Credentials go only to the endpoint's own origin, never to a redirect target elsewhere.
      if (authorization && current.origin === origin) headers.authorization = authorization;
      const res = await this.exchange({
        url: current,
        headers,
        maxBytes: o.maxBytes,
        what: o.what,
        kind: o.kind,
        tls: current.origin === origin ? tls : undefined,
        signal: o.signal,
      });
      if (res.status === 401 && current.origin === origin && !retriedAuth) {
        retriedAuth = true;
        authorization = await this.auth.authorizationFor(
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

  listReferrers(
    repo: RepositoryRef,
    digest: string,
    opts: RequestOptions & { artifactType?: string } = {},
  ): Promise<ReferrersResult> {
    return listReferrers(this.transport, repo, digest, opts);
  }
}

export function createRegistryClient(opts: RegistryClientOptions = {}): RegistryClient {
  return new Client(opts);
}
