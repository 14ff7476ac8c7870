// Property tests: the parsers never crash or hang on hostile input; every rejection is a
// typed EngineError (or a verdict), never a TypeError/RangeError from deep inside.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { EngineError } from "../../../src/engine/errors.js";
import { children, parseDer } from "../../../src/engine/notation/asn1.js";
import { decodeCbor, encodeArrayHead, encodeBytes, encodeText } from "../../../src/engine/notation/cbor.js";
import { parseCose } from "../../../src/engine/notation/cose.js";
import { parseCrl } from "../../../src/engine/notation/crl.js";
import { parseJws } from "../../../src/engine/notation/jws.js";
import { verifyTimestampToken } from "../../../src/engine/notation/timestamp.js";
import type { NotationTrustPolicy } from "../../../src/engine/notation/types.js";
import { verifyEnvelope } from "../../../src/engine/notation/verify.js";
import { parseCert } from "../../../src/engine/notation/x509.js";
import { craftJws } from "./harness.js";
import { CODESIGN_EXT, chainDer, makeLeaf, makeRoot } from "./pki.js";

function typedOnly(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof EngineError)) throw new Error(`untyped error: ${(e as Error)?.stack ?? String(e)}`);
    expect(["MALFORMED", "TOO_LARGE", "TOO_MANY", "UNSUPPORTED"]).toContain(e.code);
  }
}

/** Mutations of a valid input: bit flips, truncation, splices. */
function mutated(seed: Uint8Array) {
  return fc.oneof(
    fc.tuple(fc.nat(seed.length - 1), fc.integer({ min: 1, max: 255 })).map(([i, x]) => {
      const b = Uint8Array.from(seed);
      b[i] = b[i]! ^ x;
      return b;
    }),
    fc.nat(seed.length).map((n) => seed.subarray(0, n)),
    fc
      .tuple(fc.nat(seed.length), fc.uint8Array({ maxLength: 16 }))
      .map(([i, ins]) => Uint8Array.from([...seed.subarray(0, i), ...ins, ...seed.subarray(i)])),
    fc.uint8Array({ maxLength: 512 }),
  );
}

let certDer: Uint8Array;
let jws: Uint8Array;
let cose: Uint8Array;
let root: ReturnType<typeof makeRoot>;
let crlDer: Uint8Array;

beforeAll(() => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-notation-fuzz-"));
  root = makeRoot(dir, "root", { C: "US", ST: "WA", O: "Fuzz", CN: "Fuzz Root" });
  const leaf = makeLeaf(dir, "leaf", { C: "US", ST: "WA", O: "Fuzz", CN: "fuzz leaf" }, root, CODESIGN_EXT);
  certDer = new Uint8Array(chainDer(leaf.chainPath)[0]!);
  jws = craftJws({
    key: leaf,
    target: {
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: `sha256:${"a".repeat(64)}`,
      size: 1,
    },
  });
  // A COSE_Sign1 built from the JWS parts (structure only; signature validity is not the point).
  const env = JSON.parse(Buffer.from(jws).toString()) as { payload: string; signature: string };
  const prot = Buffer.concat([
    Uint8Array.of(0xa5),
    Uint8Array.of(0x01, 0x38, 0x24), // 1: -37
    Uint8Array.of(0x02, 0x81),
    encodeText("io.cncf.notary.signingScheme"),
    Uint8Array.of(0x03),
    encodeText("application/vnd.cncf.notary.payload.v1+json"),
    encodeText("io.cncf.notary.signingScheme"),
    encodeText("notary.x509"),
    encodeText("io.cncf.notary.signingTime"),
    Uint8Array.of(0xc1, 0x1a, 0x66, 0x00, 0x00, 0x00),
  ]);
  cose = new Uint8Array(
    Buffer.concat([
      Uint8Array.of(0xd2),
      encodeArrayHead(4),
      encodeBytes(prot),
      Uint8Array.of(0xa1, 0x18, 0x21, 0x81),
      encodeBytes(certDer),
      encodeBytes(Buffer.from(env.payload, "base64url")),
      encodeBytes(Buffer.from(env.signature, "base64url")),
    ]),
  );
  // An empty CRL from the root, made by openssl.
  const d = path.join(dir, "crl");
  execFileSync("mkdir", ["-p", d]);
  execFileSync("sh", [
    "-c",
    `cd ${d} && touch index.txt && printf '[ca]\\ndefault_ca=c\\n[c]\\ndatabase=index.txt\\ndefault_md=sha256\\ndefault_crl_days=1\\n' > ca.cnf && openssl ca -gencrl -config ca.cnf -cert ${root.certPath} -keyfile ${root.keyPath} -out crl.pem 2>/dev/null && openssl crl -in crl.pem -outform DER -out crl.der`,
  ]);
  crlDer = new Uint8Array(readFileSync(path.join(d, "crl.der")));
}, 60_000);

