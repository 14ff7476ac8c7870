// `tollgate policy import ratify`: Ratify's sample configurations (restated in the shapes of
// ratify v1.4.0 config/samples: Verifier notation v1alpha1/v1beta1, cosign with keys, keyless
// and the legacy forms; KeyManagementProvider inline/Azure Key Vault; CertificateStore;
// Store; Policy config/Rego) convert into a valid ImagePolicy with every unmapped piece
// reported; and a converted configuration gives Ratify's verdicts on real signed/unsigned
// images (notation and cosign CLIs, loopback registry).
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { convertRatify, type RatifyImport } from "../../src/cli/import-ratify.js";
import { compilePolicy, createEngine } from "../../src/engine/index.js";
import type { KeyVaultRef } from "../../src/engine/policy/model.js";
import { validatePolicy } from "../../src/engine/policy/validate.js";
import { ecKeyPair, selfSignedCert, trustedRootJson } from "../engine/policy/material.js";
import { type PushedImage, pushBusyboxImage } from "../support/images.js";
import { cosignSign, notationSign } from "../support/signing.js";
import { type SigningFixture, startSigningFixture } from "../support/signing-fixture.js";

const V1B1 = "config.ratify.deislabs.io/v1beta1";
const cert = selfSignedCert("ratify-sample");
const key = ecKeyPair();

const res = (
  kind: string,
  name: string,
  spec: Record<string, unknown>,
  apiVersion = V1B1,
  namespace?: string,
) => ({
  apiVersion,
  kind,
  metadata: { name, ...(namespace ? { namespace } : {}) },
  spec,
});
const trustPolicyDoc = (store = "ca:ca-certs") => ({
  version: "1.0",
  trustPolicies: [
    {
      name: "default",
      registryScopes: ["*"],
      signatureVerification: { level: "strict" },
      trustStores: [store],
      trustedIdentities: ["*"],
    },
  ],
});
const inlineCert = (name: string, namespace?: string) =>
  res(
    "KeyManagementProvider",
    name,
    { type: "inline", parameters: { contentType: "certificate", value: cert } },
    V1B1,
    namespace,
  );
const inlineKey = (name: string, pem: string) =>
  res("KeyManagementProvider", name, { type: "inline", parameters: { contentType: "key", value: pem } });
const akv = res("KeyManagementProvider", "keymanagementprovider-akv", {
  type: "azurekeyvault",
  parameters: {
    vaultURI: "https://yourkeyvault.vault.azure.net/",
    certificates: [{ name: "c", version: "3f1c0d2e4b5a69788796a5b4c3d2e1f0" }],
    tenantID: "",
    clientID: "",
  },
});
const akvKeys = res("KeyManagementProvider", "kmp-akv-keys", {
  type: "azurekeyvault",
  refreshInterval: "1m",
  parameters: {
    vaultURI: "https://yourkeyvault.vault.azure.net/",
    keys: [{ name: "release" }, { name: "old", version: "0123456789abcdef0123456789abcdef" }],
    clientID: "0b7e2a4c-5d6f-4a8b-9c0d-1e2f3a4b5c6d",
  },
});
const notationVerifier = (stores: unknown, doc: unknown = trustPolicyDoc(), apiVersion = V1B1) =>
  res(
    "Verifier",
    "verifier-notation",
    {
      name: "notation",
      artifactTypes: "application/vnd.cncf.notary.signature",
      parameters: { verificationCertStores: stores, trustPolicyDoc: doc },
    },
    apiVersion,
  );
const cosignVerifier = (parameters: Record<string, unknown>) =>
  res("Verifier", "verifier-cosign", {
    name: "cosign",
    artifactTypes: "application/vnd.dev.cosign.artifact.sig.v1+json",
    parameters,
  });
const configPolicy = (avp: Record<string, string>) =>
  res("Policy", "ratify-policy", {
    type: "config-policy",
    parameters: { artifactVerificationPolicies: avp },
  });
const regoPolicy = res("Policy", "ratify-policy", {
  type: "rego-policy",
  parameters: { passthroughEnabled: false, policy: "package ratify.policy\ndefault valid := false\n" },
});
const store = res("Store", "store-oras", {
  name: "oras",
  parameters: { cacheEnabled: true, cosignEnabled: true, ttl: 10 },
});

function convert(docs: unknown[], opts: Parameters<typeof convertRatify>[1] = {}): RatifyImport {
  return convertRatify(
    docs.map((value, i) => ({ file: `f:${i}`, value })),
    opts,
  );
}

const notMapped = (r: RatifyImport) => r.report.filter((x) => x.status !== "mapped");

