// An in-memory ArtifactSource: signature manifests and blobs held in maps, blobs
// digest-checked on fetch like the registry layer does.
import crypto from "node:crypto";
import type {
  ArtifactSource,
  Descriptor,
  DiscoveredArtifact,
  OciManifest,
} from "../../../src/engine/types.js";

export const EMPTY_DESC: Descriptor = {
  mediaType: "application/vnd.oci.empty.v1+json",
  digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
  size: 2,
};

const sha256 = (b: Uint8Array) => `sha256:${crypto.createHash("sha256").update(b).digest("hex")}`;

export class MemorySource implements ArtifactSource {
  readonly subject: ArtifactSource["subject"];
  readonly artifacts: DiscoveredArtifact[] = [];
  private readonly blobs = new Map<string, Uint8Array>();

  constructor(reference: string, digest: string) {
    this.subject = { reference, digest };
  }

  addBlob(bytes: Uint8Array, mediaType: string, annotations?: Record<string, string>): Descriptor {
    const digest = sha256(bytes);
    this.blobs.set(digest, bytes);
    return { mediaType, digest, size: bytes.byteLength, ...(annotations ? { annotations } : {}) };
  }

  addManifest(
    manifest: OciManifest,
    source: DiscoveredArtifact["source"] = "referrers-tag",
  ): DiscoveredArtifact {
    const a: DiscoveredArtifact = {
      digest: sha256(Buffer.from(JSON.stringify(manifest))),
      artifactType: manifest.artifactType ?? manifest.config.mediaType,
      manifest,
      source,
    };
    this.artifacts.push(a);
    return a;
  }

  /** A cosign 3 bundle referrer holding `bundle` (any bytes for fuzzing). */
  addBundle(bundle: Uint8Array | object): DiscoveredArtifact {
    const bytes = bundle instanceof Uint8Array ? bundle : Buffer.from(JSON.stringify(bundle));
    const layer = this.addBlob(bytes, "application/vnd.dev.sigstore.bundle.v0.3+json");
    return this.addManifest({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      artifactType: "application/vnd.dev.sigstore.bundle.v0.3+json",
      config: EMPTY_DESC,
      layers: [layer],
      subject: {
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest: this.subject.digest,
        size: 1,
      },
    });
  }

  /** A legacy `.sig` manifest with one simple-signing layer per (payload, signature). */
  addSimpleSigning(
    layers: Array<{ payload: Uint8Array; signature?: string; annotations?: Record<string, string> }>,
  ): DiscoveredArtifact {
    return this.addManifest(
      {
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: this.addBlob(Buffer.from("{}"), "application/vnd.oci.image.config.v1+json"),
        layers: layers.map((l) =>
          this.addBlob(l.payload, "application/vnd.dev.cosign.simplesigning.v1+json", {
            ...(l.signature !== undefined ? { "dev.cosignproject.cosign/signature": l.signature } : {}),
            ...l.annotations,
          }),
        ),
      },
      "cosign-tag",
    );
  }

  async fetchBlob(desc: Descriptor): Promise<Uint8Array> {
    const b = this.blobs.get(desc.digest);
    if (!b) throw new Error(`blob ${desc.digest} not found`);
    if (b.byteLength !== desc.size) throw new Error("size mismatch");
    return b;
  }
}
