// Key types cosign can verify with (ECDSA P-256/P-384, RSA PKCS#1 v1.5 and PSS, Ed25519)
// on both payload formats, and configuration errors.
import crypto from "node:crypto";
import { describe, expect, it } from "vitest";
import { verifyCosign } from "../../../src/engine/cosign/index.js";
import { EngineError } from "../../../src/engine/errors.js";
import { MemorySource } from "./memory-source.js";

const DIGEST = `sha256:${"34".repeat(32)}`;

type Signer = (data: Buffer) => Buffer;
interface KeyCase {
  name: string;
  pem: string;
  sign: Signer;
}

function keyCase(name: string): KeyCase {
  switch (name) {
    case "ecdsa-p256":
    case "ecdsa-p384": {
      const curve = name === "ecdsa-p256" ? "P-256" : "P-384";
      const k = crypto.generateKeyPairSync("ec", { namedCurve: curve });
      const h = curve === "P-256" ? "sha256" : "sha384";
      return { name, pem: pem(k.publicKey), sign: (d) => crypto.sign(h, d, k.privateKey) };
    }
    case "rsa-pkcs1":
    case "rsa-pss": {
      const k = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
      const padding =
        name === "rsa-pss" ? crypto.constants.RSA_PKCS1_PSS_PADDING : crypto.constants.RSA_PKCS1_PADDING;
      return {
        name,
        pem: pem(k.publicKey),
        sign: (d) => crypto.sign("sha256", d, { key: k.privateKey, padding, saltLength: 32 }),
      };
    }
    default: {
      const k = crypto.generateKeyPairSync("ed25519");
      return { name, pem: pem(k.publicKey), sign: (d) => crypto.sign(null, d, k.privateKey) };
    }
  }
}
const pem = (k: crypto.KeyObject) => k.export({ type: "spki", format: "pem" }).toString();

function sources(k: KeyCase): MemorySource {
  const src = new MemorySource(`registry.local/acme/app@${DIGEST}`, DIGEST);
  const payload = Buffer.from(
    JSON.stringify({
      critical: {
        identity: { "docker-reference": "registry.local/acme/app" },
        image: { "docker-manifest-digest": DIGEST },
        type: "cosign container image signature",
      },
      optional: null,
    }),
  );
  src.addSimpleSigning([{ payload, signature: k.sign(payload).toString("base64") }]);
  const st = Buffer.from(
    JSON.stringify({
      _type: "https://in-toto.io/Statement/v1",
      subject: [{ digest: { sha256: DIGEST.slice(7) } }],
      predicateType: "https://sigstore.dev/cosign/sign/v1",
      predicate: {},
    }),
  );
  const pae = Buffer.concat([Buffer.from(`DSSEv1 28 application/vnd.in-toto+json ${st.length} `), st]);
  src.addBundle({
    mediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
    verificationMaterial: { publicKey: { hint: "" } },
    dsseEnvelope: {
      payload: st.toString("base64"),
      payloadType: "application/vnd.in-toto+json",
      signatures: [{ sig: k.sign(pae).toString("base64") }],
    },
  });
  return src;
}

describe("key algorithms", () => {
  for (const name of ["ecdsa-p256", "ecdsa-p384", "rsa-pkcs1", "rsa-pss", "ed25519"]) {
    it(`${name}: both formats pass with the key, fail with another key of the same type`, async () => {
      const k = keyCase(name);
      const src = sources(k);
      const ok = await verifyCosign(src, { keys: [{ name, pem: k.pem }] }, { verifierName: "k" });
      expect(ok.map((c) => [c.details?.format, c.result, c.signer])).toEqual([
        ["simplesigning", "passed", name],
        ["bundle-v0.3", "passed", name],
      ]);
      const other = keyCase(name);
      const bad = await verifyCosign(
        src,
        { keys: [{ name: "other", pem: other.pem }] },
        { verifierName: "k" },
      );
      expect(bad.map((c) => [c.result, c.check])).toEqual([
        ["failed", "authenticity"],
        ["failed", "authenticity"],
      ]);
      // With several keys configured, the one that verifies is named.
      const both = await verifyCosign(
        src,
        {
          keys: [
            { name: "other", pem: other.pem },
            { name, pem: k.pem },
          ],
        },
        { verifierName: "k" },
      );
      expect(both.map((c) => c.signer)).toEqual([name, name]);
    });
  }
});

