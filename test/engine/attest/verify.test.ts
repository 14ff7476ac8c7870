// verifyAttestations on hand-made envelopes: every bad input gives a reason naming what is
// wrong, and only an envelope that is signed, names the digest and has the predicate type
// counts. Keyless bundles are verified with the local mock Sigstore.
import crypto from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import type { AttestationSource, EnvelopeRef } from "../../../src/engine/attest/discover.js";
import { firstChange } from "../../../src/engine/attest/expiry.js";
import type { CompiledAttestation } from "../../../src/engine/attest/types.js";
import { verifyAttestations } from "../../../src/engine/attest/verify.js";
import { compileCondition, isCelIssue } from "../../../src/engine/cel/index.js";
import { EngineError } from "../../../src/engine/errors.js";
import { attestationConditionVars } from "../../../src/engine/policy/attest.js";
import type { CosignConfig } from "../../../src/engine/policy/model.js";
import type { Descriptor } from "../../../src/engine/types.js";
import { keylessBundle, type MockSigstore, startMockSigstore } from "../cosign/mock-sigstore.js";

const DIGEST = `sha256:${crypto.createHash("sha256").update("image").digest("hex")}`;
const OTHER = `sha256:${crypto.createHash("sha256").update("other").digest("hex")}`;
const SLSA = "https://slsa.dev/provenance/v1";
const IN_TOTO = "application/vnd.in-toto+json";
const ec = () => crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
const trusted = ec();
const rogue = ec();
const pem = (k: crypto.KeyObject) => k.export({ type: "spki", format: "pem" }).toString();
const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");

function statement(o: { digest?: string; predicateType?: string; builder?: string } = {}) {
  return {
    _type: "https://in-toto.io/Statement/v1",
    subject: [{ name: "r/app", digest: { sha256: (o.digest ?? DIGEST).slice(7) } }],
    predicateType: o.predicateType ?? SLSA,
    predicate: { runDetails: { builder: { id: o.builder ?? "https://ci.example" } } },
  };
}

function dsse(st: unknown, key = trusted.privateKey, payloadType = IN_TOTO) {
  const payload = Buffer.from(JSON.stringify(st));
  const pae = Buffer.concat([
    Buffer.from(`DSSEv1 ${payloadType.length} ${payloadType} ${payload.length} `),
    payload,
  ]);
  return {
    payload: b64(payload),
    payloadType,
    signatures: [{ sig: b64(crypto.sign("sha256", pae, { key, dsaEncoding: "der" })) }],
  };
}

class Source implements AttestationSource {
  envelopes: EnvelopeRef[] = [];
  truncated = false;
  readonly subject = { reference: `registry.local/app@${DIGEST}`, digest: DIGEST };
  private blobs = new Map<string, Uint8Array | Error>();
  add(format: "bundle" | "legacy", content: unknown, o: { size?: number; hint?: string } = {}) {
    const bytes = Buffer.from(typeof content === "string" ? content : JSON.stringify(content));
    const digest = `sha256:${crypto.createHash("sha256").update(bytes).update(String(this.envelopes.length)).digest("hex")}`;
    this.blobs.set(digest, bytes);
    const layer: Descriptor = { mediaType: "x", digest, size: o.size ?? bytes.length };
    this.envelopes.push({
      format,
      artifactDigest: digest,
      source: "referrers-api",
      layer,
      predicateTypeHint: o.hint ?? SLSA,
    });
    return digest;
  }
  fail(err: Error) {
    const digest = `sha256:${"e".repeat(64)}`;
    this.blobs.set(digest, err);
    this.envelopes.push({
      format: "legacy",
      artifactDigest: digest,
      source: "attestation-tag",
      layer: { mediaType: "x", digest, size: 10 },
      predicateTypeHint: SLSA,
    });
  }
  async fetchBlob(d: Descriptor) {
    const b = this.blobs.get(d.digest);
    if (b instanceof Error) throw b;
    if (!b) throw new EngineError("NOT_FOUND", "no blob");
    return b;
  }
}

function req(conditions: string[] = []): CompiledAttestation {
  return {
    name: "provenance",
    predicateType: SLSA,
    verifier: "release",
    conditions: conditions.map((expression, i) => {
      const condition = compileCondition(expression, attestationConditionVars());
      if (isCelIssue(condition)) throw new Error(condition.message);
      return { path: `c[${i}]`, expression, condition, perRequest: false, readsNamespace: false };
    }),
  };
}

const keys: CosignConfig = { keys: [{ name: "release", pem: pem(trusted.publicKey) }] };
async function run(s: Source, r = req(), cfg: CosignConfig = keys) {
  const out = await verifyAttestations(s, [r], new Map([["release", cfg]]), {
    now: new Date(),
    baseVars: { image: { digest: DIGEST } },
    horizonMs: 300_000,
  });
  return out.results[0]!;
}

