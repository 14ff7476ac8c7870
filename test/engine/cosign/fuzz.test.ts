// Property tests: bundle and payload parsing never crash and only ever fail with typed
// EngineErrors; the full verifier turns any garbage into a "failed" check, never a pass.
import crypto from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseBundle } from "../../../src/engine/cosign/bundle.js";
import { verifyCosign } from "../../../src/engine/cosign/index.js";
import { parseSimpleSigning, parseStatement } from "../../../src/engine/cosign/payload.js";
import { EngineError } from "../../../src/engine/errors.js";
import { MemorySource } from "./memory-source.js";

const CONTENT_CODES = new Set(["MALFORMED", "TOO_LARGE", "TOO_MANY", "UNSUPPORTED"]);
const DIGEST = `sha256:${"12".repeat(32)}`;
const { publicKey, privateKey } = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
const PEM = publicKey.export({ type: "spki", format: "pem" }).toString();
const b64 = (s: string | Buffer) => Buffer.from(s).toString("base64");

function expectTyped(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof EngineError)) throw new Error(`untyped error: ${String(e)}`, { cause: e });
    expect(CONTENT_CODES.has(e.code)).toBe(true);
    expect(e.message.length).toBeGreaterThan(0);
  }
}

const statement = {
  _type: "https://in-toto.io/Statement/v1",
  subject: [{ digest: { sha256: DIGEST.slice(7) }, annotations: {} }],
  predicateType: "https://sigstore.dev/cosign/sign/v1",
  predicate: {},
};
const payload = Buffer.from(JSON.stringify(statement));
const pae = Buffer.concat([
  Buffer.from(`DSSEv1 28 application/vnd.in-toto+json ${payload.length} `),
  payload,
]);
const validBundle = {
  mediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
  verificationMaterial: { publicKey: { hint: "x" } },
  dsseEnvelope: {
    payload: b64(payload),
    payloadType: "application/vnd.in-toto+json",
    signatures: [{ sig: crypto.sign("sha256", pae, privateKey).toString("base64") }],
  },
};
const simple = Buffer.from(
  JSON.stringify({
    critical: {
      identity: { "docker-reference": "r/a" },
      image: { "docker-manifest-digest": DIGEST },
      type: "cosign container image signature",
    },
    optional: null,
  }),
);

/** Replace the value at a random path of a JSON value with an arbitrary JSON value. */
function mutate(base: unknown): fc.Arbitrary<unknown> {
  const paths: string[][] = [];
  const walk = (v: unknown, p: string[]) => {
    paths.push(p);
    if (v && typeof v === "object") for (const [k, c] of Object.entries(v)) walk(c, [...p, k]);
  };
  walk(base, []);
  return fc.tuple(fc.constantFrom(...paths), fc.jsonValue({ maxDepth: 3 })).map(([p, val]) => {
    if (p.length === 0) return val;
    const copy = structuredClone(base) as Record<string, unknown>;
    let cur = copy;
    for (const k of p.slice(0, -1)) cur = cur[k] as Record<string, unknown>;
    cur[p[p.length - 1] as string] = val;
    return copy;
  });
}