describe("configuration", () => {
  const src = new MemorySource(`r/a@${DIGEST}`, DIGEST);
  const bad: Array<[string, unknown]> = [
    ["nothing configured", {}],
    [
      "private key",
      {
        keys: [
          {
            pem: crypto
              .generateKeyPairSync("ec", { namedCurve: "P-256" })
              .privateKey.export({ type: "pkcs8", format: "pem" }),
          },
        ],
      },
    ],
    ["garbage PEM", { keys: [{ pem: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n" }] }],
    [
      "RSA-1024",
      { keys: [{ pem: pem(crypto.generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey) }] },
    ],
    [
      "secp256k1",
      { keys: [{ pem: pem(crypto.generateKeyPairSync("ec", { namedCurve: "secp256k1" }).publicKey) }] },
    ],
    ["annotations not strings", { keys: [{ pem: keyCase("ed25519").pem }], annotations: { a: 1 } }],
  ];
  for (const [name, cfg] of bad) {
    it(`rejects ${name} with INVALID_CONFIG`, async () => {
      const err = await verifyCosign(src, cfg as never, { verifierName: "k" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EngineError);
      expect((err as EngineError).code).toBe("INVALID_CONFIG");
    });
  }

  it("throws CANCELLED when the signal is aborted", async () => {
    const ac = new AbortController();
    ac.abort();
    const err = await verifyCosign(
      sources(keyCase("ed25519")),
      { keys: [{ pem: keyCase("ed25519").pem }] },
      { verifierName: "k", signal: ac.signal },
    ).catch((e: unknown) => e);
    expect((err as EngineError).code).toBe("CANCELLED");
  });

  it("reports a transient blob fetch failure as an error check, a missing signature annotation as failed", async () => {
    const k = keyCase("ed25519");
    const s = sources(k);
    const flaky = {
      ...s,
      subject: s.subject,
      artifacts: s.artifacts,
      fetchBlob: async () => Promise.reject(new EngineError("REGISTRY_UNAVAILABLE", "connection refused")),
    };
    const checks = await verifyCosign(flaky, { keys: [{ pem: k.pem }] }, { verifierName: "k" });
    expect(checks.map((c) => [c.result, c.check])).toEqual([
      ["error", "fetch"],
      ["error", "fetch"],
    ]);
    const noAnn = new MemorySource(`r/a@${DIGEST}`, DIGEST);
    const a = noAnn.addSimpleSigning([{ payload: Buffer.from("{}"), signature: "" }]);
    delete a.manifest.layers[0]?.annotations;
    expect(await verifyCosign(noAnn, { keys: [{ pem: k.pem }] }, { verifierName: "k" })).toMatchObject([
      { result: "failed", check: "format" },
    ]);
  });

  it("ignores artifacts that are not cosign signatures", async () => {
    const s = new MemorySource(`r/a@${DIGEST}`, DIGEST);
    s.addManifest({
      schemaVersion: 2,
      config: { mediaType: "application/vnd.cncf.notary.signature", digest: DIGEST, size: 2 },
      layers: [{ mediaType: "application/jose+json", digest: DIGEST, size: 10 }],
    });
    expect(
      await verifyCosign(s, { keys: [{ pem: keyCase("ed25519").pem }] }, { verifierName: "k" }),
    ).toMatchObject([{ result: "failed", check: "presence", reason: "no cosign signature found" }]);
  });
});
