// Finding the in-toto attestations `cosign attest` attached to a subject digest, in both of
// cosign 3.1.1's formats (observed against docker-registry 2.8.3):
//   bundle  – a referrer (referrers API or tag schema) whose manifest has artifactType
//             application/vnd.dev.sigstore.bundle.v0.3+json, one bundle layer, and the
//             annotation dev.sigstore.bundle.predicateType; the DSSE envelope is inside.
//   legacy  – the tag `sha256-<hex>.att`: an image manifest with one layer per attestation,
//             media type application/vnd.dsse.envelope.v1+json, the layer being the DSSE
//             envelope itself (annotation `predicateType`, an empty signature annotation).
// Discovery only locates envelopes; nothing found here is trusted until verify.ts checks
// the signature, the statement's subject and its predicate type.
import { isEngineError } from "../errors.js";
import { assertDigest, parseReference } from "../reference.js";
import type { RegistryClient, RepositoryRef } from "../registry/client.js";
import { toOciManifest } from "../registry/discovery.js";
import { COSIGN_BUNDLE_V03, DOCKER_MANIFEST, OCI_EMPTY, OCI_MANIFEST } from "../registry/mediatypes.js";
import type { Descriptor, DiscoverySource, Subject } from "../types.js";

export const DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json";
const SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1";

/** Caps: envelopes examined per subject, legacy layers per manifest. */
export const ATTEST_LIMITS = { maxEnvelopes: 64, maxLayersPerManifest: 32 } as const;

export interface EnvelopeRef {
  format: "bundle" | "legacy";
  /** Digest of the manifest that carries it. */
  artifactDigest: string;
  source: DiscoverySource | "attestation-tag";
  layer: Descriptor;
  /** Unauthenticated hint from annotations (only used to skip obvious signatures). */
  predicateTypeHint?: string;
}

export interface AttestationSource {
  subject: Subject;
  envelopes: EnvelopeRef[];
  truncated: boolean;
  fetchBlob(desc: Descriptor, signal?: AbortSignal): Promise<Uint8Array>;
}

/** The legacy attestation tag for a digest: "sha256-<hex>.att". */
export function attestationTag(digest: string): string {
  return `${digest.replace(":", "-")}.att`;
}

function skippable(e: unknown): boolean {
  return isEngineError(e) && (e.code === "NOT_FOUND" || e.code === "MALFORMED" || e.code === "UNSUPPORTED");
}

export async function discoverAttestations(
  client: RegistryClient,
  subject: Subject,
  opts: { signal?: AbortSignal } = {},
): Promise<AttestationSource> {
  assertDigest(subject.digest, "subject digest");
  const ref = parseReference(subject.reference);
  const repo: RepositoryRef = { registry: ref.registry, repository: ref.repository };
  const signal = opts.signal;
  const so = signal ? { signal } : {};
  const envelopes: EnvelopeRef[] = [];
  let truncated = false;
  const push = (e: EnvelopeRef) => {
    if (envelopes.length >= ATTEST_LIMITS.maxEnvelopes) truncated = true;
    else envelopes.push(e);
  };

  const listed = await client.listReferrers(repo, subject.digest, so);
  truncated ||= listed.truncated;
  let fetched = 0;
  for (const d of listed.descriptors) {
    if (d.mediaType !== OCI_MANIFEST && d.mediaType !== DOCKER_MANIFEST) continue;
    // cosign lists its bundles with the empty type in the tag schema (see discovery.ts).
    if (d.artifactType !== undefined && d.artifactType !== COSIGN_BUNDLE_V03 && d.artifactType !== OCI_EMPTY)
      continue;
    if (++fetched > ATTEST_LIMITS.maxEnvelopes) {
      truncated = true;
      break;
    }
    let m: ReturnType<typeof toOciManifest>;
    let digest: string;
    try {
      const got = await client.getManifest(repo, d.digest, { expected: d, ...so });
      m = toOciManifest(got.json);
      digest = got.descriptor.digest;
    } catch (e) {
      if (skippable(e)) continue;
      throw e;
    }
    if (typeof m === "string" || m.subject?.digest !== subject.digest) continue;
    if ((m.artifactType ?? m.config.mediaType) !== COSIGN_BUNDLE_V03) continue;
    const hint = m.annotations?.["dev.sigstore.bundle.predicateType"];
    if (hint === SIGN_PREDICATE) continue;
    const layers = m.layers.filter((l) => l.mediaType === COSIGN_BUNDLE_V03);
    if (layers.length !== 1 || !layers[0]) continue;
    push({
      format: "bundle",
      artifactDigest: digest,
      source: listed.source,
      layer: layers[0],
      ...(hint ? { predicateTypeHint: hint } : {}),
    });
  }

  try {
    const got = await client.getManifest(repo, attestationTag(subject.digest), so);
    const m = toOciManifest(got.json);
    if (typeof m !== "string") {
      const layers = m.layers.filter((l) => l.mediaType === DSSE_ENVELOPE);
      if (layers.length > ATTEST_LIMITS.maxLayersPerManifest) truncated = true;
      for (const l of layers.slice(0, ATTEST_LIMITS.maxLayersPerManifest)) {
        const hint = l.annotations?.predicateType;
        push({
          format: "legacy",
          artifactDigest: got.descriptor.digest,
          source: "attestation-tag",
          layer: l,
          ...(hint ? { predicateTypeHint: hint } : {}),
        });
      }
    }
  } catch (e) {
    if (!skippable(e)) throw e;
  }

  return {
    subject,
    envelopes,
    truncated,
    fetchBlob: (desc, sig) => client.getBlob(repo, desc, sig ? { signal: sig } : {}),
  };
}