describe("parsing never crashes and fails with typed errors", () => {
  it("bundle parser on arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (b) => expectTyped(() => parseBundle(b))),
      { numRuns: 2000 },
    );
  });

  it("bundle parser on arbitrary JSON", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 5 }), (v) =>
        expectTyped(() => parseBundle(Buffer.from(JSON.stringify(v) ?? "null"))),
      ),
      { numRuns: 2000 },
    );
  });

  it("bundle parser on mutations of a valid bundle", () => {
    fc.assert(
      fc.property(mutate(validBundle), (v) =>
        expectTyped(() => parseBundle(Buffer.from(JSON.stringify(v) ?? "null"))),
      ),
      { numRuns: 3000 },
    );
  });

  it("statement and simple-signing parsers on arbitrary and mutated JSON", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.jsonValue({ maxDepth: 5 }), mutate(statement), mutate(JSON.parse(simple.toString()))),
        (v) => {
          const bytes = Buffer.from(JSON.stringify(v) ?? "null");
          expectTyped(() => parseStatement(bytes));
          expectTyped(() => parseSimpleSigning(bytes));
        },
      ),
      { numRuns: 3000 },
    );
  });

  it("rejects deeply nested and oversized input with typed errors", () => {
    const deep = Buffer.from(`${"[".repeat(5000)}${"]".repeat(5000)}`);
    expect(() => parseBundle(deep)).toThrow(EngineError);
    const big = Buffer.alloc(300 * 1024, 0x20);
    expect(() => parseStatement(big)).toThrowError(expect.objectContaining({ code: "TOO_LARGE" }));
  });
});

describe("verifyCosign on hostile artifacts", () => {
  it("the untouched fixtures pass (so the properties below are meaningful)", async () => {
    const src = new MemorySource(`r/a@${DIGEST}`, DIGEST);
    src.addBundle(validBundle);
    src.addSimpleSigning([
      { payload: simple, signature: crypto.sign("sha256", simple, privateKey).toString("base64") },
    ]);
    const checks = await verifyCosign(src, { keys: [{ pem: PEM }] }, { verifierName: "fuzz" });
    expect(checks.map((c) => c.result)).toEqual(["passed", "passed"]);
  });

  it("turns mutated bundles into failed checks with a reason, never a crash", async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(mutate(validBundle), fc.jsonValue({ maxDepth: 4 })), async (v) => {
        const src = new MemorySource(`r/a@${DIGEST}`, DIGEST);
        src.addBundle(Buffer.from(JSON.stringify(v) ?? "null"));
        const checks = await verifyCosign(src, { keys: [{ pem: PEM }] }, { verifierName: "fuzz" });
        expect(checks).toHaveLength(1);
        const c = checks[0];
        expect(c?.reason.length).toBeGreaterThan(0);
        // A pass is only possible if the mutation left the signed content intact.
        if (c?.result === "passed") {
          const b = v as typeof validBundle;
          expect(b.dsseEnvelope.payload).toBe(validBundle.dsseEnvelope.payload);
          expect(b.dsseEnvelope.signatures[0]?.sig).toBe(validBundle.dsseEnvelope.signatures[0]?.sig);
        } else {
          expect(c?.result).toBe("failed");
        }
      }),
      { numRuns: 1000 },
    );
  });

  it("turns arbitrary simple-signing layers into failed checks", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 256 }),
        fc.string({ maxLength: 120 }),
        async (bytes, sig) => {
          const src = new MemorySource(`r/a@${DIGEST}`, DIGEST);
          src.addSimpleSigning([{ payload: bytes, signature: sig }]);
          const checks = await verifyCosign(src, { keys: [{ pem: PEM }] }, { verifierName: "fuzz" });
          expect(checks).toHaveLength(1);
          expect(checks[0]).toMatchObject({ result: "failed" });
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("signed-but-wrong payloads fail on the claim, not the signature", async () => {
    await fc.assert(
      fc.asyncProperty(mutate(JSON.parse(simple.toString())), async (v) => {
        const bytes = Buffer.from(JSON.stringify(v) ?? "null");
        const src = new MemorySource(`r/a@${DIGEST}`, DIGEST);
        src.addSimpleSigning([
          { payload: bytes, signature: crypto.sign("sha256", bytes, privateKey).toString("base64") },
        ]);
        const [c] = await verifyCosign(src, { keys: [{ pem: PEM }] }, { verifierName: "fuzz" });
        if (c?.result === "passed") expect(parseSimpleSigning(bytes).manifestDigest).toBe(DIGEST);
        else expect(c?.check).not.toBe("authenticity");
      }),
      { numRuns: 1000 },
    );
  });
});