describe("verifyAttestations", () => {
  it("accepts a legacy DSSE envelope and a bundle signed by the verifier's key", async () => {
    const s = new Source();
    s.add("legacy", dsse(statement()));
    expect(await run(s, req([`predicate.runDetails.builder.id == "https://ci.example"`]))).toMatchObject({
      result: "passed",
      format: "legacy",
      signer: "release",
    });
    const b = new Source();
    b.add("bundle", {
      mediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
      verificationMaterial: { publicKey: { hint: "x" } },
      dsseEnvelope: dsse(statement()),
    });
    expect(await run(b)).toMatchObject({ result: "passed", format: "bundle" });
  });

  it.each([
    ["garbage", "{not json", "is malformed"],
    ["no signature", { ...dsse(statement()), signatures: [] }, "DSSE envelope has no signature"],
    [
      "other payload type",
      dsse(statement(), trusted.privateKey, "text/plain"),
      "DSSE payload type is text/plain",
    ],
    ["unknown statement type", dsse({ ...statement(), _type: "https://x/Statement" }), "unknown _type"],
    ["subject not a list", dsse({ ...statement(), subject: "r/app" }), "is malformed"],
    [
      "signed by another key",
      dsse(statement(), rogue.privateKey),
      "is not signed by any key of verifier release (release)",
    ],
    ["other digest", dsse(statement({ digest: OTHER })), `names sha256:${OTHER.slice(7)}, not ${DIGEST}`],
  ])("%s: denied with the reason", async (_n, content, reason) => {
    const s = new Source();
    s.add("legacy", content);
    const r = await run(s);
    expect(r.result).toBe("failed");
    expect(r.reason).toContain(reason);
  });

  it("ignores other predicate types, reports oversize layers and transient fetch errors", async () => {
    const s = new Source();
    s.add("legacy", dsse(statement({ predicateType: "https://cosign.sigstore.dev/attestation/vuln/v1" })), {
      hint: "v",
    });
    expect((await run(s)).reason).toBe(`no ${SLSA} attestation found`);
    const big = new Source();
    big.add("legacy", dsse(statement()), { size: 10 << 20 });
    expect((await run(big)).reason).toContain("over the 262144-byte cap");
    const down = new Source();
    down.fail(new EngineError("REGISTRY_UNAVAILABLE", "connection refused"));
    expect(await run(down)).toMatchObject({ result: "error" });
  });

  it("a condition over a missing field fails with the evaluation error; a later good envelope still counts", async () => {
    const s = new Source();
    s.add("legacy", dsse(statement({ builder: "https://evil.example" })));
    const r = req([`predicate.runDetails.builder.id == "https://ci.example"`, "predicate.nope.x == 1"]);
    expect((await run(s, r)).reason).toBe(
      `condition "predicate.runDetails.builder.id == \\"https://ci.example\\"" is false`,
    );
    const s2 = new Source();
    s2.add("legacy", dsse(statement()));
    expect((await run(s2, r)).reason).toMatch(/^condition "predicate.nope.x == 1" could not be evaluated: /);
    const s3 = new Source();
    s3.add("legacy", dsse(statement(), rogue.privateKey));
    s3.add("legacy", dsse(statement()));
    expect(await run(s3, req())).toMatchObject({ result: "passed" });
  });

  describe("keyless (bundle)", () => {
    let sig: MockSigstore;
    beforeAll(async () => {
      sig = await startMockSigstore();
    }, 60_000);
    const ID = "https://github.com/acme/app/.github/workflows/build.yml@refs/heads/main";
    const ISS = "https://token.actions.githubusercontent.com";

    it("passes for the configured identity and names the identity otherwise", async () => {
      const s = new Source();
      s.add(
        "bundle",
        await keylessBundle(sig, {
          digest: DIGEST,
          subject: ID,
          issuer: ISS,
          predicateType: SLSA,
          predicate: statement().predicate,
        }),
      );
      const cfg = (subject: string): CosignConfig => ({
        keyless: { trustedRoot: sig.trustedRoot, identities: [{ issuer: ISS, subject }] },
      });
      expect(await run(s, req([`signer == "${ID}"`]), cfg(ID))).toMatchObject({
        result: "passed",
        signer: ID,
        issuer: ISS,
      });
      const r = await run(s, req(), cfg("https://someone.else"));
      expect(r.result).toBe("failed");
      expect(r.reason).toContain("its keyless signature is not trusted by verifier release");
      expect((await run(s, req(), keys)).reason).toContain(
        "signed keylessly, but verifier release has no keyless trust",
      );
    });
  });
});

describe("firstChange (expiry of time-dependent conditions)", () => {
  const now = new Date("2026-01-01T00:00:00Z");
  it("finds a threshold to within a second, never after it", () => {
    const flip = now.getTime() + 12_345_678;
    const at = firstChange((t) => t.getTime() < flip, now, 86_400_000)!;
    expect(at.getTime()).toBeLessThan(flip);
    expect(flip - at.getTime()).toBeLessThanOrEqual(1000);
  });
  it("is undefined when nothing changes within the horizon", () => {
    expect(firstChange(() => true, now, 86_400_000)).toBeUndefined();
    expect(firstChange((t) => t.getTime() < now.getTime() + 90_000_000, now, 86_400_000)).toBeUndefined();
  });
});
