// `tollgate policy import notation`: the directory read as notation reads it (oci document
// first, every file of a named store, PEM bundles and DER, only named stores), what it refuses
// (exit 1), the YAML it prints (valid, compiles with its ConfigMap), and the CLI exit codes.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { ImportProblem, importNotationDir } from "../../src/cli/import-notation.js";
import { compilePolicy } from "../../src/engine/policy/compile.js";
import type { NotationConfig } from "../../src/engine/policy/model.js";
import { mapResolver, selfSignedCert } from "../engine/policy/material.js";
import { tools } from "../support/tools.js";
import { buildCli, runCli } from "./helpers.js";

let cli: string;
let base: string;
let n = 0;
const certA = selfSignedCert("import-a");
const certB = selfSignedCert("import-b");

const policyDoc = (stores: string[], scope = "*") => ({
  version: "1.0",
  trustPolicies: [
    {
      name: "p",
      registryScopes: [scope],
      signatureVerification: { level: "strict" },
      trustStores: stores,
      trustedIdentities: ["*"],
    },
  ],
});

function configDir(files: Record<string, string | Buffer>): string {
  const dir = path.join(base, `c${n++}`);
  for (const [rel, body] of Object.entries(files)) {
    const f = path.join(dir, rel);
    mkdirSync(path.dirname(f), { recursive: true });
    writeFileSync(f, body);
  }
  return dir;
}

function der(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, ""), "base64");
}

beforeAll(async () => {
  base = mkdtempSync(path.join(os.tmpdir(), "tollgate-import-notation-"));
  cli = await buildCli();
}, 60_000);

describe("importNotationDir", () => {
  it("prefers trustpolicy.oci.json, reads PEM bundles and DER files, only the named stores", async () => {
    const dir = configDir({
      "trustpolicy.json": JSON.stringify(policyDoc(["ca:ignored"])),
      "trustpolicy.oci.json": JSON.stringify(policyDoc(["ca:Named_1", "tsa:ts"])),
      "truststore/x509/ca/Named_1/bundle.pem": certA + certB,
      "truststore/x509/tsa/ts/root.der": der(certA),
      "truststore/x509/ca/unnamed/x.pem": certB,
    });
    const r = importNotationDir(dir, { name: "imp", namespace: "ns" });
    const [cm, pol] = r.docs as [Record<string, Record<string, string>>, Record<string, unknown>];
    expect(Object.keys(cm.data!).sort()).toEqual(["ca.Named_1.pem", "trustpolicy.json", "tsa.ts.pem"]);
    expect(JSON.parse(cm.data!["trustpolicy.json"]!).trustPolicies[0].trustStores).toEqual([
      "ca:Named_1",
      "tsa:ts",
    ]);
    const resolver = mapResolver(
      Object.fromEntries(Object.entries(cm.data!).map(([k, v]) => [`ConfigMap/ns/imp-notation/${k}`, v])),
    );
    const compiled = await compilePolicy(pol, { resolver });
    const cfg = (compiled.verifiers[0] as { notation: NotationConfig }).notation;
    expect(cfg.trustStores.map((s) => [s.type, s.name, s.certificates.length])).toEqual([
      ["ca", "Named_1", 2],
      ["tsa", "ts", 1],
    ]);
  });

  it("inline: one self-contained ImagePolicy", async () => {
    const dir = configDir({
      "trustpolicy.json": JSON.stringify(policyDoc(["ca:a"])),
      "truststore/x509/ca/a/a.crt": certA,
    });
    const r = importNotationDir(dir, { inline: true });
    expect(r.docs).toHaveLength(1);
    await compilePolicy(r.docs[0]);
  });

  it("notes a named store that does not exist instead of failing", () => {
    const dir = configDir({ "trustpolicy.json": JSON.stringify(policyDoc(["ca:absent"])) });
    const r = importNotationDir(dir);
    expect(r.notes.join("\n")).toMatch(/ca:absent is named by the document but .* does not exist/);
  });

  it("refuses what notation refuses: invalid document, non-certificate file, symlink, sub-directory", () => {
    const bad = configDir({ "trustpolicy.json": JSON.stringify(policyDoc(["ca:a"], "registry.example")) });
    expect(() => importNotationDir(bad)).toThrow(ImportProblem);
    const junk = configDir({
      "trustpolicy.json": JSON.stringify(policyDoc(["ca:a"])),
      "truststore/x509/ca/a/readme.txt": "not a certificate",
    });
    expect(() => importNotationDir(junk)).toThrow(/neither PEM nor DER/);
    const linked = configDir({ "trustpolicy.json": JSON.stringify(policyDoc(["ca:a"])), "real.pem": certA });
    mkdirSync(path.join(linked, "truststore/x509/ca/a"), { recursive: true });
    symlinkSync(path.join(linked, "real.pem"), path.join(linked, "truststore/x509/ca/a/l.pem"));
    expect(() => importNotationDir(linked)).toThrow(/not a regular file/);
    const sub = configDir({
      "trustpolicy.json": JSON.stringify(policyDoc(["ca:a"])),
      "truststore/x509/ca/a/sub/x.pem": certA,
    });
    expect(() => importNotationDir(sub)).toThrow(/not a regular file/);
  });

  it("the directory notation itself wrote (notation cert generate-test) imports and compiles", async () => {
    const home = path.join(base, "notation-home");
    mkdirSync(home, { recursive: true });
    const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, XDG_CONFIG_HOME: home };
    execFileSync(tools.notation, ["cert", "generate-test", "imported.example"], { env, stdio: "pipe" });
    writeFileSync(
      path.join(home, "notation", "trustpolicy.json"),
      JSON.stringify(policyDoc(["ca:imported.example"])),
    );
    const r = importNotationDir(path.join(home, "notation"), { inline: true });
    await compilePolicy(r.docs[0]);
  });
});

describe("tollgate policy import notation (CLI)", () => {
  it("prints YAML documents, notes on stderr, exit 0; exit 1 on an invalid document; exit 2 on usage", async () => {
    const dir = configDir({
      "trustpolicy.json": JSON.stringify(policyDoc(["ca:a"])),
      "truststore/x509/ca/a/a.pem": certA,
    });
    const ok = await runCli(cli, ["policy", "import", "notation", "--dir", dir, "--name", "team"]);
    expect(ok.code, ok.stderr).toBe(0);
    const docs = parseAllDocuments(ok.stdout).map((d) => d.toJS() as { kind: string });
    expect(docs.map((d) => d.kind)).toEqual(["ConfigMap", "ImagePolicy"]);
    expect(ok.stderr).toMatch(/trust store ca:a: 1 certificate/);
    const bad = configDir({ "trustpolicy.json": '{"version": "2.0", "trustPolicies": []}' });
    expect((await runCli(cli, ["policy", "import", "notation", "--dir", bad])).code).toBe(1);
    expect((await runCli(cli, ["policy", "import", "notation"])).code).toBe(2);
    expect((await runCli(cli, ["policy", "import", "notation", "--dir", path.join(base, "nope")])).code).toBe(
      2,
    );
    expect(
      (await runCli(cli, ["policy", "import", "notation", "--dir", dir, "--name", "Bad_Name"])).code,
    ).toBe(2);
  });
});
