// Keyless cosign signatures (Fulcio certificate + Rekor entry, bundle v0.3) verified
// offline against a trusted root built for a local mock Sigstore.
import crypto from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { type CosignConfig, verifyCosign } from "../../../src/engine/cosign/index.js";
import { EngineError } from "../../../src/engine/errors.js";
import { MemorySource } from "./memory-source.js";
import {
  type KeylessSignOptions,
  keylessBundle,
  type MockSigstore,
  startMockSigstore,
} from "./mock-sigstore.js";

const DIGEST = `sha256:${crypto.createHash("sha256").update("the image").digest("hex")}`;
const SUBJECT = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
const ISSUER = "https://token.actions.githubusercontent.com";

let sigstore: MockSigstore;
let other: MockSigstore;

beforeAll(async () => {
  [sigstore, other] = await Promise.all([startMockSigstore(), startMockSigstore()]);
}, 60_000);

async function verify(
  opts: Partial<KeylessSignOptions>,
  cfg: Partial<NonNullable<CosignConfig["keyless"]>> = {},
  extra: Partial<CosignConfig> = {},
) {
  const source = new MemorySource(`registry.local/acme/app@${DIGEST}`, DIGEST);
  source.addBundle(
    await keylessBundle(sigstore, { digest: DIGEST, subject: SUBJECT, issuer: ISSUER, ...opts }),
  );
  return verifyCosign(
    source,
    {
      keyless: {
        trustedRoot: sigstore.trustedRoot,
        identities: [{ issuer: ISSUER, subject: SUBJECT }],
        ...cfg,
      },
      ...extra,
    },
    { verifierName: "keyless" },
  );
}

