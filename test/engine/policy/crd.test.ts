// The CRD's OpenAPI schema and the engine's validator must describe the same document:
// a policy using every field passes both, and misspelt/invalid fields fail both.
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { validatePolicy } from "../../../src/engine/policy/index.js";
import { validate as validateWithCel } from "../../deploy/schema.js";
import { ecKeyPair, selfSignedCert, trustedRootJson } from "./material.js";

type Schema = {
  type?: string;
  enum?: unknown[];
  required?: string[];
  properties?: Record<string, Schema>;
  additionalProperties?: Schema;
  items?: Schema;
  minItems?: number;
  maxItems?: number;
  minimum?: number;
  maximum?: number;
  "x-kubernetes-preserve-unknown-fields"?: boolean;
};

const crd = parseYaml(
  readFileSync(path.resolve(import.meta.dirname, "../../../deploy/crds/imagepolicy.yaml"), "utf8"),
);
const schema: Schema = crd.spec.versions[0].schema.openAPIV3Schema;

/** The structural subset the API server applies (types, enums, required, unknown fields are pruned → we flag them). */
function check(s: Schema, v: unknown, at: string, errs: string[]): void {
  if (s["x-kubernetes-preserve-unknown-fields"] && !s.type) return;
  const t = Array.isArray(v) ? "array" : v === null ? "null" : Number.isInteger(v) ? "integer" : typeof v;
  if (s.type && !(s.type === t || (s.type === "number" && t === "integer")))
    errs.push(`${at}: want ${s.type}, got ${t}`);
  if (s.enum && !s.enum.includes(v)) errs.push(`${at}: not in enum`);
  if (typeof v === "number") {
    if (s.minimum !== undefined && v < s.minimum) errs.push(`${at}: < minimum`);
    if (s.maximum !== undefined && v > s.maximum) errs.push(`${at}: > maximum`);
  }
  if (Array.isArray(v)) {
    if (s.minItems !== undefined && v.length < s.minItems) errs.push(`${at}: too few items`);
    v.forEach((x, i) => {
      if (s.items) check(s.items, x, `${at}[${i}]`, errs);
    });
  } else if (t === "object" && s.type === "object") {
    const o = v as Record<string, unknown>;
    for (const r of s.required ?? []) if (!(r in o)) errs.push(`${at}.${r}: required`);
    for (const [k, x] of Object.entries(o)) {
      const sub = s.properties?.[k] ?? s.additionalProperties;
      if (sub) check(sub, x, `${at}.${k}`, errs);
      else if (!s["x-kubernetes-preserve-unknown-fields"] && s.properties)
        errs.push(`${at}.${k}: unknown field`);
    }
  }
}

const key = ecKeyPair();
const cert = selfSignedCert("crd-test");
const full = {
  apiVersion: "tollgate.dev/v1alpha1",
  kind: "ImagePolicy",
  metadata: { name: "everything" },
  spec: {
    images: ["registry.example/**"],
    unmatchedImages: "Allow",
    exemptImages: ["registry.k8s.io/pause:*"],
    match: "AnyOf",
    mode: "Audit",
    failurePolicy: "Open",
    cache: { positiveTTLSeconds: 600, negativeTTLSeconds: 15 },
    keyManagementProviders: [
      {
        name: "release-vault",
        refreshInterval: "10m",
        azureKeyVault: {
          vaultURI: "https://release.vault.azure.net",
          tenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47",
          clientID: "0b7e2a4c-5d6f-4a8b-9c0d-1e2f3a4b5c6d",
          certificates: [
            { name: "release-ca" },
            { name: "old-ca", version: "0123456789abcdef0123456789abcdef" },
          ],
          keys: [{ name: "cosign" }],
        },
      },
    ],
    verifiers: [
      {
        name: "notary",
        notation: {
          level: "permissive",
          override: { expiry: "log", revocation: "skip" },
          trustedIdentities: ["x509.subject: CN=release,O=Acme"],
          trustStores: [
            { type: "ca", name: "acme", certificates: cert },
            { type: "tsa", name: "tsa", configMapRef: { name: "tsa", namespace: "tollgate", key: "ca.crt" } },
            { type: "ca", name: "vault", keyManagementProvider: "release-vault" },
          ],
        },
      },
      {
        name: "notary-document",
        notation: {
          trustPolicy: {
            version: "1.0",
            trustPolicies: [
              {
                name: "acme",
                registryScopes: ["registry.example/acme/app"],
                signatureVerification: { level: "strict", verifyTimestamp: "afterCertExpiry" },
                trustStores: ["ca:Acme_Root-1", "tsa:tsa"],
                trustedIdentities: ["*"],
              },
              { name: "rest", registryScopes: ["*"], signatureVerification: { level: "skip" } },
            ],
          },
          trustStores: [
            { type: "ca", name: "Acme_Root-1", certificates: cert },
            { type: "tsa", name: "tsa", configMapRef: { name: "tsa", namespace: "tollgate", key: "ca.crt" } },
          ],
        },
      },
      {
        name: "cosign",
        cosign: {
          keys: [
            { name: "k1", pem: key.publicPem },
            { secretRef: { name: "k", namespace: "tollgate", key: "cosign.pub" } },
            { keyManagementProvider: "release-vault" },
            {
              name: "kms",
              kms: "azurekms://release.vault.azure.net/cosign/0123456789abcdef0123456789abcdef",
            },
          ],
          keyless: {
            trustedRoot: trustedRootJson,
            identities: [
              {
                issuer: "https://token.actions.githubusercontent.com",
                subjectRegExp: "^https://github.com/acme/",
              },
            ],
            requireTlog: true,
            requireSct: false,
          },
          annotations: { team: "a" },
        },
      },
    ],
    rego: { module: "AGFzbQEAAAA=", entrypoint: "tollgate/allow", data: { requiredSigner: "CN=release" } },
    attestations: [
      {
        name: "provenance",
        predicateType: "slsaprovenance1",
        verifier: "cosign",
        conditions: [{ expression: 'predicate.runDetails.builder.id == "x"', message: "built by x" }],
      },
    ],
    conditions: [{ expression: "attestations.provenance.signer != ''" }],
  },
};

