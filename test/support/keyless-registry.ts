// Attaching a keyless Sigstore bundle to an image in a local registry the way cosign 3 does
// on a registry without the referrers API: a bundle manifest with `subject`, listed in the
// referrers tag index `sha256-<hex>`. Plain registry HTTP calls (no cosign CLI: the bundle
// comes from the test's mock Sigstore).
import crypto from "node:crypto";
import type { PushedImage } from "./images.js";
import type { LocalRegistry } from "./registry.js";

const BUNDLE_MT = "application/vnd.dev.sigstore.bundle.v0.3+json";
const EMPTY = { mediaType: "application/vnd.oci.empty.v1+json", content: Buffer.from("{}") };

const sha = (b: Buffer) => `sha256:${crypto.createHash("sha256").update(b).digest("hex")}`;

async function putBlob(registry: LocalRegistry, repoName: string, bytes: Buffer): Promise<string> {
  const digest = sha(bytes);
  const start = await fetch(`${registry.url}/v2/${repoName}/blobs/uploads/`, { method: "POST" });
  const loc = new URL(start.headers.get("location")!, registry.url);
  loc.searchParams.set("digest", digest);
  const put = await fetch(loc, {
    method: "PUT",
    body: bytes,
    headers: { "content-type": "application/octet-stream" },
  });
  if (put.status !== 201) throw new Error(`blob upload: HTTP ${put.status}`);
  return digest;
}

async function putManifest(
  registry: LocalRegistry,
  repoName: string,
  ref: string,
  m: unknown,
  mt: string,
): Promise<Buffer> {
  const body = Buffer.from(JSON.stringify(m));
  const r = await fetch(`${registry.url}/v2/${repoName}/manifests/${ref}`, {
    method: "PUT",
    body,
    headers: { "content-type": mt },
  });
  if (r.status !== 201) throw new Error(`manifest ${ref}: HTTP ${r.status} ${await r.text()}`);
  return body;
}

/** Attaches a keyless bundle to `img` the way cosign 3 does without the referrers API. */
export async function attachBundle(
  registry: LocalRegistry,
  img: PushedImage,
  bundle: unknown,
): Promise<void> {
  const repoName = img.repo.slice(registry.host.length + 1);
  const layer = Buffer.from(JSON.stringify(bundle));
  await putBlob(registry, repoName, layer);
  await putBlob(registry, repoName, EMPTY.content);
  const sizeOf = await fetch(`${registry.url}/v2/${repoName}/manifests/${img.digest}`, {
    method: "HEAD",
    headers: { accept: "application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json" },
  });
  const manifest = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    artifactType: BUNDLE_MT,
    config: { mediaType: EMPTY.mediaType, digest: sha(EMPTY.content), size: 2 },
    layers: [{ mediaType: BUNDLE_MT, digest: sha(layer), size: layer.length }],
    subject: {
      mediaType: sizeOf.headers.get("content-type"),
      digest: img.digest,
      size: Number(sizeOf.headers.get("content-length")),
    },
  };
  const mBytes = Buffer.from(JSON.stringify(manifest));
  await putManifest(registry, repoName, sha(mBytes), manifest, manifest.mediaType);
  const index = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [
      { mediaType: manifest.mediaType, digest: sha(mBytes), size: mBytes.length, artifactType: BUNDLE_MT },
    ],
  };
  await putManifest(registry, repoName, img.digest.replace(":", "-"), index, index.mediaType);
}