describe("keyless cosign verification", () => {
  it("passes for the configured identity (exact issuer and subject)", async () => {
    const checks = await verify({});
    expect(checks).toMatchObject([
      { result: "passed", check: "trustedIdentity", signer: SUBJECT, issuer: ISSUER },
    ]);
    expect(checks[0]?.signingTime).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it("passes for a regular-expression identity", async () => {
    const checks = await verify(
      {},
      {
        identities: [
          { issuerRegExp: "^https://token\\.actions\\.", subjectRegExp: "^https://github\\.com/acme/" },
        ],
      },
    );
    expect(checks.map((c) => c.result)).toEqual(["passed"]);
  });

  it("passes when any of several identities matches", async () => {
    const checks = await verify(
      {},
      {
        identities: [
          { issuer: ISSUER, subject: "someone-else" },
          { issuer: ISSUER, subject: SUBJECT },
        ],
      },
    );
    expect(checks.map((c) => c.result)).toEqual(["passed"]);
  });

  it("fails for a wrong subject", async () => {
    const checks = await verify({
      subject: "https://github.com/mallory/app/.github/workflows/x.yml@refs/heads/main",
    });
    expect(checks).toMatchObject([{ result: "failed", check: "trustedIdentity" }]);
    expect(checks[0]?.reason).toContain("mallory");
  });

  it("fails for a wrong issuer", async () => {
    const checks = await verify({ issuer: "https://accounts.example.com" });
    expect(checks).toMatchObject([
      { result: "failed", check: "trustedIdentity", issuer: "https://accounts.example.com" },
    ]);
  });

  it("fails when a subject regular expression does not match", async () => {
    const checks = await verify(
      {},
      { identities: [{ issuer: ISSUER, subjectRegExp: "^https://github\\.com/other/" }] },
    );
    expect(checks).toMatchObject([{ result: "failed", check: "trustedIdentity" }]);
  });

  it("fails without a log entry when the tlog is required (default), passes with a TSA time when not", async () => {
    const required = await verify({ tlog: false, tsa: true });
    expect(required).toMatchObject([{ result: "failed", check: "tlog" }]);
    expect(required[0]?.reason).toContain("no transparency log entry");
    const optional = await verify({ tlog: false, tsa: true }, { requireTlog: false });
    expect(optional.map((c) => c.result)).toEqual(["passed"]);
  });

  it("fails without any verified signing time even when the tlog is optional", async () => {
    const checks = await verify({ tlog: false }, { requireTlog: false });
    expect(checks).toMatchObject([{ result: "failed", check: "timestamp" }]);
  });

  it("fails when the log entry does not match the signature", async () => {
    const checks = await verify({ tamperTlog: true });
    expect(checks).toMatchObject([{ result: "failed", check: "tlog" }]);
  });

  it("fails for a certificate from an untrusted CA", async () => {
    const checks = await verify({ ca: other.ca });
    expect(checks).toMatchObject([{ result: "failed", check: "certificate" }]);
  });

  it("fails for a log entry from an untrusted log", async () => {
    const source = new MemorySource(`registry.local/acme/app@${DIGEST}`, DIGEST);
    // Certificate from our CA, but logged in the other Sigstore's Rekor.
    const foreign = { ...other, ca: sigstore.ca };
    source.addBundle(await keylessBundle(foreign, { digest: DIGEST, subject: SUBJECT, issuer: ISSUER }));
    const checks = await verifyCosign(
      source,
      { keyless: { trustedRoot: sigstore.trustedRoot, identities: [{ issuer: ISSUER, subject: SUBJECT }] } },
      { verifierName: "keyless" },
    );
    expect(checks).toMatchObject([{ result: "failed", check: "tlog" }]);
  });

  it("requires an SCT by default, not when requireSct is false", async () => {
    expect(await verify({ noSct: true })).toMatchObject([{ result: "failed", check: "sct" }]);
    expect((await verify({ noSct: true }, { requireSct: false })).map((c) => c.result)).toEqual(["passed"]);
  });

  it("fails when the statement names another digest", async () => {
    const checks = await verify({ digest: `sha256:${"ab".repeat(32)}` });
    expect(checks).toMatchObject([{ result: "failed", check: "payloadDigest", signer: SUBJECT }]);
  });

  it("honours required annotations", async () => {
    expect(
      (await verify({ annotations: { env: "prod" } }, {}, { annotations: { env: "prod" } })).map(
        (c) => c.result,
      ),
    ).toEqual(["passed"]);
    expect(await verify({ annotations: { env: "dev" } }, {}, { annotations: { env: "prod" } })).toMatchObject(
      [{ result: "failed", check: "annotations" }],
    );
  });

  it("refuses a keyless bundle when only keys are configured", async () => {
    const source = new MemorySource(`registry.local/acme/app@${DIGEST}`, DIGEST);
    source.addBundle(await keylessBundle(sigstore, { digest: DIGEST, subject: SUBJECT, issuer: ISSUER }));
    const { publicKey } = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
    const checks = await verifyCosign(
      source,
      { keys: [{ pem: publicKey.export({ type: "spki", format: "pem" }).toString() }] },
      { verifierName: "k" },
    );
    expect(checks).toMatchObject([{ result: "failed", check: "authenticity" }]);
  });

  it("rejects unusable keyless configuration with INVALID_CONFIG", async () => {
    const source = new MemorySource(`registry.local/acme/app@${DIGEST}`, DIGEST);
    const bad: Array<NonNullable<CosignConfig["keyless"]>> = [
      { trustedRoot: sigstore.trustedRoot, identities: [] },
      { trustedRoot: sigstore.trustedRoot, identities: [{ subject: SUBJECT }] },
      { trustedRoot: sigstore.trustedRoot, identities: [{ issuer: ISSUER }] },
      { trustedRoot: sigstore.trustedRoot, identities: [{ issuer: ISSUER, subjectRegExp: "(" }] },
      { trustedRoot: { mediaType: "nope" }, identities: [{ issuer: ISSUER, subject: SUBJECT }] },
      {
        trustedRoot: { ...sigstore.trustedRoot, certificateAuthorities: [] },
        identities: [{ issuer: ISSUER, subject: SUBJECT }],
      },
      {
        trustedRoot: { ...sigstore.trustedRoot, tlogs: [{ publicKey: 5 }] },
        identities: [{ issuer: ISSUER, subject: SUBJECT }],
      },
    ];
    for (const keyless of bad) {
      const err = await verifyCosign(source, { keyless }, { verifierName: "k" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EngineError);
      expect((err as EngineError).code).toBe("INVALID_CONFIG");
    }
  });
});
