// Trust policy document validation with the real notation 1.3.2 as the oracle: `notation
// policy import` accepts exactly the documents our parser accepts. Documents are generated
// (fixed seed) from tricky registry scopes, names, levels, overrides, verifyTimestamp values,
// trust store references, trusted identities and Go-decoding quirks (key case, nulls, types).
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseTrustPolicyDocument } from "../../../src/engine/notation/policy.js";
import { assertToolsInstalled, tools } from "../../support/tools.js";

const run = promisify(execFile);
let dir: string;

async function notationAccepts(doc: unknown, i: number): Promise<{ ok: boolean; out: string }> {
  const home = path.join(dir, `h${i}`);
  mkdirSync(home, { recursive: true });
  const file = path.join(dir, `doc-${i}.json`);
  writeFileSync(file, JSON.stringify(doc));
  try {
    await run(tools.notation, ["policy", "import", "--force", file], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, XDG_CONFIG_HOME: home },
      timeout: 30_000,
    });
    return { ok: true, out: "" };
  } catch (e) {
    const err = e as Error & { stderr?: string; code?: number };
    if (typeof err.code !== "number") throw e;
    return { ok: false, out: err.stderr ?? "" };
  }
}

function ours(doc: unknown): { ok: boolean; out: string } {
  try {
    parseTrustPolicyDocument(doc);
    return { ok: true, out: "" };
  } catch (e) {
    return { ok: false, out: (e as Error).message };
  }
}

const scopes = [
  "*",
  "localhost:5000/x",
  "127.0.0.1:5000/team/app",
  "registry.example/a/b",
  "LOCALHOST:5000/x",
  "localhost:5000/X",
  "localhost:5000",
  "registry.example/a//b",
  "registry.example/a_b",
  "registry.example/a__b",
  "registry.example/a___b",
  "registry.example/a---b",
  "registry.example/a.-b",
  "registry.example:port/x",
  "registry.example/*",
  "registry.example/a:tag",
  "registry.example/a@sha256:00",
  "-registry.example/a",
  "registry-.example/a",
  "registry.example/a/",
  "local/oci-layout",
];
const stores = [
  "ca:x",
  "signingAuthority:y",
  "tsa:t",
  "ca:",
  "ca",
  "x509:z",
  "ca:a b",
  "ca:A_b.c-1",
  "ca:x:y",
  "CA:x",
  "ca:..",
];
const identities = [
  "*",
  "x509.subject: C=US, ST=WA, O=Acme",
  "x509.subject: C=US, ST=WA, O=Acme, CN=release",
  "x509.subject: C=US, O=Acme",
  "x509.subject: C=US, S=WA, O=Acme",
  "x509.subject:",
  "x509.subject: c=US, st=WA, o=Acme",
  "x509.subject: C=US, ST=WA, O=Acme+OU=x",
  'x509.subject: C=US, ST=WA, O="Acme, Inc"',
  "x509.subject: C=US, ST=WA, O=Acme\\, Inc",
  "x509.subject: C=US, ST=WA, O=#0101",
  "x509.subject: C=US, ST=WA, ST=OR, O=Acme",
  "x509.subject: C=US;ST=WA;O=Acme",
  "plugin.id:anything",
  "nocolon",
  "",
  'x509.subject: C=US, ST=WA, O="Acme"',
  "x509.subject: C=US, ST=WA, O=Acme\\2C Inc",
  "x509.subject: C=US, ST=WA, O=Acme\\zz",
  "x509.subject: C=US, ST=WA, O=Acme\\",
  "x509.subject: C=US, ST=WA, O=Acme\\ ",
  "x509.subject: C=US, ST=WA, O= ",
  "x509.subject: C=US, ST=WA, O=Acme,",
  "x509.subject: C=US,, ST=WA, O=Acme",
  "x509.subject: =US, ST=WA, O=Acme",
  "x509.subject: C=US, ST=WA, O=a=b",
  "x509.subject: C=, C=US, ST=WA, O=Acme",
  "x509.subject: C=US, ST=WA, O=Ãcme ☃",
  "x509.subject:C=US,ST=WA,O=Acme",
  "x509.subject : C=US, ST=WA, O=Acme",
  "x509.subject:  ",
  "X509.subject: C=US, ST=WA, O=Acme",
];
const checks = ["integrity", "authenticity", "authenticTimestamp", "expiry", "revocation", "bogus"];
const actions = ["enforce", "log", "skip", "", "Enforce"];

/** Mostly a valid value (so whole documents often pass), sometimes a tricky one. */
const pick = <T>(good: readonly T[], tricky: readonly T[]) =>
  fc.oneof(
    { arbitrary: fc.constantFrom(...good), weight: 12 },
    { arbitrary: fc.constantFrom(...tricky), weight: 1 },
  );
