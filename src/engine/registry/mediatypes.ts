// Media types the registry layer speaks (protocols.md §7).

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
export const DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
export const OCI_EMPTY = "application/vnd.oci.empty.v1+json";

/**
 * Sent on every manifest request: docker-registry 2.8.3 answers 404 MANIFEST_UNKNOWN for an
 * OCI index/manifest unless the Accept header lists its type.
 */
export const MANIFEST_ACCEPT = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST].join(", ");

export const MANIFEST_TYPES: ReadonlySet<string> = new Set([
  OCI_MANIFEST,
  OCI_INDEX,
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
]);
export const INDEX_TYPES: ReadonlySet<string> = new Set([OCI_INDEX, DOCKER_MANIFEST_LIST]);

// Signature artifacts.
export const NOTATION_SIGNATURE = "application/vnd.cncf.notary.signature";
export const NOTATION_JWS = "application/jose+json";
export const NOTATION_COSE = "application/cose";
export const COSIGN_BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json";
export const COSIGN_ARTIFACT_SIG = "application/vnd.dev.cosign.artifact.sig.v1+json";
export const COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json";
export const OCI_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json";
