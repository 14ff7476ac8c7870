import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { canonicalJson, compilePolicy } from "../../../src/engine/policy/index.js";
import { ecKeyPair, mapResolver, selfSignedCert } from "./material.js";

const keyA = ecKeyPair();
const keyB = ecKeyPair();
const certA = selfSignedCert("rev-a");
const certB = selfSignedCert("rev-b");

const indent = (text: string, n: number) =>
  text
    .trimEnd()
    .split("\n")
    .map((l) => " ".repeat(n) + l)
    .join("\n");

// The same policy written twice: different key order, flow vs block style, comments, quoting.
const yamlA = `
apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: team-a
spec:
  images: ["127.0.0.1:5000/team-a/**"]
  mode: Enforce
  verifiers:
    - name: notary
      notation:
        trustedIdentities: ["*"]
        trustStores:
          - type: ca
            name: acme
            certificates: |
${indent(certA, 14)}
    - name: cosign-key
      cosign:
        keys:
          - secretRef: {name: cosign, namespace: tollgate, key: cosign.pub}
  cache: {positiveTTLSeconds: 60, negativeTTLSeconds: 10}
`;

const yamlB = `
# reordered and reformatted
kind: "ImagePolicy"
spec:
  cache:
    negativeTTLSeconds: 10
    positiveTTLSeconds: 60
  verifiers:
  - cosign:
      keys:
      - secretRef:
          key: cosign.pub
          namespace: tollgate
          name: cosign
    name: cosign-key
  - notation:
      trustStores:
      - certificates: |+
${indent(certA, 10)}

        name: acme
        type: ca
      trustedIdentities:
      - "*"
    name: notary
  images:
  - 127.0.0.1:5000/team-a/**
  mode: "Enforce"
metadata: {name: team-a}
apiVersion: tollgate.dev/v1alpha1
`;

function resolverWith(pem: string) {
  return mapResolver({ "Secret/tollgate/cosign/cosign.pub": pem });
}

describe("policy revision", () => {
  it("is canonical JSON: key order does not matter", () => {
    expect(canonicalJson({ b: 1, a: [{ d: 1, c: undefined, b: "x" }] })).toBe(
      '{"a":[{"b":"x","d":1}],"b":1}',
    );
  });

  it("does not depend on key order, YAML style or trailing whitespace", async () => {
    // Verifier order is part of the document (it orders the report), so keep it the same.
    const a = parseYaml(yamlA);
    const b = parseYaml(yamlB);
    b.spec.verifiers.reverse();
    const ra = await compilePolicy(a, { resolver: resolverWith(keyA.publicPem) });
    const rb = await compilePolicy(b, { resolver: resolverWith(`\n${keyA.publicPem}\n\n`) });
    expect(ra.revision).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(rb.revision).toBe(ra.revision);
    // And is stable across compilations.
    expect((await compilePolicy(a, { resolver: resolverWith(keyA.publicPem) })).revision).toBe(ra.revision);
  });

  it("changes when referenced trust material changes", async () => {
    const doc = parseYaml(yamlA);
    const r1 = await compilePolicy(doc, { resolver: resolverWith(keyA.publicPem) });
    const r2 = await compilePolicy(doc, { resolver: resolverWith(keyB.publicPem) });
    expect(r2.revision).not.toBe(r1.revision);
  });

  it("changes when inline trust material, mode or TTLs change", async () => {
    const resolver = resolverWith(keyA.publicPem);
    const base = await compilePolicy(parseYaml(yamlA), { resolver });
    const otherCert = parseYaml(yamlA.replace(indent(certA, 14), indent(certB, 14)));
    const audit = parseYaml(yamlA.replace("mode: Enforce", "mode: Audit"));
    const ttl = parseYaml(yamlA.replace("negativeTTLSeconds: 10", "negativeTTLSeconds: 11"));
    const revs = await Promise.all([otherCert, audit, ttl].map((d) => compilePolicy(d, { resolver })));
    const all = new Set([base.revision, ...revs.map((r) => r.revision)]);
    expect(all.size).toBe(4);
  });

  it("hands verifiers the resolved material in the agreed shapes", async () => {
    const p = await compilePolicy(parseYaml(yamlA), { resolver: resolverWith(keyA.publicPem) });
    const [n, c] = p.verifiers;
    expect(n).toMatchObject({
      name: "notary",
      kind: "notation",
      notation: {
        trustPolicies: [
          {
            name: "notary",
            registryScopes: ["*"],
            signatureVerification: { level: "strict" },
            trustStores: ["ca:acme"],
            trustedIdentities: ["*"],
          },
        ],
        trustStores: [{ type: "ca", name: "acme", certificates: [certA.trim() + "\n"] }],
      },
    });
    expect(c).toEqual({ name: "cosign-key", kind: "cosign", cosign: { keys: [{ pem: keyA.publicPem }] } });
  });
});
