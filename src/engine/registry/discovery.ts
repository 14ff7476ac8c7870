// Signature discovery for one subject digest (protocols.md §7): referrers (API, or the
// referrers tag schema when the API 404s) plus cosign's legacy `sha256-<hex>.sig` tag.
// Index entries are only candidates: each candidate manifest is fetched (digest-checked)
// and classified from its own content, because tag-index entries lie (cosign lists its
// bundle as application/vnd.oci.empty.v1+json).
//
// Caps: a subject with more referrers than `maxReferrers` (or more pages than
// `maxReferrerPages`, or more signature candidates than `maxArtifacts`) gives a bounded
// result with `truncated: true`, not an error. Dropping candidates can only lose
// signatures (a denial or a failed check), never invent one, and a flood of junk referrers
// then cannot make an otherwise-signed image unverifiable before the valid one is seen.
import { isEngineError } from "../errors.js";
import { assertDigest, parseReference } from "../reference.js";
import type {
  ArtifactKind,
  ArtifactSource,
  Descriptor,
  DiscoveredArtifact,
  DiscoverySource,
  OciManifest,
  Subject,
} from "../types.js";
import { type FetchedManifest, type RegistryClient, type RepositoryRef, toDescriptor } from "./client.js";
import {
  COSIGN_ARTIFACT_SIG,
  COSIGN_BUNDLE_V03,
  COSIGN_SIMPLESIGNING,
  DOCKER_MANIFEST,
  NOTATION_SIGNATURE,
  OCI_EMPTY,
  OCI_MANIFEST,
} from "./mediatypes.js";

export interface DiscoverOptions {
  signal?: AbortSignal;
  /** Which signature kinds to return (default all). */
  kinds?: readonly ArtifactKind[];
  /** Look up cosign's legacy `.sig` tag (default: when cosign kinds are wanted). */
  cosignTag?: boolean;
}

const COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1";

/** Index-entry artifact types worth fetching: the signature types, plus the ones tools write for them. */
const CANDIDATE_TYPES: ReadonlySet<string> = new Set([
  NOTATION_SIGNATURE,
  COSIGN_BUNDLE_V03,
  COSIGN_ARTIFACT_SIG,
  // cosign 3.1.1 writes its bundle's tag-index entry with the empty type.
  OCI_EMPTY,
]);

const KIND_TYPES: Record<ArtifactKind, string> = {
  notation: NOTATION_SIGNATURE,
  "cosign-bundle": COSIGN_BUNDLE_V03,
  "cosign-artifact-sig": COSIGN_ARTIFACT_SIG,
  "cosign-simplesigning": COSIGN_SIMPLESIGNING,
};

/** The legacy cosign signature tag for a digest: "sha256-<hex>.sig". */
export function cosignSignatureTag(digest: string): string {
  return `${digest.replace(":", "-")}.sig`;
}

/** Shape-checks an untrusted manifest object into an OciManifest, or explains why not. */
export function toOciManifest(json: Record<string, unknown>): OciManifest | string {
  if (json.schemaVersion !== 2) return "schemaVersion is not 2";
  const config = toDescriptor(json.config);
  if (!config) return "config is not a descriptor";
  if (!Array.isArray(json.layers)) return "layers is not an array";
  const layers: Descriptor[] = [];
  for (const l of json.layers) {
    const d = toDescriptor(l);
    if (!d) return "a layer is not a descriptor";
    layers.push(d);
  }
  const m: OciManifest = { schemaVersion: 2, config, layers };
  if (typeof json.mediaType === "string") m.mediaType = json.mediaType;
  if (typeof json.artifactType === "string") m.artifactType = json.artifactType;
  if (json.subject !== undefined) {
    const s = toDescriptor(json.subject);
    if (!s) return "subject is not a descriptor";
    m.subject = s;
  }
  if (typeof json.annotations === "object" && json.annotations !== null && !Array.isArray(json.annotations)) {
    const ann: Record<string, string> = {};
    for (const [k, v] of Object.entries(json.annotations)) if (typeof v === "string") ann[k] = v;
    m.annotations = ann;
  }
  return m;
}

/**
 * Classifies a fetched artifact manifest. Returns undefined for anything that is not a
 * signature this engine verifies (SBOMs, attestations, images…).
 */
export function classifyArtifact(m: OciManifest, source: DiscoverySource): ArtifactKind | undefined {
  if (m.mediaType !== undefined && m.mediaType !== OCI_MANIFEST && m.mediaType !== DOCKER_MANIFEST)
    return undefined;
  const type = m.artifactType ?? m.config.mediaType;
  if (type === NOTATION_SIGNATURE) return "notation";
  if (type === COSIGN_BUNDLE_V03) return "cosign-bundle";
  if (type === COSIGN_ARTIFACT_SIG) return "cosign-artifact-sig";
  // The legacy .sig tag: a plain image manifest whose layers are simplesigning payloads.
  if (
    source === "cosign-tag" &&
    m.layers.length > 0 &&
    m.layers.some((l) => l.mediaType === COSIGN_SIMPLESIGNING)
  ) {
    return "cosign-simplesigning";
  }
  return undefined;
}

function artifactTypeOf(m: OciManifest): string {
  return m.artifactType ?? m.config.mediaType;
}

