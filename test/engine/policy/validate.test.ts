import { describe, expect, it } from "vitest";
import {
  compilePolicy,
  PolicyValidationError,
  parsePolicy,
  validatePolicy,
} from "../../../src/engine/policy/index.js";
import { ecKeyPair, selfSignedCert, trustedRootJson } from "./material.js";

const key = ecKeyPair();
const cert = selfSignedCert("validate-test");

function base(spec: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: "tollgate.dev/v1alpha1",
    kind: "ImagePolicy",
    metadata: { name: "team-a" },
    spec: {
      verifiers: [
        {
          name: "notary",
          notation: {
            trustedIdentities: ["*"],
            trustStores: [{ type: "ca", name: "acme", certificates: cert }],
          },
        },
        { name: "cosign-key", cosign: { keys: [{ pem: key.publicPem }] } },
      ],
      ...spec,
    },
  };
}

function issuesOf(doc: unknown) {
  const r = validatePolicy(doc);
  return r.ok ? [] : r.issues;
}

describe("ImagePolicy validation", () => {
  it("accepts a minimal policy and fills every default", () => {
    const p = parsePolicy(base());
    expect(p.name).toBe("team-a");
    expect(p.spec).toMatchObject({
      images: ["**"],
      unmatchedImages: "Deny",
      exemptImages: [],
      match: "AllOf",
      mode: "Enforce",
      failurePolicy: "Closed",
      cache: { positiveTTLSeconds: 300, negativeTTLSeconds: 30 },
    });
    expect(p.spec.verifiers[0]!.notation!.level).toBe("strict");
    expect(p.spec.verifiers[1]!.cosign!.keys![0]!.pem.inline).toBe(key.publicPem);
  });

  const withVerifier = (v: unknown) =>
    base({ verifiers: [(base().spec as { verifiers: unknown[] }).verifiers[0], v] });
  const cases: [string, unknown, string, RegExp][] = [
    ["not an object", "hello", "(document)", /must be an object/],
    ["wrong apiVersion", { ...base(), apiVersion: "v1" }, "apiVersion", /tollgate.dev\/v1alpha1/],
    ["wrong kind", { ...base(), kind: "Pod" }, "kind", /ImagePolicy/],
    ["missing name", { ...base(), metadata: {} }, "metadata.name", /required/],
    [
      "namespaced",
      { ...base(), metadata: { name: "x", namespace: "a" } },
      "metadata.namespace",
      /cluster-scoped/,
    ],
    ["misspelt field", base({ failurepolicy: "Open" }), "spec.failurepolicy", /unknown field/],
    ["bad mode", base({ mode: "enforce" }), "spec.mode", /one of Enforce, Audit/],
    ["bad failurePolicy", base({ failurePolicy: "open" }), "spec.failurePolicy", /one of Closed, Open/],
    ["bad match", base({ match: "OneOf" }), "spec.match", /AnyOf, AllOf/],
    ["bad unmatchedImages", base({ unmatchedImages: true }), "spec.unmatchedImages", /Allow, Deny/],
    ["empty images", base({ images: [] }), "spec.images", /must not be empty/],
    ["pattern not a string", base({ images: ["ok/**", 7] }), "spec.images[1]", /must be a string/],
    ["pattern ***", base({ exemptImages: ["a/***"] }), "spec.exemptImages[0]", /\*\*\*/],
    ["no verifiers", base({ verifiers: [] }), "spec.verifiers", /at least one verifier/],
    [
      "verifier with both kinds",
      base({ verifiers: [{ name: "x", notation: {}, cosign: {} }] }),
      "spec.verifiers[0]",
      /only one of/,
    ],
    [
      "verifier with no kind",
      base({ verifiers: [{ name: "x" }] }),
      "spec.verifiers[0]",
      /one of notation, cosign/,
    ],
    [
      "duplicate verifier names",
      base({
        verifiers: [
          { name: "x", cosign: { keys: [{ pem: key.publicPem }] } },
          { name: "x", cosign: { keys: [{ pem: key.publicPem }] } },
        ],
      }),
      "spec.verifiers[1].name",
      /duplicate/,
    ],
    [
      "cosign key is not PEM",
      withVerifier({ name: "c", cosign: { keys: [{ pem: "hello" }] } }),
      "spec.verifiers[1].cosign.keys[0].pem",
      /^not a PEM public key$/,
    ],
    [
      "cosign key is a private key",
      withVerifier({ name: "c", cosign: { keys: [{ pem: key.privatePem }] } }),
      "spec.verifiers[1].cosign.keys[0].pem",
      /private key/,
    ],
    [
      "cosign key with pem and secretRef",
      withVerifier({
        name: "c",
        cosign: { keys: [{ pem: key.publicPem, secretRef: { name: "a", namespace: "b", key: "c" } }] },
      }),
      "spec.verifiers[1].cosign.keys[0]",
      /only one of pem, secretRef/,
    ],
    [
      "secretRef without namespace",
      withVerifier({ name: "c", cosign: { keys: [{ secretRef: { name: "a", key: "c" } }] } }),
      "spec.verifiers[1].cosign.keys[0].secretRef.namespace",
      /required/,
    ],
    [
      "cosign without keys or keyless",
      withVerifier({ name: "c", cosign: {} }),
      "spec.verifiers[1].cosign",
      /one of keys, keyless/,
    ],
    [
      "keyless without identities",
      withVerifier({ name: "c", cosign: { keyless: { trustedRoot: trustedRootJson } } }),
      "spec.verifiers[1].cosign.keyless.identities",
      /at least one identity/,
    ],
    [
      "keyless identity without issuer",
      withVerifier({
        name: "c",
        cosign: { keyless: { trustedRoot: trustedRootJson, identities: [{ subject: "me@example.com" }] } },
      }),
      "spec.verifiers[1].cosign.keyless.identities[0]",
      /issuer, issuerRegExp/,
    ],
    [
      "keyless bad regexp",
      withVerifier({
        name: "c",
        cosign: {
          keyless: { trustedRoot: trustedRootJson, identities: [{ issuer: "x", subjectRegExp: "(" }] },
        },
      }),
      "spec.verifiers[1].cosign.keyless.identities[0].subjectRegExp",
      /regular expression/,
    ],
    [
      "keyless trusted root not a trusted root",
      withVerifier({
        name: "c",
        cosign: { keyless: { trustedRoot: { hello: 1 }, identities: [{ issuer: "i", subject: "s" }] } },
      }),
      "spec.verifiers[1].cosign.keyless.trustedRoot",
      /not a sigstore trusted root/,
    ],
    [
      "notation level skip",
      base({
        verifiers: [
          {
            name: "n",
            notation: {
              level: "skip",
              trustedIdentities: ["*"],
              trustStores: [{ name: "a", certificates: cert }],
            },
          },
        ],
      }),
      "spec.verifiers[0].notation.level",
      /not allowed/,
    ],
    [
      "notation integrity override",
      base({
        verifiers: [
          {
            name: "n",
            notation: {
              override: { integrity: "skip" },
              trustedIdentities: ["*"],
              trustStores: [{ name: "a", certificates: cert }],
            },
          },
        ],
      }),
      "spec.verifiers[0].notation.override.integrity",
      /cannot be overridden/,
    ],
    [
      "notation bad identity",
      base({
        verifiers: [
          {
            name: "n",
            notation: { trustedIdentities: ["CN=me"], trustStores: [{ name: "a", certificates: cert }] },
          },
        ],
      }),
      "spec.verifiers[0].notation.trustedIdentities[0]",
      /x509.subject/,
    ],
    [
      "notation certificate garbage",
      base({
        verifiers: [
          {
            name: "n",
            notation: {
              trustedIdentities: ["*"],
              trustStores: [
                { name: "a", certificates: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----" },
              ],
            },
          },
        ],
      }),
      "spec.verifiers[0].notation.trustStores[0].certificates",
      /not an X.509 certificate/,
    ],
    [
      "notation trust store is a key",
      base({
        verifiers: [
          {
            name: "n",
            notation: { trustedIdentities: ["*"], trustStores: [{ name: "a", certificates: key.publicPem }] },
          },
        ],
      }),
      "spec.verifiers[0].notation.trustStores[0].certificates",
      /PUBLIC KEY, expected CERTIFICATE/,
    ],
    [
      "notation trust store type",
      base({
        verifiers: [
          {
            name: "n",
            notation: {
              trustedIdentities: ["*"],
              trustStores: [{ type: "x", name: "a", certificates: cert }],
            },
          },
        ],
      }),
      "spec.verifiers[0].notation.trustStores[0].type",
      /ca, signingAuthority, tsa/,
    ],
    [
      "rego without entrypoint",
      base({ rego: { module: "AGFzbQEAAAA=" } }),
      "spec.rego.entrypoint",
      /required/,
    ],
    [
      "rego module not wasm",
      base({ rego: { module: "aGVsbG8gd29ybGQ=", entrypoint: "a/b" } }),
      "spec.rego.module",
      /WebAssembly/,
    ],
    [
      "rego module not base64",
      base({ rego: { module: "%%%", entrypoint: "a/b" } }),
      "spec.rego.module",
      /base64/,
    ],
    [
      "negative TTL",
      base({ cache: { negativeTTLSeconds: -1 } }),
      "spec.cache.negativeTTLSeconds",
      /between 0 and 86400/,
    ],
    [
      "fractional TTL",
      base({ cache: { positiveTTLSeconds: 1.5 } }),
      "spec.cache.positiveTTLSeconds",
      /integer/,
    ],
  ];

  it.each(cases)("%s → %s", (_title, doc, path, message) => {
    const issues = issuesOf(doc);
    const hit = issues.find((i) => i.path === path);
    expect(hit, `issues were ${JSON.stringify(issues)}`).toBeDefined();
    expect(hit!.message).toMatch(message);
  });

  it("reports every issue at once, in the thrown error too", () => {
    const doc = base({ mode: "x", failurePolicy: "y", cache: { positiveTTLSeconds: "5" } });
    expect(() => parsePolicy(doc)).toThrow(PolicyValidationError);
    try {
      parsePolicy(doc);
    } catch (e) {
      const err = e as PolicyValidationError;
      expect(err.code).toBe("INVALID_POLICY");
      expect(err.issues.map((i) => i.path).sort()).toEqual([
        "spec.cache.positiveTTLSeconds",
        "spec.failurePolicy",
        "spec.mode",
      ]);
      expect(err.message).toMatch(/^ImagePolicy team-a is invalid: /);
    }
  });

  it("reports resolved trust material problems at the reference's path", async () => {
    const doc = base({
      verifiers: [
        {
          name: "n",
          notation: {
            trustedIdentities: ["*"],
            trustStores: [{ name: "a", configMapRef: { name: "cas", namespace: "tg", key: "ca.crt" } }],
          },
        },
        { name: "c", cosign: { keys: [{ secretRef: { name: "k", namespace: "tg", key: "cosign.pub" } }] } },
      ],
    });
    const resolver = {
      async resolve(ref: { kind: string; name: string }) {
        if (ref.kind === "ConfigMap") throw new Error('configmap "cas" not found');
        return "not a key";
      },
    };
    const err = (await compilePolicy(doc, { resolver }).catch((e) => e)) as PolicyValidationError;
    expect(err).toBeInstanceOf(PolicyValidationError);
    expect(err.issues).toEqual([
      {
        path: "spec.verifiers[0].notation.trustStores[0].configMapRef",
        message: 'ConfigMap tg/cas key "ca.crt" cannot be read: configmap "cas" not found',
      },
      { path: "spec.verifiers[1].cosign.keys[0].secretRef", message: "not a PEM public key" },
    ]);
    // Without a resolver a reference is an error, never "no trust material".
    const err2 = (await compilePolicy(doc).catch((e) => e)) as PolicyValidationError;
    expect(err2.issues[0]!.message).toMatch(/no trust material resolver/);
  });
});
