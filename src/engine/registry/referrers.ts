// Referrers of a subject (distribution-spec): the Referrers API with paging, bounded in
// pages and descriptors, or — when an endpoint answers 404 — the referrers tag schema.
import { EngineError, isEngineError } from "../errors.js";
import { assertDigest } from "../reference.js";
import type { Descriptor } from "../types.js";
import type { Capability, RegistryEndpoint } from "./hosts.js";
import { type HttpResponse, header } from "./http.js";
import { OCI_INDEX } from "./mediatypes.js";
import { parseJsonObject, parseNextLink, statusError, toDescriptor } from "./responses.js";
import type {
  FetchedManifest,
  ManifestOptions,
  ReferrersResult,
  RegistryLimits,
  RepositoryRef,
  RequestOptions,
} from "./types.js";

/** What the referrers walk needs from the client. */
export interface ReferrersTransport {
  limits: RegistryLimits;
  onEndpoints<T>(repo: RepositoryRef, cap: Capability, op: (ep: RegistryEndpoint) => Promise<T>): Promise<T>;
  get(
    ep: RegistryEndpoint,
    repo: RepositoryRef,
    url: URL,
    o: { accept?: string; maxBytes: number; what: string; kind: string; signal?: AbortSignal | undefined },
  ): Promise<HttpResponse>;
  endpointUrl(ep: RegistryEndpoint, repo: RepositoryRef, suffix: string): URL;
  fetchManifest(repo: RepositoryRef, reference: string, o: ManifestOptions): Promise<FetchedManifest>;
}

export async function listReferrers(
  t: ReferrersTransport,
  repo: RepositoryRef,
  digest: string,
  opts: RequestOptions & { artifactType?: string } = {},
): Promise<ReferrersResult> {
  assertDigest(digest, "subject digest");
  let api: ReferrersResult | undefined;
  try {
    api = await t.onEndpoints(repo, "referrers", (ep) => referrersApi(t, ep, repo, digest, opts));
  } catch (e) {
    if (!isEngineError(e) || e.code !== "NOT_FOUND") throw e;
  }
  const result = api ?? (await referrersTag(t, repo, digest, opts));
  if (opts.artifactType && !result.filtersApplied) {
    result.descriptors = result.descriptors.filter((d) => d.artifactType === opts.artifactType);
  }
  return result;
}

async function referrersApi(
  t: ReferrersTransport,
  ep: RegistryEndpoint,
  repo: RepositoryRef,
  digest: string,
  opts: RequestOptions & { artifactType?: string },
): Promise<ReferrersResult> {
  let url: URL | undefined = t.endpointUrl(ep, repo, `referrers/${digest}`);
  if (opts.artifactType) url.searchParams.set("artifactType", opts.artifactType);
  const origin = url.origin;
  const out: Descriptor[] = [];
  let truncated = false;
  let filtersApplied = true;
  const seen = new Set<string>();
  for (let page = 0; url; page++) {
    if (page >= t.limits.maxReferrerPages) {
      truncated = true;
      break;
    }
    seen.add(url.toString());
    const what = `referrers of ${digest} in ${repo.registry}/${repo.repository}`;
    const res = await t.get(ep, repo, url, {
      accept: OCI_INDEX,
      maxBytes: t.limits.maxManifestBytes,
      what,
      kind: "referrers",
      signal: opts.signal,
    });
    // 404 = no Referrers API here (distribution spec); the caller falls back to the tag schema.
    if (res.status !== 200) throw statusError(res, what);
    const filters = header(res.headers, "oci-filters-applied") ?? "";
    if (!filters.split(",").some((f) => f.trim() === "artifactType")) filtersApplied = false;
    const room = t.limits.maxReferrers - out.length;
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
      throw new EngineError("MALFORMED", `${what}: Link header points to another origin (${nextUrl.origin})`);
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

async function referrersTag(
  t: ReferrersTransport,
  repo: RepositoryRef,
  digest: string,
  opts: RequestOptions,
): Promise<ReferrersResult> {
  const tag = referrersTagFor(digest);
  let m: FetchedManifest;
  try {
    m = await t.fetchManifest(repo, tag, opts);
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
  const { descriptors, more } = indexEntries(m.json, what, t.limits.maxReferrers);
  return { descriptors, source: "referrers-tag", truncated: more, filtersApplied: false };
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
