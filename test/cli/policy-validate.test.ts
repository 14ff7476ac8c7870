// `tollgate policy validate`: the engine's validator with paths, trust material compiled when
// the referenced objects are in the given files, exit codes 0 / 1 / 2.
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { buildCli, runCli } from "./helpers.js";

let cli: string;
let dir: string;
const pem = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({
  type: "spki",
  format: "pem",
}) as string;
const indent = (s: string, n: number) =>
  s
    .trim()
    .split("\n")
    .map((l) => " ".repeat(n) + l)
    .join("\n");

const goodPolicy = `apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: good
spec:
  images: ["127.0.0.1:*/**"]
  verifiers:
    - name: release
      cosign:
        keys:
          - pem: |
${indent(pem, 14)}
`;

function write(name: string, text: string): string {
  const f = path.join(dir, name);
  writeFileSync(f, text);
  return f;
}

beforeAll(async () => {
  cli = await buildCli();
  dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-validate-"));
});

describe("tollgate policy validate", () => {
  it("a valid policy → ok (compiled), exit 0", async () => {
    const f = write("good.yaml", goodPolicy);
    const r = await runCli(cli, ["policy", "validate", f]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`ok       ${f}:1 (ImagePolicy good) (compiled)`);
    expect(r.stdout).toContain("1 document(s) valid");
  });

  it("a CEL condition error is printed with its path and line:column; exit 1", async () => {
    const f = write(
      "cel.yaml",
      `${goodPolicy}  attestations:
    - name: provenance
      predicateType: slsaprovenance1
      verifier: release
  conditions:
    - expression: attestations.provenance.predicate.builder == "x" && attestations.scan.predicate.ok
`,
    );
    const r = await runCli(cli, ["policy", "validate", f]);
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toContain(
      "spec.conditions[0].expression: 1:65: undefined field 'scan' of attestations (fields: provenance)",
    );
  });

  it("every error is printed with its path; exit 1", async () => {
    const f = write(
      "bad.yaml",
      `${goodPolicy}---
apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: bad
spec:
  mode: Enforcing
  match: OneOf
  verifiers:
    - name: x
      cosign:
        keys:
          - pem: "not a key"
  cache:
    positiveTTLSeconds: -1
  bogus: 1
`,
    );
    const r = await runCli(cli, ["policy", "validate", f]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("ok       ");
    expect(r.stdout).toMatch(/invalid {2}.*bad\.yaml:\d+ \(ImagePolicy bad\)/);
    for (const p of [
      "spec.mode: must be one of Enforce, Audit",
      "spec.match: must be one of AnyOf, AllOf",
      "spec.verifiers[0].cosign.keys[0].pem:",
      "spec.cache.positiveTTLSeconds: must be an integer",
      "spec.bogus: unknown field",
    ])
      expect(r.stdout).toContain(p);
    expect(r.stdout).toContain("1 of 2 document(s) invalid");
  });

  it("--output json lists every document with its errors", async () => {
    const f = write(
      "bad2.yaml",
      "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: x}\nspec: {}\n",
    );
    const r = await runCli(cli, ["policy", "validate", "--output=json", f]);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout) as {
      valid: boolean;
      documents: Array<{ valid: boolean; errors: Array<{ path: string }> }>;
    };
    expect(j.valid).toBe(false);
    expect(j.documents[0]!.errors.map((e) => e.path)).toContain("spec.verifiers");
  });

  it("a secretRef is compiled against a Secret in the given files, and reported when its key is wrong", async () => {
    const policy = `apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: refs}
spec:
  verifiers:
    - name: k
      cosign:
        keys:
          - secretRef: {name: keys, namespace: tollgate-system, key: cosign.pub}
`;
    const secret = (key: string) => `apiVersion: v1
kind: Secret
metadata: {name: keys, namespace: tollgate-system}
stringData:
  ${key}: |
${indent(pem, 4)}
`;
    const p = write("refs.yaml", policy);
    const ok = await runCli(cli, ["policy", "validate", p, write("secret.yaml", secret("cosign.pub"))]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain("(ImagePolicy refs) (compiled)");
    const wrong = await runCli(cli, ["policy", "validate", p, write("secret2.yaml", secret("other.pub"))]);
    expect(wrong.code).toBe(1);
    expect(wrong.stdout).toContain(
      'spec.verifiers[0].cosign.keys[0].secretRef: Secret tollgate-system/keys key "cosign.pub" cannot be read',
    );
    // Without the Secret: structure checked, trust material not (said so), still valid.
    const alone = await runCli(cli, ["policy", "validate", p]);
    expect(alone.code).toBe(0);
    expect(alone.stdout).toContain(
      "note: structure only: Secret tollgate-system/keys not among the given files",
    );
  });

  it("YAML syntax errors and foreign kinds are invalid (exit 1)", async () => {
    const a = await runCli(cli, [
      "policy",
      "validate",
      write("syntax.yaml", "kind: ImagePolicy\nspec: [unclosed\n"),
    ]);
    expect(a.code).toBe(1);
    expect(a.stdout).toMatch(/\(yaml\): .*line \d+/);
    const b = await runCli(cli, [
      "policy",
      "validate",
      write("deploy.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n"),
    ]);
    expect(b.code).toBe(1);
    expect(b.stdout).toContain("kind: must be ImagePolicy");
    const c = await runCli(cli, ["policy", "validate", write("empty.yaml", "# nothing\n")]);
    expect(c.code).toBe(1);
    expect(c.stdout).toContain("holds no documents");
  });

  it("missing file, directory, no file → exit 2", async () => {
    const a = await runCli(cli, ["policy", "validate", path.join(dir, "nope.yaml")]);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain("nope.yaml: no such file");
    const b = await runCli(cli, ["policy", "validate", dir]);
    expect(b.code).toBe(2);
    expect(b.stderr).toContain("is a directory");
    const c = await runCli(cli, ["policy", "validate"]);
    expect(c.code).toBe(2);
    expect(c.stderr).toContain("missing FILE");
  });
});