const goodScopes = scopes.filter((x) =>
  /^(\*|localhost:5000\/x|127\.0\.0\.1:5000\/team\/app|registry\.example\/a\/b|registry\.example\/a_b|registry\.example\/a__b|registry\.example\/a---b|local\/oci-layout)$/.test(
    x,
  ),
);
const goodStores = ["ca:x", "signingAuthority:y", "tsa:t", "ca:A_b.c-1"];
const goodIds = identities.slice(0, 5).concat(["plugin.id:anything"]);
const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined, freq: 2 });
const policyArb = fc.record(
  {
    name: pick(["a", "b", "c", "Team A"], ["", null, "a"]),
    registryScopes: fc.array(pick(goodScopes, scopes), { minLength: 1, maxLength: 2 }),
    signatureVerification: fc.record(
      {
        level: pick(["strict", "permissive", "audit"], ["skip", "Strict", "", "none"]),
        override: maybe(
          fc.dictionary(pick(checks.slice(1, 5), checks), pick(["enforce", "log"], actions), { maxKeys: 2 }),
        ),
        verifyTimestamp: maybe(pick(["always", "afterCertExpiry"], ["never", ""])),
      },
      { requiredKeys: ["level"] },
    ),
    trustStores: fc.array(pick(goodStores, stores), { minLength: 1, maxLength: 2 }),
    trustedIdentities: fc.array(pick(goodIds, identities), { minLength: 1, maxLength: 2 }),
  },
  { requiredKeys: ["name", "registryScopes", "signatureVerification"] },
);
const docArb = fc.record({
  version: pick(["1.0"], ["", "1.1", null]),
  trustPolicies: fc.array(policyArb, { minLength: 1, maxLength: 3 }),
});

// Go-decoding quirks, written out.
const valid = {
  name: "p",
  registryScopes: ["registry.example/app"],
  signatureVerification: { level: "strict" },
  trustStores: ["ca:x"],
  trustedIdentities: ["*"],
};
const fixed: unknown[] = [
  { Version: "1.0", TrustPolicies: [valid] },
  { version: "1.0", trustPolicies: [{ ...valid, NAME: "q" }] },
  { version: "1.0", trustPolicies: [{ ...valid, extra: { anything: 1 } }] },
  { version: "1.0", trustPolicies: [{ ...valid, name: 5 }] },
  { version: "1.0", trustPolicies: [{ ...valid, registryScopes: "registry.example/app" }] },
  { version: "1.0", trustPolicies: [{ ...valid, trustStores: ["ca:x", null] }] },
  { version: "1.0", trustPolicies: [{ ...valid, signatureVerification: { level: "skip", override: {} } }] },
  {
    version: "1.0",
    trustPolicies: [{ ...valid, signatureVerification: { level: "strict", override: { expiry: 1 } } }],
  },
  { version: "1.0", trustPolicies: [valid, null] },
  { version: "1.0", trustPolicies: null },
  { version: 1.0, trustPolicies: [valid] },
  [valid],
  null,
  // Every pool value alone in an otherwise valid document.
  ...scopes.map((x) => ({ version: "1.0", trustPolicies: [{ ...valid, registryScopes: [x] }] })),
  ...stores.map((x) => ({ version: "1.0", trustPolicies: [{ ...valid, trustStores: [x] }] })),
  ...identities.map((x) => ({ version: "1.0", trustPolicies: [{ ...valid, trustedIdentities: [x] }] })),
  ...actions.flatMap((a) =>
    checks.map((c) => ({
      version: "1.0",
      trustPolicies: [{ ...valid, signatureVerification: { level: "permissive", override: { [c]: a } } }],
    })),
  ),
  {
    version: "1.0",
    trustPolicies: [{ name: "s", registryScopes: ["*"], signatureVerification: { level: "skip" } }],
  },
  {
    version: "1.0",
    trustPolicies: [
      { name: "s", registryScopes: ["*"], signatureVerification: { level: "skip" }, trustStores: ["ca:x"] },
    ],
  },
];

beforeAll(() => {
  assertToolsInstalled();
  dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-tpvalid-"));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("trust policy document validation agrees with `notation policy import`", () => {
  it("on generated and hand-written documents", async () => {
    const docs = [...fixed, ...fc.sample(docArb, { numRuns: 100, seed: 16 })];
    const disagreements: string[] = [];
    let accepted = 0;
    for (const [i, doc] of docs.entries()) {
      const cli = await notationAccepts(doc, i);
      const mine = ours(doc);
      if (cli.ok) accepted++;
      if (cli.ok !== mine.ok)
        disagreements.push(
          `${JSON.stringify(doc)}\n  notation: ${cli.ok ? "accepts" : cli.out.trim()}\n  ours: ${mine.ok ? "accepts" : mine.out}`,
        );
    }
    console.log(
      `${docs.length} documents, notation accepted ${accepted}, disagreements ${disagreements.length}`,
    );
    expect(disagreements).toEqual([]);
    // The generator must exercise both outcomes.
    expect(accepted).toBeGreaterThan(10);
    expect(accepted).toBeLessThan(docs.length - 10);
  }, 120_000);
});
