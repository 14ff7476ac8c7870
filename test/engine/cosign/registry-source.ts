// Test-only discovery: builds an ArtifactSource from a plain-HTTP loopback registry the
// way protocols.md §7.1/§7.3 describes (referrers tag index + cosign `.sig` tag), fetching
// and digest-checking every manifest and blob. The engine's real discovery lives in
// src/engine/registry; this keeps the cosign tests independent of it.
import crypto from "node:crypto";
import type {
  ArtifactSource,
  Descriptor,
  DiscoveredArtifact,
  OciManifest,
} from "../../../src/engine/types.js";

export const ACCEPT = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
].join(", ");

function sha256(b: Uint8Array): string {
  return `sha256:${crypto.createHash("sha256").update(b).digest("hex")}`;
}

async function getManifest(url: string, repo: string, ref: string): Promise<Uint8Array | undefined> {
  const r = await fetch(`${url}/v2/${repo}/manifests/${ref}`, { headers: { Accept: ACCEPT } });
  if (r.status === 404) return undefined;
  if (!r.ok) throw new Error(`GET manifest ${repo}:${ref}: ${r.status}`);
  const b = new Uint8Array(await r.arrayBuffer());
  if (ref.startsWith("sha256:") && sha256(b) !== ref) throw new Error(`manifest ${ref} digest mismatch`);
  return b;
}

function artifact(bytes: Uint8Array, source: DiscoveredArtifact["source"]): DiscoveredArtifact {
  const manifest = JSON.parse(Buffer.from(bytes).toString("utf8")) as OciManifest;
  return {
    digest: sha256(bytes),
    artifactType: manifest.artifactType ?? manifest.config?.mediaType ?? "",
    manifest,
    source,
  };
}

/** `repo` is the repository name without host, e.g. "t/app". */
export async function registrySource(
  url: string,
  host: string,
  repo: string,
  digest: string,
): Promise<ArtifactSource> {
  const artifacts: DiscoveredArtifact[] = [];
  const tag = digest.replace(":", "-");
  const index = await getManifest(url, repo, tag);
  if (index) {
    const idx = JSON.parse(Buffer.from(index).toString("utf8")) as { manifests?: Descriptor[] };
    for (const d of idx.manifests ?? []) {
      const m = await getManifest(url, repo, d.digest);
      if (m) artifacts.push(artifact(m, "referrers-tag"));
    }
  }
  const sig = await getManifest(url, repo, `${tag}.sig`);
  if (sig) artifacts.push(artifact(sig, "cosign-tag"));
  return {
    subject: { reference: `${host}/${repo}@${digest}`, digest },
    artifacts,
    async fetchBlob(desc: Descriptor, signal?: AbortSignal): Promise<Uint8Array> {
      const r = await fetch(`${url}/v2/${repo}/blobs/${desc.digest}`, { signal });
      if (!r.ok) throw new Error(`GET blob ${desc.digest}: ${r.status}`);
      const b = new Uint8Array(await r.arrayBuffer());
      if (b.byteLength !== desc.size || sha256(b) !== desc.digest)
        throw new Error(`blob ${desc.digest} mismatch`);
      return b;
    },
  };
}

/** PUT a manifest (used to forge tag indexes that point at another image's signature). */
export async function putManifest(
  url: string,
  repo: string,
  ref: string,
  body: unknown,
  mediaType: string,
): Promise<string> {
  const bytes = Buffer.from(JSON.stringify(body));
  const r = await fetch(`${url}/v2/${repo}/manifests/${ref}`, {
    method: "PUT",
    headers: { "Content-Type": mediaType },
    body: bytes,
  });
  if (r.status !== 201) throw new Error(`PUT manifest ${repo}:${ref}: ${r.status} ${await r.text()}`);
  return sha256(bytes);
}
