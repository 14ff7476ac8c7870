// Discovery against the real docker-registry 2.8.3 (no Referrers API → referrers tag
// schema) with artifacts pushed by the real notation, cosign and oras CLIs.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EngineError } from "../../../src/engine/errors.js";
import {
  createRegistryClient,
  digestOf,
  discoverSignatures,
  mediaTypes,
  type RegistryClient,
  type RequestEvent,
} from "../../../src/engine/registry/index.js";
import { type PushedImage, pushBusyboxImage } from "../../support/images.js";
import type { LocalRegistry } from "../../support/registry.js";
import {
  type CosignKeys,
  cosignSign,
  type NotationConfig,
  notationSign,
  orasAttach,
} from "../../support/signing.js";
import { type SigningFixture, startSigningFixture } from "../../support/signing-fixture.js";

let fx: SigningFixture;
let reg: LocalRegistry;
let client: RegistryClient;
const events: RequestEvent[] = [];
let notation: NotationConfig;
let keys: CosignKeys;
let signed: PushedImage;
let unsigned: PushedImage;
let jwsDigest: string;
let coseDigest: string;
let sbomDigest: string;

beforeAll(async () => {
  fx = await startSigningFixture();
  ({ reg, notation, keys } = fx);
  client = createRegistryClient({ onRequest: (e) => events.push(e) });
  signed = pushBusyboxImage(reg.host, "test/signed", "v1", { marker: "signed" });
  unsigned = pushBusyboxImage(reg.host, "test/unsigned", "v1", { marker: "unsigned" });
  // Sequential: the tools read-modify-write one shared referrers tag index.
  jwsDigest = await notationSign({ ref: signed.pinned, configDir: notation.configDir, format: "jws" });
  coseDigest = await notationSign({ ref: signed.pinned, configDir: notation.configDir, format: "cose" });
  await cosignSign({ ref: signed.pinned, keyDir: keys });
  await cosignSign({ ref: signed.pinned, keyDir: keys, legacy: true });
  await cosignSign({ ref: signed.pinned, keyDir: keys, format: "legacy-referrers" });
  sbomDigest = await orasAttach({ ref: signed.pinned, artifactType: "application/vnd.example.sbom+json" });
  await orasAttach({ ref: unsigned.pinned, artifactType: "application/vnd.example.sbom+json" });
}, 180_000);

afterAll(async () => {
  client?.close();
  await fx?.stop();
});

