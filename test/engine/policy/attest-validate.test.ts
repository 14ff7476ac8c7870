// spec.attestations / spec.conditions validation: exact paths, CEL errors with line:column,
// verifier references, predicate type aliases, and the revision covering all of it.
import { describe, expect, it } from "vitest";
import { compilePolicy, validatePolicy } from "../../../src/engine/policy/index.js";
import { ecKeyPair, selfSignedCert } from "./material.js";

const key = ecKeyPair();
const cert = selfSignedCert("attest-test");
function doc(spec: Record<string, unknown>) {
  return {
    apiVersion: "tollgate.dev/v1alpha1",
    kind: "ImagePolicy",
    metadata: { name: "p" },
    spec: {
      verifiers: [
        { name: "release", cosign: { keys: [{ pem: key.publicPem }] } },
        {
          name: "notary",
          notation: {
            trustedIdentities: ["*"],
            trustStores: [{ type: "ca", name: "c", certificates: cert }],
          },
        },
      ],
      ...spec,
    },
  };
}

function issues(spec: Record<string, unknown>) {
  const r = validatePolicy(doc(spec));
  return r.ok ? [] : r.issues;
}

describe("spec.attestations and spec.conditions validation", () => {
  it("reports CEL errors at the expression's path with line:column", () => {
    expect(
      issues({
        attestations: [
          {
            name: "provenance",
            predicateType: "slsaprovenance1",
            verifier: "release",
            conditions: [{ expression: "predicate.builder == 'x'" }, { expression: "predicat.x == 1" }],
          },
        ],
        conditions: [
          { expression: "attestations.provenanse.predicate.x == 1" },
          { expression: "size(image)" },
        ],
      }),
    ).toEqual([
      {
        path: "spec.attestations[0].conditions[1].expression",
        message: `1:1: undeclared reference to 'predicat' (variables: image, now, predicate, predicateType, request, signer) in "predicat.x == 1"`,
      },
      {
        path: "spec.conditions[0].expression",
        message: `1:13: undefined field 'provenanse' of attestations (fields: provenance) in "attestations.provenanse.predicate.x == 1"`,
      },
      {
        path: "spec.conditions[1].expression",
        message: `expression must evaluate to bool, but has type int in "size(image)"`,
      },
    ]);
  });

  it("checks names, predicate types and verifier references", () => {
    expect(
      issues({
        attestations: [
          { name: "scan", predicateType: "vuln", verifier: "notary" },
          { name: "scan", predicateType: "not a uri", verifier: "nobody", extra: 1 },
        ],
      }),
    ).toEqual([
      {
        path: "spec.attestations[0].verifier",
        message: `verifier "notary" is not a cosign verifier (attestations are DSSE envelopes signed with cosign)`,
      },
      {
        path: "spec.attestations[1].extra",
        message: "unknown field (allowed: name, predicateType, verifier, conditions)",
      },
      { path: "spec.attestations[1].name", message: 'duplicate attestation name "scan"' },
      {
        path: "spec.attestations[1].predicateType",
        message: `"not a uri" is neither a URI nor one of slsaprovenance, slsaprovenance02, slsaprovenance1, spdx, spdxjson, cyclonedx, vuln, link, custom`,
      },
      { path: "spec.attestations[1].verifier", message: 'no verifier named "nobody" in spec.verifiers' },
    ]);
  });

  it("resolves aliases and the revision covers attestations and conditions", async () => {
    const a = await compilePolicy(
      doc({ attestations: [{ name: "prov", predicateType: "slsaprovenance", verifier: "release" }] }),
    );
    expect(a.spec.attestations?.[0]?.predicateType).toBe("https://slsa.dev/provenance/v0.2");
    expect(a.attest?.attestations[0]?.predicateType).toBe("https://slsa.dev/provenance/v0.2");
    const b = await compilePolicy(
      doc({ attestations: [{ name: "prov", predicateType: "slsaprovenance1", verifier: "release" }] }),
    );
    const c = await compilePolicy(
      doc({
        attestations: [{ name: "prov", predicateType: "slsaprovenance1", verifier: "release" }],
        conditions: [{ expression: "attestations.prov.signer == 'x'" }],
      }),
    );
    const none = await compilePolicy(doc({}));
    expect(new Set([a.revision, b.revision, c.revision, none.revision]).size).toBe(4);
    expect(none.attest).toBeUndefined();
  });
});
