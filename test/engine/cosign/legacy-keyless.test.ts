// Legacy keyless cosign signatures (`.sig` simple-signing layers carrying certificate, chain,
// Rekor bundle and optional RFC 3161 timestamp as annotations), made byte for byte as cosign
// before v3 writes them against a local mock Sigstore, verified offline against its trusted root.
import crypto from "node:crypto";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { type CosignConfig, verifyCosign } from "../../../src/engine/cosign/index.js";
import { MemorySource } from "./memory-source.js";
import {
  type LegacySignature,
  type LegacySignOptions,
  legacyKeylessSignature,
  type MockSigstore,
  startMockSigstore,
} from "./mock-sigstore.js";

const DIGEST = `sha256:${crypto.createHash("sha256").update("the legacy image").digest("hex")}`;
const REPO = "registry.local/acme/app";
const SUBJECT = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
const ISSUER = "https://token.actions.githubusercontent.com";

let sigstore: MockSigstore;
let other: MockSigstore;

beforeAll(async () => {
  [sigstore, other] = await Promise.all([startMockSigstore(), startMockSigstore()]);
}, 60_000);

function sign(o: Partial<LegacySignOptions> = {}, s: MockSigstore = sigstore): Promise<LegacySignature> {
  return legacyKeylessSignature(s, {
    digest: DIGEST,
    repository: REPO,
    subject: SUBJECT,
    issuer: ISSUER,
    ...o,
  });
}

function verify(
  sig: LegacySignature | LegacySignature[],
  cfg: Partial<NonNullable<CosignConfig["keyless"]>> = {},
) {
  const source = new MemorySource(`${REPO}@${DIGEST}`, DIGEST);
  source.addSimpleSigning(
    (Array.isArray(sig) ? sig : [sig]).map((s) => ({ payload: s.payload, annotations: s.annotations })),
  );
  return verifyCosign(
    source,
    {
      keyless: {
        trustedRoot: sigstore.trustedRoot,
        identities: [{ issuer: ISSUER, subject: SUBJECT }],
        ...cfg,
      },
    },
    { verifierName: "legacy" },
  );
}

const rekor = (s: LegacySignature) =>
  JSON.parse(s.annotations["dev.sigstore.cosign/bundle"]!) as {
    SignedEntryTimestamp: string;
    Payload: { body: string; integratedTime: number; logIndex: number; logID: string };
  };
const withRekor = (s: LegacySignature, r: unknown): LegacySignature => ({
  ...s,
  annotations: { ...s.annotations, "dev.sigstore.cosign/bundle": JSON.stringify(r) },
});

describe("legacy keyless cosign signatures", () => {
  it("pass for the configured identity, with signer, issuer and the logged signing time", async () => {
    const s = await sign();
    const checks = await verify(s);
    expect(checks).toMatchObject([
      {
        result: "passed",
        check: "trustedIdentity",
        signer: SUBJECT,
        issuer: ISSUER,
        details: { format: "simplesigning" },
      },
    ]);
    expect(new Date(checks[0]!.signingTime!).getTime()).toBe(rekor(s).Payload.integratedTime * 1000);
  });

  it("fail for another subject or another issuer (the certificate's, not the payload's)", async () => {
    const wrongSubject = await verify(
      await sign({ subject: "https://github.com/evil/app/x.yml@refs/heads/main" }),
    );
    expect(wrongSubject).toMatchObject([{ result: "failed", check: "trustedIdentity" }]);
    const wrongIssuer = await verify(await sign({ issuer: "https://accounts.example.com" }));
    expect(wrongIssuer).toMatchObject([{ result: "failed", check: "trustedIdentity" }]);
  });

  it("fail when the payload was changed after signing", async () => {
    const s = await sign();
    const payload = Buffer.from(s.payload.toString().replace(DIGEST, DIGEST.replace(/.$/, "0")));
    const checks = await verify({ ...s, payload });
    expect(checks[0]?.result).toBe("failed");
    expect(["tlog", "authenticity"]).toContain(checks[0]?.check);
  });

  it("fail for a valid signature of another image (transplanted)", async () => {
    const s = await sign({ digest: `sha256:${"ab".repeat(32)}` });
    expect(await verify(s)).toMatchObject([{ result: "failed", check: "payloadDigest" }]);
  });

  it("fail without the Rekor bundle, unless the policy does not require the log", async () => {
    const s = await sign({ rekorBundle: false });
    expect(await verify(s)).toMatchObject([{ result: "failed", check: "tlog" }]);
  });

  it("fail when the signed entry timestamp does not cover the entry (integratedTime, body or SET changed)", async () => {
    const s = await sign();
    const r = rekor(s);
    const moved = withRekor(s, {
      ...r,
      Payload: { ...r.Payload, integratedTime: r.Payload.integratedTime + 1 },
    });
    expect(await verify(moved)).toMatchObject([{ result: "failed", check: "tlog" }]);
    const forged = withRekor(s, { ...r, SignedEntryTimestamp: rekor(await sign()).SignedEntryTimestamp });
    expect(await verify(forged)).toMatchObject([{ result: "failed", check: "tlog" }]);
    const otherBody = withRekor(s, {
      ...r,
      Payload: { ...r.Payload, body: rekor(await sign()).Payload.body },
    });
    expect((await verify(otherBody))[0]?.result).toBe("failed");
  });

  it("fail for a certificate from a CA the trusted root does not hold", async () => {
    const s = await sign({}, other);
    const checks = await verify(s);
    expect(checks[0]?.result).toBe("failed");
  });

  it("judge the short-lived certificate at the logged time, not now", async () => {
    const s = await sign();
    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      vi.setSystemTime(Date.now() + 6 * 3600_000); // the 10-minute certificate expired long ago
      expect(await verify(s)).toMatchObject([{ result: "passed" }]);
    } finally {
      vi.useRealTimers();
    }
  });

  it("accept an RFC 3161 timestamp from the trusted TSA alongside the log entry", async () => {
    const s = await sign({ tsa: true });
    expect(await verify(s)).toMatchObject([{ result: "passed" }]);
    const tsOnly = await sign({ tsa: true, rekorBundle: false });
    expect(await verify(tsOnly, { requireTlog: false })).toMatchObject([{ result: "passed" }]);
    expect(await verify(tsOnly)).toMatchObject([{ result: "failed", check: "tlog" }]);
  });

  it("report malformed annotations as format failures, never throw", async () => {
    const s = await sign();
    const bad: Record<string, string>[] = [
      { "dev.sigstore.cosign/bundle": "{not json" },
      { "dev.sigstore.cosign/bundle": JSON.stringify({ SignedEntryTimestamp: "x" }) },
      { "dev.sigstore.cosign/certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" },
      { "dev.sigstore.cosign/chain": "garbage" },
      { "dev.sigstore.cosign/rfc3161timestamp": "{}" },
    ];
    for (const ann of bad) {
      const checks = await verify({ ...s, annotations: { ...s.annotations, ...ann } });
      expect(checks[0]?.result, JSON.stringify(ann)).toBe("failed");
    }
  });
});