/** Every Ratify resource given appears in the report: nothing is dropped silently. */
function everyResourceReported(docs: unknown[], r: RatifyImport): void {
  for (const d of docs as { kind: string; metadata: { name: string } }[]) {
    const kind = d.kind.replace(/^Namespaced/, "");
    expect(
      r.report.some((x) => x.source === `${kind}/${d.metadata.name}`),
      `${kind}/${d.metadata.name}`,
    ).toBe(true);
  }
}

describe("Ratify sample configurations", () => {
  const samples: {
    name: string;
    docs: unknown[];
    policy: boolean;
    unmapped: RegExp[];
    trustedRoot?: boolean;
    keylessRoot?: unknown;
  }[] = [
    {
      name: "notation v1beta1 + inline certificate KMP + config policy",
      docs: [
        inlineCert("ratify-notation-inline-cert-0"),
        notationVerifier({ ca: { "ca-certs": ["ratify-notation-inline-cert-0"] } }),
        configPolicy({ default: "all" }),
        store,
      ],
      policy: true,
      unmapped: [/Store\/store-oras/, /Policy\/ratify-policy.*approximated|approximated/],
    },
    {
      name: "notation v1alpha1 (untyped stores) + CertificateStore",
      docs: [
        res("CertificateStore", "ratify-notation-inline-cert-0", {
          provider: "inline",
          parameters: { value: cert },
        }),
        notationVerifier(
          { certs: ["ratify-notation-inline-cert-0"] },
          trustPolicyDoc("ca:certs"),
          "config.ratify.deislabs.io/v1alpha1",
        ),
      ],
      policy: true,
      unmapped: [],
    },
    {
      name: "notation with a namespace-qualified KMP",
      docs: [
        inlineCert("ratify-notation-inline-cert-0", "default"),
        notationVerifier({ ca: { "ca-certs": ["default/ratify-notation-inline-cert-0"] } }),
      ],
      policy: true,
      unmapped: [],
    },
    {
      name: "notation with an Azure Key Vault KMP",
      docs: [akv, notationVerifier({ ca: { "ca-certs": ["keymanagementprovider-akv"] } })],
      policy: true,
      unmapped: [],
    },
    {
      name: "cosign with Azure Key Vault keys (all of a provider, and one named key)",
      docs: [
        akvKeys,
        cosignVerifier({
          trustPolicies: [
            {
              name: "default",
              scopes: ["*"],
              keys: [{ provider: "kmp-akv-keys" }, { provider: "kmp-akv-keys", name: "release" }],
              tLogVerify: false,
            },
          ],
        }),
      ],
      policy: true,
      unmapped: [],
    },
    {
      name: "an Azure Key Vault KMP sharing a store with an inline one, and an unknown key name",
      docs: [
        akv,
        akvKeys,
        inlineCert("inline-ca"),
        notationVerifier({ ca: { "ca-certs": ["keymanagementprovider-akv", "inline-ca"] } }),
        cosignVerifier({
          trustPolicies: [
            { name: "default", scopes: ["*"], keys: [{ provider: "kmp-akv-keys", name: "nope" }] },
          ],
        }),
      ],
      policy: true,
      unmapped: [
        /shares the store with other providers/,
        /key "nope" is not among the keys of provider kmp-akv-keys/,
      ],
    },
    {
      name: "cosign with an inline key KMP, tlog off",
      docs: [
        inlineKey("ratify-cosign-inline-key-0", key.publicPem),
        cosignVerifier({
          trustPolicies: [
            {
              name: "default",
              scopes: ["*"],
              keys: [{ provider: "ratify-cosign-inline-key-0" }],
              tLogVerify: false,
            },
          ],
        }),
      ],
      policy: true,
      unmapped: [],
    },
    {
      name: "cosign keyless with identity, trusted root given",
      docs: [
        cosignVerifier({
          trustPolicies: [
            {
              name: "default",
              scopes: ["*"],
              keyless: {
                certificateIdentity: "https://github.com/a/b/.github/workflows/r.yml@refs/heads/main",
                certificateOIDCIssuer: "https://token.actions.githubusercontent.com",
              },
            },
          ],
        }),
      ],
      policy: true,
      trustedRoot: true,
      unmapped: [],
    },
    {
      name: "cosign keyless without a trusted root (public-good root through TUF, as Ratify)",
      docs: [
        cosignVerifier({
          trustPolicies: [
            {
              name: "default",
              scopes: ["*"],
              keyless: { certificateIdentityRegExp: ".*", certificateOIDCIssuer: "https://x" },
            },
          ],
        }),
      ],
      policy: true,
      unmapped: [],
      keylessRoot: { tuf: {} },
    },
    {
      name: "cosign legacy key file",
      docs: [cosignVerifier({ key: "/usr/local/ratify-certs/cosign/cosign.pub" })],
      policy: false,
      unmapped: [/key file path/],
    },
    {
      name: "cosign legacy keyless (rekorURL only)",
      docs: [cosignVerifier({ rekorURL: "https://rekor.sigstore.dev" })],
      policy: false,
      unmapped: [/names no identity/],
    },
    {
      name: "Rego policy with notation",
      docs: [inlineCert("c"), notationVerifier({ ca: { "ca-certs": ["c"] } }), regoPolicy],
      policy: true,
      unmapped: [/Rego policies are not converted/],
    },
    {
      name: "unsupported verifiers (sbom, licensechecker)",
      docs: [
        res("Verifier", "verifier-sbom", {
          name: "sbom",
          artifactTypes: "application/spdx+json",
          parameters: {},
        }),
        inlineCert("c"),
        notationVerifier({ ca: { "ca-certs": ["c"] } }),
      ],
      policy: true,
      unmapped: [/verifier type "sbom" is not supported/],
    },
  ];

  it.each(samples)("$name", async (s) => {
    const r = convert(s.docs, s.trustedRoot ? { trustedRoot: trustedRootJson } : {});
    everyResourceReported(s.docs, r);
    const text = notMapped(r)
      .map((x) => `${x.status} ${x.source} ${x.field ?? ""}: ${x.detail}`)
      .join("\n");
    for (const re of s.unmapped) expect(text).toMatch(re);
    if (s.unmapped.length === 0) expect(text).toBe("");
    expect(r.policy !== undefined).toBe(s.policy);
    if (r.policy) {
      const v = validatePolicy(r.policy);
      expect(v.ok, JSON.stringify(v)).toBe(true);
      // Key Vault material as the agent's key management providers would serve it.
      const resolveKey = async (ref: KeyVaultRef) => (ref.kind === "AzureKeyVaultKey" ? key.publicPem : cert);
      await compilePolicy(r.policy, { resolver: { resolve: async () => "", resolveKey } });
    }
    if (s.keylessRoot !== undefined)
      expect(JSON.stringify(r.policy)).toContain(`"trustedRoot":${JSON.stringify(s.keylessRoot)}`);
  });
});