describe("CRD schema vs validator", () => {
  it("a policy using every field passes both", () => {
    const errs: string[] = [];
    check(schema, full, "", errs);
    errs.push(...validateWithCel(schema as never, full));
    expect(errs).toEqual([]);
    const r = validatePolicy(full);
    expect(r.ok, JSON.stringify(r)).toBe(true);
  });

  const bad: [string, (d: typeof full) => void][] = [
    ["misspelt spec field", (d) => Object.assign(d.spec, { failurepolicy: "Open" })],
    ["bad mode", (d) => Object.assign(d.spec, { mode: "enforce" })],
    ["bad match", (d) => Object.assign(d.spec, { match: "Any" })],
    ["TTL too large", (d) => Object.assign(d.spec.cache, { positiveTTLSeconds: 90_000 })],
    ["unknown notation field", (d) => Object.assign(d.spec.verifiers[0]!.notation!, { trustPolicies: "x" })],
    [
      "bad override action",
      (d) => Object.assign(d.spec.verifiers[0]!.notation!.override!, { expiry: "ignore" }),
    ],
    [
      "ref without namespace",
      (d) => Object.assign(d.spec.verifiers[2]!.cosign!.keys![1]!, { secretRef: { name: "k", key: "x" } }),
    ],
    ["no verifiers", (d) => Object.assign(d.spec, { verifiers: [] })],
    [
      "attestation without verifier",
      (d) => delete (d.spec.attestations[0] as { verifier?: string }).verifier,
    ],
    [
      "attestation conditions not a list",
      (d) => Object.assign(d.spec.attestations[0]!, { conditions: "true" }),
    ],
    ["unknown condition field", (d) => Object.assign(d.spec.conditions[0]!, { expr: "true" })],
    ["condition without expression", (d) => Object.assign(d.spec, { conditions: [{ message: "m" }] })],
    [
      "provider without vault",
      (d) => delete (d.spec.keyManagementProviders[0] as { azureKeyVault?: unknown }).azureKeyVault,
    ],
    [
      "vault URI with a path",
      (d) =>
        Object.assign(d.spec.keyManagementProviders[0]!.azureKeyVault, {
          vaultURI: "https://v.vault.azure.net/keys",
        }),
    ],
    [
      "unknown provider field",
      (d) => Object.assign(d.spec.keyManagementProviders[0]!, { type: "azurekeyvault" }),
    ],
    [
      "bad certificate name",
      (d) => Object.assign(d.spec.keyManagementProviders[0]!.azureKeyVault.certificates[0]!, { name: "a_b" }),
    ],
    [
      "kms URI of another scheme",
      (d) => Object.assign(d.spec.verifiers[2]!.cosign!.keys![3]!, { kms: "awskms:///arn" }),
    ],
    [
      "key named twice (pem and kms)",
      (d) => Object.assign(d.spec.verifiers[2]!.cosign!.keys![3]!, { pem: "x" }),
    ],
    [
      "store with provider and certificates",
      (d) => Object.assign(d.spec.verifiers[0]!.notation!.trustStores[2]!, { certificates: "x" }),
    ],
  ];
  it.each(bad)("%s fails both", (_t, mutate) => {
    const d = structuredClone(full);
    mutate(d);
    const errs: string[] = [];
    check(schema, d, "", errs);
    // The structural subset plus the CRD's CEL rules and patterns, evaluated for real.
    errs.push(...validateWithCel(schema as never, d));
    expect(errs.length).toBeGreaterThan(0);
    expect(validatePolicy(d).ok).toBe(false);
  });
});
