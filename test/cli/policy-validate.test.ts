// `tollgate policy validate`: the engine's validator with paths, trust material compiled when
// the referenced objects are in the given files, exit codes 0 / 1 / 2.
import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "../support/tools.js";
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

  it("YAML syntax errors, objects without apiVersion/kind, our group's other kinds, near-miss kinds are invalid (exit 1)", async () => {
    const a = await runCli(cli, [
      "policy",
      "validate",
      write("syntax.yaml", "kind: ImagePolicy\nspec: [unclosed\n"),
    ]);
    expect(a.code).toBe(1);
    expect(a.stdout).toMatch(/\(yaml\): .*line \d+/);
    for (const [file, text, msg] of [
      ["nokind.yaml", "apiVersion: v1\nmetadata: {name: x}\n", "kind: must be ImagePolicy"],
      ["noapi.yaml", "kind: Deployment\nmetadata: {name: x}\n", "apiVersion: required"],
      [
        "ours.yaml",
        "apiVersion: tollgate.dev/v1alpha1\nkind: PolicySet\nmetadata: {name: x}\n",
        "kind: must be ImagePolicy",
      ],
      [
        "typo.yaml",
        "apiVersion: example.com/v1\nkind: ImagePolcy\nmetadata: {name: x}\n",
        "did you mean ImagePolicy?",
      ],
    ] as const) {
      const r = await runCli(cli, ["policy", "validate", write(file, text)]);
      expect(r.code, file).toBe(1);
      expect(r.stdout, file).toContain(msg);
    }
    const c = await runCli(cli, ["policy", "validate", write("empty.yaml", "# nothing\n")]);
    expect(c.code).toBe(1);
    expect(c.stdout).toContain("holds no documents");
  });

  it("other Kubernetes objects (kustomization.yaml, a Deployment) are skipped with a note, not failed", async () => {
    const kust = write(
      "kustomization.yaml",
      "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [good.yaml]\n",
    );
    const good = write("good.yaml", goodPolicy);
    const mixed = write(
      "mixed.yaml",
      `${goodPolicy.replace("name: good", "name: good-two")}---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n`,
    );
    const r = await runCli(cli, ["policy", "validate", kust, good, mixed]);
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toContain("skipped  ");
    expect(r.stdout).toContain("not a policy document (Kustomization): skipped");
    expect(r.stdout).toContain("not a policy document (Deployment): skipped");
    expect(r.stdout).toContain("2 document(s) valid, 2 skipped");
    const j = JSON.parse((await runCli(cli, ["policy", "validate", "-o", "json", kust, good])).stdout);
    expect(j.valid).toBe(true);
    expect(j.documents).toContainEqual(
      expect.objectContaining({ kind: "Kustomization", skipped: true, valid: true }),
    );
    // A file holding only skipped documents still passes; an invalid policy next to them fails.
    const bad = write("bad-next-to-kust.yaml", goodPolicy.replace("verifiers:", "verifierz:"));
    expect((await runCli(cli, ["policy", "validate", kust, bad])).code).toBe(1);
  });

  it("the shipped examples pass as a shell glob and as a directory", async () => {
    const examples = path.join(repoRoot, "deploy", "examples");
    const files = readdirSync(examples)
      .filter((f) => f.endsWith(".yaml"))
      .map((f) => path.join(examples, f));
    expect(files.some((f) => f.endsWith("kustomization.yaml"))).toBe(true);
    const glob = await runCli(cli, ["policy", "validate", ...files]);
    expect(glob.code, glob.stdout).toBe(0);
    expect(glob.stdout).toContain("(compiled)");
    const asDir = await runCli(cli, ["policy", "validate", examples]);
    expect(asDir.code, asDir.stdout).toBe(0);
    expect(asDir.stdout).toBe(glob.stdout);
  });

  it("- reads standard input; kind: List (kubectl get -o yaml) counts as its items", async () => {
    const stdin = await runCli(cli, ["policy", "validate", "-"], { input: goodPolicy });
    expect(stdin.code, stdin.stdout).toBe(0);
    expect(stdin.stdout).toContain("ok       (stdin):1 (ImagePolicy good) (compiled)");
    // What `kubectl get imagepolicies -o yaml` prints: a v1 List with server fields and status.
    const asListed = (name: string, extra = "") =>
      indent(
        `${goodPolicy.replace("name: good", `name: ${name}\n  resourceVersion: "123"\n  uid: 0b7c\n  generation: 2`)}${extra}status:\n  revision: abc\n`,
        2,
      ).replace(/^ {2}/, "- ");
    const list = `apiVersion: v1\nkind: List\nmetadata:\n  resourceVersion: ""\nitems:\n${asListed("one")}\n${asListed("two")}\n`;
    const r = await runCli(cli, ["policy", "validate", "-o", "json", "-"], { input: list });
    expect(r.code, r.stdout).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(
      j.documents.map((d: { name: string; item: number; file: string }) => [d.file, d.item, d.name]),
    ).toEqual([
      ["(stdin)", 0, "one"],
      ["(stdin)", 1, "two"],
    ]);
    // An invalid item is reported with its position in the List.
    const badList = list.replace("verifiers:", "verifierz:");
    const b = await runCli(cli, ["policy", "validate", "-"], { input: badList });
    expect(b.code).toBe(1);
    expect(b.stdout).toMatch(/invalid {2}\(stdin\):1 \(List item 1: ImagePolicy one\)/);
    // The API server's typed list (ImagePolicyList) too.
    const typed = list
      .replace("kind: List", "kind: ImagePolicyList")
      .replace("apiVersion: v1", "apiVersion: tollgate.dev/v1alpha1");
    expect((await runCli(cli, ["policy", "validate", "-"], { input: typed })).code).toBe(0);
    // Standard input named twice is a usage error.
    expect((await runCli(cli, ["policy", "validate", "-", "-"], { input: goodPolicy })).code).toBe(2);
  });

  it("missing file, unreadable directory entries, no file → exit 2 / notes", async () => {
    const a = await runCli(cli, ["policy", "validate", path.join(dir, "nope.yaml")]);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain("nope.yaml: no such file");
    const sub = path.join(dir, "sub");
    mkdirSync(path.join(sub, "nested"), { recursive: true });
    writeFileSync(path.join(sub, "README.md"), "# not a policy\n");
    writeFileSync(path.join(sub, "p.yaml"), goodPolicy);
    const b = await runCli(cli, ["policy", "validate", sub]);
    expect(b.code, b.stdout).toBe(0);
    expect(b.stdout).toContain("README.md: skipped (not a YAML or JSON file)");
    expect(b.stdout).toContain("nested: skipped (not a regular file)");
    const c = await runCli(cli, ["policy", "validate"]);
    expect(c.code).toBe(2);
    expect(c.stderr).toContain("missing FILE");
  });
});