describe("converted Ratify configuration on real signatures", () => {
  let fx: SigningFixture;
  let notarySigned: PushedImage;
  let cosignSigned: PushedImage;
  let unsigned: PushedImage;

  beforeAll(async () => {
    fx = await startSigningFixture({ notationKey: "ratify-test" });
    notarySigned = pushBusyboxImage(fx.reg.host, "ratify/app", "notary", { marker: "r-notary" });
    cosignSigned = pushBusyboxImage(fx.reg.host, "ratify/app", "cosign", { marker: "r-cosign" });
    unsigned = pushBusyboxImage(fx.reg.host, "ratify/app", "unsigned", { marker: "r-unsigned" });
    await notationSign({ ref: notarySigned.pinned, configDir: fx.notation.configDir });
    await cosignSign({ ref: cosignSigned.pinned, keyDir: fx.keys });
  }, 240_000);
  afterAll(async () => {
    await fx?.stop();
  });

  it('notation + cosign verifiers with an "any" config policy: signed images pass, unsigned fails', async () => {
    const docs = [
      res("KeyManagementProvider", "notation-certs", {
        type: "inline",
        parameters: { contentType: "certificate", value: readFileSync(fx.notation.certPath, "utf8") },
      }),
      inlineKey("cosign-key", fx.keys.publicKeyPem),
      notationVerifier({ ca: { "ca-certs": ["notation-certs"] } }),
      cosignVerifier({
        trustPolicies: [{ name: "default", scopes: ["*"], keys: [{ provider: "cosign-key" }] }],
      }),
      configPolicy({
        "application/vnd.cncf.notary.signature": "any",
        "application/vnd.dev.cosign.artifact.sig.v1+json": "any",
      }),
    ];
    const r = convert(docs);
    expect(notMapped(r)).toEqual([]);
    const p = await compilePolicy(r.policy);
    const engine = createEngine();
    const verdict = async (img: PushedImage) =>
      (await engine.verify({ reference: img.ref, digest: img.digest }, p)).allowed;
    expect(await verdict(notarySigned)).toBe(true);
    expect(await verdict(cosignSigned)).toBe(true);
    expect(await verdict(unsigned)).toBe(false);
  }, 120_000);
});