describe("discovery on docker-registry 2.8.3 (referrers tag schema)", () => {
  it("resolves a tag to the digest crane reported", async () => {
    const d = await client.resolve(signed.ref);
    expect(d.digest).toBe(signed.digest);
    expect(d.mediaType).toBe(mediaTypes.OCI_MANIFEST);
  });

  it("returns exactly the signature artifacts, classified from their manifests", async () => {
    const src = await discoverSignatures(client, { reference: signed.ref, digest: signed.digest });
    const byKind = src.artifacts.map((a) => `${a.kind}/${a.source}`).sort();
    expect(byKind).toEqual([
      "cosign-artifact-sig/referrers-tag",
      "cosign-bundle/referrers-tag",
      "cosign-simplesigning/cosign-tag",
      "notation/referrers-tag",
      "notation/referrers-tag",
    ]);
    expect(src.truncated).toBeUndefined();
    const digests = src.artifacts.map((a) => a.digest);
    expect(digests).toContain(jwsDigest);
    expect(digests).toContain(coseDigest);
    expect(digests).not.toContain(sbomDigest);

    const notations = src.artifacts.filter((a) => a.kind === "notation");
    expect(notations.map((a) => a.manifest.layers[0]?.mediaType).sort()).toEqual([
      mediaTypes.NOTATION_COSE,
      mediaTypes.NOTATION_JWS,
    ]);
    for (const a of notations) {
      expect(a.artifactType).toBe(mediaTypes.NOTATION_SIGNATURE);
      expect(a.manifest.subject?.digest).toBe(signed.digest);
    }
    const bundle = src.artifacts.find((a) => a.kind === "cosign-bundle");
    // The tag index says application/vnd.oci.empty.v1+json; the manifest says what it is.
    expect(bundle?.artifactType).toBe(mediaTypes.COSIGN_BUNDLE_V03);
    expect(bundle?.manifest.layers[0]?.mediaType).toBe(mediaTypes.COSIGN_BUNDLE_V03);
    const legacy = src.artifacts.find((a) => a.kind === "cosign-simplesigning");
    expect(legacy?.manifest.layers[0]?.mediaType).toBe(mediaTypes.COSIGN_SIMPLESIGNING);
    expect(legacy?.manifest.layers[0]?.annotations?.["dev.cosignproject.cosign/signature"]).toBeTruthy();
    const artSig = src.artifacts.find((a) => a.kind === "cosign-artifact-sig");
    expect(artSig?.manifest.config.mediaType).toBe(mediaTypes.COSIGN_ARTIFACT_SIG);
  });

  it("fetchBlob returns digest-verified signature blobs from the subject's repository", async () => {
    const src = await discoverSignatures(client, { reference: signed.ref, digest: signed.digest });
    for (const a of src.artifacts) {
      const layer = a.manifest.layers[0];
      expect(layer).toBeDefined();
      if (!layer) continue;
      const bytes = await src.fetchBlob(layer);
      expect(bytes.byteLength).toBe(layer.size);
      expect(digestOf(bytes)).toBe(layer.digest);
    }
    const legacyLayer = src.artifacts.find((a) => a.kind === "cosign-simplesigning")?.manifest.layers[0];
    if (!legacyLayer) throw new Error("no legacy layer");
    const payload = JSON.parse(Buffer.from(await src.fetchBlob(legacyLayer)).toString("utf8"));
    expect(payload.critical.image["docker-manifest-digest"]).toBe(signed.digest);
  });

  it("filters by kind", async () => {
    const n = await discoverSignatures(
      client,
      { reference: signed.ref, digest: signed.digest },
      { kinds: ["notation"] },
    );
    expect(n.artifacts.map((a) => a.kind)).toEqual(["notation", "notation"]);
    const c = await discoverSignatures(
      client,
      { reference: signed.ref, digest: signed.digest },
      { kinds: ["cosign-bundle", "cosign-simplesigning"] },
    );
    expect(c.artifacts.map((a) => a.kind).sort()).toEqual(["cosign-bundle", "cosign-simplesigning"]);
  });

  it("finds nothing for an image with only an SBOM attached, and nothing for an unknown digest", async () => {
    const src = await discoverSignatures(client, { reference: unsigned.ref, digest: unsigned.digest });
    expect(src.artifacts).toEqual([]);
    const none = await discoverSignatures(client, {
      reference: `${reg.host}/test/unsigned`,
      digest: `sha256:${"0".repeat(64)}`,
    });
    expect(none.artifacts).toEqual([]);
  });

  it("serves immutable content from the cache on a second discovery", async () => {
    const c2 = createRegistryClient();
    try {
      const s = { reference: signed.ref, digest: signed.digest };
      await discoverSignatures(c2, s);
      const first = c2.stats.requests;
      await discoverSignatures(c2, s);
      const second = c2.stats.requests - first;
      // Second round: only the mutable lookups (referrers API probe, tag index, .sig tag).
      expect(second).toBeLessThan(first);
      expect(second).toBe(3);
    } finally {
      c2.close();
    }
  });

  it("a missing manifest is NOT_FOUND; an invalid digest is INVALID_REFERENCE", async () => {
    const repo = { registry: reg.host, repository: "test/signed" };
    await expect(client.getManifest(repo, `sha256:${"1".repeat(64)}`)).rejects.toMatchObject({
      code: "NOT_FOUND",
    });
    await expect(client.getManifest(repo, "sha256:xyz")).rejects.toBeInstanceOf(EngineError);
    await expect(client.getManifest(repo, "sha256:xyz")).rejects.toMatchObject({ code: "INVALID_REFERENCE" });
    expect(events.length).toBeGreaterThan(0);
  });
});