/** Finds the signature artifacts of `subject`. */
export async function discoverSignatures(
  client: RegistryClient,
  subject: Subject,
  opts: DiscoverOptions = {},
): Promise<ArtifactSource> {
  assertDigest(subject.digest, "subject digest");
  const ref = parseReference(subject.reference);
  const repo: RepositoryRef = { registry: ref.registry, repository: ref.repository };
  const kinds = new Set<ArtifactKind>(
    opts.kinds ?? ["notation", "cosign-bundle", "cosign-artifact-sig", "cosign-simplesigning"],
  );
  const wantsCosign = [...kinds].some((k) => k.startsWith("cosign"));
  const signal = opts.signal;

  // Server-side filtering only helps when exactly one index artifactType is wanted.
  const referrerKinds = [...kinds].filter((k) => k !== "cosign-simplesigning");
  const onlyType =
    referrerKinds.length === 1 && referrerKinds[0] === "notation" ? KIND_TYPES.notation : undefined;

  let truncated = false;
  const candidates: Array<{ desc: Descriptor; source: DiscoverySource }> = [];
  if (referrerKinds.length > 0) {
    const listed = await client.listReferrers(repo, subject.digest, {
      ...(signal ? { signal } : {}),
      ...(onlyType ? { artifactType: onlyType } : {}),
    });
    truncated ||= listed.truncated;
    for (const d of listed.descriptors) {
      // Only image manifests can be signature artifacts; entries without a type are fetched.
      if (d.mediaType !== OCI_MANIFEST && d.mediaType !== DOCKER_MANIFEST) continue;
      if (d.artifactType !== undefined && !CANDIDATE_TYPES.has(d.artifactType)) continue;
      candidates.push({ desc: d, source: listed.source });
    }
  }

  const artifacts: DiscoveredArtifact[] = [];
  const seen = new Set<string>();
  const max = client.limits.maxArtifacts;
  for (const c of candidates) {
    if (seen.has(c.desc.digest)) continue;
    seen.add(c.desc.digest);
    if (seen.size > max) {
      truncated = true;
      break;
    }
    const fetched = await fetchCandidate(client, repo, c.desc.digest, c.desc, signal);
    if (!fetched) continue;
    const manifest = toOciManifest(fetched.json);
    if (typeof manifest === "string") continue;
    // A referrer must name this subject; a tag index pointing elsewhere is ignored.
    if (manifest.subject?.digest !== subject.digest) continue;
    const kind = classifyArtifact(manifest, c.source);
    if (!kind || !kinds.has(kind)) continue;
    // `cosign attest` bundles share the bundle type; they are attestations (attest/), not
    // signatures. Skipping one can only lose a signature, never invent one.
    const predicate = manifest.annotations?.["dev.sigstore.bundle.predicateType"];
    if (kind === "cosign-bundle" && predicate !== undefined && predicate !== COSIGN_SIGN_PREDICATE) continue;
    artifacts.push({
      kind,
      digest: fetched.descriptor.digest,
      artifactType: artifactTypeOf(manifest),
      manifest,
      source: c.source,
    });
  }

  if (wantsCosign && (opts.cosignTag ?? kinds.has("cosign-simplesigning"))) {
    const legacy = await cosignTagArtifact(client, repo, subject.digest, signal);
    if (legacy && !seen.has(legacy.digest) && kinds.has("cosign-simplesigning")) artifacts.push(legacy);
  }

  const source: ArtifactSource = {
    subject,
    artifacts,
    fetchBlob: (desc: Descriptor, sig?: AbortSignal) =>
      client.getBlob(repo, desc, sig ? { signal: sig } : {}),
  };
  if (truncated) source.truncated = true;
  return source;
}

/**
 * Fetches a candidate manifest by digest. A candidate that is gone (NOT_FOUND), malformed
 * or of an unsupported type is skipped; anything that says the registry or its content is
 * untrustworthy (digest mismatch, oversize, network) propagates as a typed error.
 */
async function fetchCandidate(
  client: RegistryClient,
  repo: RepositoryRef,
  digest: string,
  expected: Descriptor,
  signal: AbortSignal | undefined,
): Promise<FetchedManifest | undefined> {
  try {
    return await client.getManifest(repo, digest, { expected, ...(signal ? { signal } : {}) });
  } catch (e) {
    if (isEngineError(e) && (e.code === "NOT_FOUND" || e.code === "MALFORMED" || e.code === "UNSUPPORTED"))
      return undefined;
    throw e;
  }
}

async function cosignTagArtifact(
  client: RegistryClient,
  repo: RepositoryRef,
  digest: string,
  signal: AbortSignal | undefined,
): Promise<DiscoveredArtifact | undefined> {
  let fetched: FetchedManifest;
  try {
    fetched = await client.getManifest(repo, cosignSignatureTag(digest), signal ? { signal } : {});
  } catch (e) {
    if (isEngineError(e) && (e.code === "NOT_FOUND" || e.code === "UNSUPPORTED" || e.code === "MALFORMED"))
      return undefined;
    throw e;
  }
  const manifest = toOciManifest(fetched.json);
  if (typeof manifest === "string") return undefined;
  const kind = classifyArtifact(manifest, "cosign-tag");
  if (kind !== "cosign-simplesigning") return undefined;
  return {
    kind,
    digest: fetched.descriptor.digest,
    artifactType: artifactTypeOf(manifest),
    manifest,
    source: "cosign-tag",
  };
}
