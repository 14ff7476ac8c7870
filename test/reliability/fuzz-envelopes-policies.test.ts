// Fuzzing signature material and policies. Seeds are real: a JWS and a COSE envelope and
// their certificate produced by the notation 1.3.2 CLI against docker-registry (fetched
// back with our registry client), a cosign public key, a full ImagePolicy. 10,000 cases per
// class: every input parses into something that holds its invariants or is a typed
// EngineError (MALFORMED / TOO_LARGE / UNSUPPORTED / INVALID_POLICY), never anything else.
import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseCose } from "../../src/engine/notation/cose.js";
import { parseJws } from "../../src/engine/notation/jws.js";
import { parseCert } from "../../src/engine/notation/x509.js";
import { compileParsed, parsePolicy } from "../../src/engine/policy/index.js";
import { createRegistryClient } from "../../src/engine/registry/client.js";
import { discoverSignatures } from "../../src/engine/registry/discovery.js";
import { pushBusyboxImage } from "../support/images.js";
import { type LocalRegistry, startRegistry } from "../support/registry.js";
import { notationInit, notationSign } from "../support/signing.js";
import { fuzzClass, mutatedBytes, mutatedJson } from "./fuzz-kit.js";

const FILE = "test/reliability/fuzz-envelopes-policies.test.ts";

let reg: LocalRegistry;
let jws: Uint8Array;
let cose: Uint8Array;
let certDer: Uint8Array;
let certPem: string;
let cosignPem: string;

async function envelopeOf(
  ref: { reference: string; digest: string },
  mediaType: string,
): Promise<Uint8Array> {
  const client = createRegistryClient({});
  try {
    const src = await discoverSignatures(client, ref, { kinds: ["notation"] });
    for (const a of src.artifacts) {
      const layer = a.manifest.layers.find((l) => l.mediaType === mediaType);
      if (layer) return await src.fetchBlob(layer);
    }
    throw new Error(`no ${mediaType} envelope for ${ref.reference}`);
  } finally {
    client.close();
  }
}

beforeAll(async () => {
  reg = await startRegistry();
  const n = await notationInit({ keyName: "fuzz-release" });
  const a = pushBusyboxImage(reg.host, "fuzz/jws", "v1", { marker: "fuzz-jws" });
  const b = pushBusyboxImage(reg.host, "fuzz/cose", "v1", { marker: "fuzz-cose" });
  await notationSign({ ref: a.pinned, configDir: n.configDir });
  await notationSign({ ref: b.pinned, configDir: n.configDir, format: "cose" });
  jws = await envelopeOf({ reference: a.ref, digest: a.digest }, "application/jose+json");
  cose = await envelopeOf({ reference: b.ref, digest: b.digest }, "application/cose");
  certPem = readFileSync(n.certPath, "utf8");
  certDer = new Uint8Array(
    Buffer.from(certPem.replace(/-----(BEGIN|END) CERTIFICATE-----|\s/g, ""), "base64"),
  );
  cosignPem = generateKeyPairSync("ec", { namedCurve: "P-256" })
    .publicKey.export({ type: "spki", format: "pem" })
    .toString();
}, 120_000);

afterAll(async () => {
  await reg?.stop();
});

const envelopeCheck = (env: ReturnType<typeof parseJws>) => {
  expect(["jws", "cose"]).toContain(env.format);
  expect(env.signingTime).toBeInstanceOf(Date);
  expect(Number.isNaN(env.signingTime.getTime())).toBe(false);
};

describe("fuzz: signature envelopes, certificates, policies", () => {
  it("the real seeds parse (so mutations start from valid input)", () => {
    envelopeCheck(parseJws(jws));
    envelopeCheck(parseCose(cose));
    expect(parseCert(certDer)).toBeTruthy();
  });

  it("JWS envelopes", async () => {
    const doc = JSON.parse(Buffer.from(jws).toString("utf8")) as Record<string, unknown>;
    const prot = JSON.parse(Buffer.from(String(doc.protected), "base64url").toString("utf8")) as object;
    await fuzzClass({
      name: "JWS envelopes (Notary Project)",
      path: "parseJws on notation 1.3.2 output: byte, JSON-field and protected-header mutations",
      file: FILE,
      arb: fc.oneof(
        mutatedBytes(jws, 128),
        mutatedJson(doc).map((j) => new TextEncoder().encode(JSON.stringify(j) ?? "")),
        mutatedJson(prot).map((p) =>
          new TextEncoder().encode(
            JSON.stringify({ ...doc, protected: Buffer.from(JSON.stringify(p) ?? "").toString("base64url") }),
          ),
        ),
      ),
      run(b) {
        envelopeCheck(parseJws(b));
      },
    });
  });

  it("COSE envelopes", async () => {
    await fuzzClass({
      name: "COSE_Sign1 envelopes (Notary Project)",
      path: "parseCose (CBOR decoder) on notation 1.3.2 output: mutations and noise",
      file: FILE,
      arb: mutatedBytes(cose, 128),
      run(b) {
        envelopeCheck(parseCose(b));
      },
    });
  });

  it("certificates", async () => {
    await fuzzClass({
      name: "X.509 certificates (DER)",
      path: "parseCert (ASN.1 reader) on notation's test certificate: mutations and noise",
      file: FILE,
      arb: mutatedBytes(certDer, 128),
      run(b) {
        const c = parseCert(b);
        expect(c).toBeTruthy();
      },
    });
  });

  it("policies", async () => {
    const seed = {
      apiVersion: "tollgate.dev/v1alpha1",
      kind: "ImagePolicy",
      metadata: { name: "fuzz" },
      spec: {
        images: ["registry.example.com/team/**", "ghcr.io/x/*"],
        exemptImages: ["registry.example.com/team/pause:*"],
        unmatchedImages: "Deny",
        mode: "Enforce",
        failurePolicy: "Closed",
        match: "AllOf",
        verifiers: [
          {
            name: "notary",
            notation: {
              level: "strict",
              trustedIdentities: ["x509.subject: CN=fuzz-release,O=Notary,L=Seattle,ST=WA,C=US"],
              trustStores: [{ type: "ca", name: "release", certificates: "PEM" }],
            },
          },
          { name: "cosign-key", cosign: { keys: [{ name: "k", pem: "PEM2" }] } },
        ],
        cache: { positiveTTLSeconds: 300, negativeTTLSeconds: 30 },
      },
    };
    // Real trust material in the seed (placeholders keep the JSON mutations cheap to print).
    const real = JSON.parse(
      JSON.stringify(seed)
        .replace('"PEM"', JSON.stringify(certPem))
        .replace('"PEM2"', JSON.stringify(cosignPem)),
    ) as typeof seed;
    expect(parsePolicy(real).name).toBe("fuzz");
    let compiled = 0;
    await fuzzClass({
      name: "ImagePolicy documents",
      path: "parsePolicy (validation), then compileParsed for every document that validates",
      file: FILE,
      valueWord: "validated and compiled",
      arb: mutatedJson(real),
      async run(doc) {
        const p = parsePolicy(doc);
        const c = await compileParsed(p);
        compiled++;
        expect(c.revision).toMatch(/\S{16,}/);
        expect(["Closed", "Open"]).toContain(c.failurePolicy);
        expect(["Enforce", "Audit"]).toContain(c.mode);
      },
    });
    expect(compiled).toBeGreaterThan(100);
  });
});