describe("parsers under fuzzing", () => {
  it("seeds parse", () => {
    expect(parseCert(certDer).subjectString).toContain("CN=fuzz leaf");
    expect(parseJws(jws).algorithm).toBe("PS256");
    expect(parseCose(cose).certChain).toHaveLength(1);
    expect(parseCrl(crlDer).revoked.size).toBe(0);
  });

  it("ASN.1 / X.509: mutated certificates", () => {
    fc.assert(
      fc.property(mutated(certDer), (b) => {
        typedOnly(() => parseCert(b));
        typedOnly(() => {
          const walk = (n: ReturnType<typeof parseDer>, depth: number): void => {
            if (n.constructed && depth < 40) for (const c of children(n)) walk(c, depth + 1);
          };
          walk(parseDer(b), 0);
        });
      }),
      { numRuns: 800 },
    );
  });

  it("ASN.1: CRLs and RFC 3161 tokens from random / mutated bytes", () => {
    fc.assert(
      fc.property(mutated(crlDer), fc.uint8Array({ maxLength: 64 }), (b, sig) => {
        typedOnly(() => parseCrl(b));
        try {
          verifyTimestampToken(b, sig);
        } catch (e) {
          if (!(e instanceof EngineError) && (e as Error).name !== "TimestampError") throw e;
        }
      }),
      { numRuns: 500 },
    );
  });

  it("CBOR: random bytes and deep nesting", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (b) => typedOnly(() => decodeCbor(b))),
      { numRuns: 2000 },
    );
    // 10^5 nested arrays: must stop at the depth cap, not overflow the stack.
    typedOnly(() => decodeCbor(new Uint8Array(100_000).fill(0x81)));
    // A huge declared length: must not allocate it.
    typedOnly(() => decodeCbor(Uint8Array.of(0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)));
  });

  it("COSE envelopes: mutated", () => {
    fc.assert(
      fc.property(mutated(cose), (b) => typedOnly(() => parseCose(b))),
      { numRuns: 1500 },
    );
  });

  it("JWS envelopes: mutated bytes and mutated JSON fields", () => {
    fc.assert(
      fc.property(mutated(jws), (b) => typedOnly(() => parseJws(b))),
      { numRuns: 1500 },
    );
    const obj = JSON.parse(Buffer.from(jws).toString()) as Record<string, unknown>;
    fc.assert(
      fc.property(fc.constantFrom("payload", "protected", "header", "signature"), fc.jsonValue(), (k, v) => {
        const m = { ...obj, [k]: v };
        typedOnly(() => parseJws(new Uint8Array(Buffer.from(JSON.stringify(m)))));
      }),
      { numRuns: 800 },
    );
  });

  it("verifyEnvelope turns any garbage into a failed integrity verdict", async () => {
    const policy: NotationTrustPolicy = {
      name: "p",
      registryScopes: ["*"],
      signatureVerification: { level: "strict" },
      trustStores: ["ca:x"],
      trustedIdentities: ["*"],
    };
    const stores = [{ type: "ca" as const, name: "x", certificates: [root.certPem] }];
    const subject = {
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: `sha256:${"a".repeat(64)}`,
      size: 1,
    };
    // the seed itself passes
    const ok = await verifyEnvelope(jws, "application/jose+json", subject, policy, stores, {
      verifierName: "n",
    });
    expect(ok.result).toBe("passed");
    await fc.assert(
      fc.asyncProperty(
        mutated(jws),
        fc.constantFrom("application/jose+json", "application/cose"),
        async (b, mt) => {
          const r = await verifyEnvelope(b, mt, subject, policy, stores, { verifierName: "n" });
          if (r.result === "passed") {
            // Only the unsigned parts may differ (the unprotected header, JSON layout): the
            // signed protected header, payload and signature must be the seed's.
            const signed = (x: Uint8Array) => {
              const o = JSON.parse(Buffer.from(x).toString("utf8")) as Record<string, unknown>;
              return [o.protected, o.payload, o.signature];
            };
            expect(mt).toBe("application/jose+json");
            expect(signed(b)).toEqual(signed(jws));
          } else expect(r.check).toBeDefined();
        },
      ),
      { numRuns: 300 },
    );
  });
});
