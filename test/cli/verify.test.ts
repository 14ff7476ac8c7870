// `tollgate verify` against the real loopback docker-registry: an image signed with the real
// cosign CLI and an unsigned one, with a policy file, and with a namespace selected through
// the file policy source of an agent configuration.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Verdict } from "../../src/engine/types.js";
import { type PushedImage, pushBusyboxImage } from "../support/images.js";
import { freePort } from "../support/procs.js";
import { type LocalRegistry, startRegistry } from "../support/registry.js";
import { type CosignKeys, cosignGenerateKeyPair, cosignSign } from "../support/signing.js";
import { buildCli, runCli } from "./helpers.js";

let cli: string;
let reg: LocalRegistry;
let keys: CosignKeys;
let signed: PushedImage;
let unsigned: PushedImage;
let dir: string;
let policyFile: string;

const indent = (s: string, n: number) =>
  s
    .trim()
    .split("\n")
    .map((l) => " ".repeat(n) + l)
    .join("\n");

function policyYaml(name: string, extra = ""): string {
  return `apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: ${name}
spec:
  images: ["127.0.0.1:*/**"]
${extra}  verifiers:
    - name: release-key
      cosign:
        keys:
          - pem: |
${indent(keys.publicKeyPem, 14)}
`;
}

beforeAll(async () => {
  cli = await buildCli();
  dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-verify-"));
  reg = await startRegistry();
  keys = await cosignGenerateKeyPair();
  signed = pushBusyboxImage(reg.host, "cli/app", "signed", { marker: "signed" });
  unsigned = pushBusyboxImage(reg.host, "cli/app", "unsigned", { marker: "unsigned" });
  await cosignSign({ ref: signed.pinned, keyDir: keys });
  policyFile = path.join(dir, "policy.yaml");
  writeFileSync(policyFile, policyYaml("release"));
}, 180_000);

afterAll(async () => {
  await reg?.stop();
});

describe("tollgate verify --policy FILE", () => {
  it("a cosign-signed image → verified, exit 0, table report with the signature row", async () => {
    const r = await runCli(cli, ["verify", signed.ref, "--policy", policyFile]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Answer: +ALLOWED$/m);
    expect(r.stdout).toMatch(/^Outcome: +verified$/m);
    expect(r.stdout).toMatch(/^Policy: +release \(rev sha256:[0-9a-f]{64}\), mode Enforce$/m);
    expect(r.stdout).toContain(`Digest:    ${signed.digest}`);
    expect(r.stdout).toMatch(/VERIFIER\s+KIND\s+ARTIFACT\s+RESULT\s+SIGNER\s+REASON/);
    expect(r.stdout).toMatch(/release-key\s+cosign\s+sha256:[0-9a-f]{12}…\s+passed/);
    // Progress goes to stderr, never into the report.
    expect(r.stderr).toContain(`resolving ${signed.ref}`);
    expect(r.stderr).toContain("verifying");
  });

  it("an unsigned image → rejected, exit 1, with the reason", async () => {
    const r = await runCli(cli, ["verify", unsigned.ref, "--policy", policyFile, "--quiet"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^Answer: +DENIED$/m);
    expect(r.stdout).toMatch(/^Outcome: +rejected$/m);
    expect(r.stdout).toContain("ImagePolicy release denies");
    expect(r.stdout).toMatch(/release-key\s+cosign\s+-\s+failed\s+-\s+no cosign signature found/);
  });

  it("--output json prints the Verdict; --digest skips the registry lookup", async () => {
    const r = await runCli(cli, [
      "verify",
      `${signed.repo}:whatever`,
      "--digest",
      signed.digest,
      "--policy",
      policyFile,
      "--output",
      "json",
    ]);
    expect(r.code).toBe(0);
    const v = JSON.parse(r.stdout) as Verdict;
    expect(v).toMatchObject({
      allowed: true,
      outcome: "verified",
      mode: "Enforce",
      policy: { name: "release" },
      subject: { reference: `${signed.repo}:whatever`, digest: signed.digest },
      cached: false,
    });
    expect(v.verifiers[0]).toMatchObject({ verifier: "release-key", kind: "cosign", result: "passed" });
    expect(r.stderr).not.toContain("resolving");
  });

  it("-o json and a policy on standard input (--policy -) work as their long forms", async () => {
    const r = await runCli(
      cli,
      ["verify", `${signed.repo}:whatever`, "--digest", signed.digest, "--policy", "-", "-o", "json"],
      { input: readFileSync(policyFile, "utf8") },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ allowed: true, policy: { name: "release" } });
  });

  it("Audit mode: a would-be denial is allowed (exit 0) and says so", async () => {
    const f = path.join(dir, "audit.yaml");
    writeFileSync(f, policyYaml("watch", "  mode: Audit\n"));
    const r = await runCli(cli, ["verify", unsigned.ref, "--policy", f, "--output=json"]);
    expect(r.code).toBe(0);
    const v = JSON.parse(r.stdout) as Verdict;
    expect(v).toMatchObject({ allowed: true, auditOnly: true, outcome: "rejected", mode: "Audit" });
  });

  it("registry unreachable → could not complete, exit 3 (failure policy in the report)", async () => {
    const port = await freePort();
    const r = await runCli(cli, [
      "verify",
      `127.0.0.1:${port}/cli/app:signed`,
      "--policy",
      policyFile,
      "--timeout",
      "10",
    ]);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/^Outcome: +failed$/m);
    expect(r.stdout).toMatch(/^Answer: +DENIED$/m);
    expect(r.stdout).toContain("failurePolicy Closed: denied because verification could not complete");
  });

  it("a policy file holding several policies needs --policy-name", async () => {
    const f = path.join(dir, "two.yaml");
    writeFileSync(f, `${policyYaml("one")}---\n${policyYaml("two")}`);
    const a = await runCli(cli, ["verify", signed.ref, "--policy", f]);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain("holds 2 ImagePolicies (one, two); choose one with --policy-name");
    const b = await runCli(cli, ["verify", signed.ref, "--policy", f, "--policy-name", "two", "--quiet"]);
    expect(b.code).toBe(0);
    expect(b.stdout).toMatch(/^Policy: +two /m);
  });

  it("bad inputs → exit 2 with a clear error", async () => {
    const bad = path.join(dir, "bad.yaml");
    writeFileSync(
      bad,
      "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: b}\nspec: {mode: Loud}\n",
    );
    const cases: Array<[string[], string]> = [
      [["verify", signed.ref, "--policy", bad], "spec.mode: must be one of Enforce, Audit"],
      [["verify", signed.ref, "--policy", path.join(dir, "missing.yaml")], "missing.yaml: no such file"],
      [["verify", "UPPER/Case::bad", "--policy", policyFile], "invalid image reference"],
      [["verify", signed.ref, "--policy", policyFile, "--digest", "sha256:abc"], "--digest must be"],
      [["verify", signed.ref], "say which policy"],
      [["verify", signed.ref, "--policy", policyFile, "--namespace", "a"], "cannot be combined"],
      [["verify", signed.ref, "--policy", policyFile, "--timeout", "soon"], "--timeout must be"],
      [["verify", signed.ref, "--config", path.join(dir, "nope.yaml")], "nope.yaml"],
    ];
    for (const [args, msg] of cases) {
      const r = await runCli(cli, args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr, args.join(" ")).toContain(msg);
      expect(r.stdout, args.join(" ")).toBe("");
    }
  });
});

describe("tollgate verify --namespace NS --config agent.yaml", () => {
  let agentConfig: string;
  beforeAll(() => {
    const policies = path.join(dir, "policies");
    mkdirSync(policies);
    writeFileSync(path.join(policies, "release.yaml"), policyYaml("release"));
    writeFileSync(path.join(policies, "watch.yaml"), policyYaml("watch", "  mode: Audit\n"));
    writeFileSync(
      path.join(policies, "by-namespace.yaml"),
      `${policyYaml("by-namespace")}  conditions:\n    - expression: request.namespace == "team-ns"\n      message: runs only in team-ns\n`,
    );
    const until = new Date(Date.now() + 3600_000).toISOString();
    writeFileSync(
      path.join(policies, "namespaces.yaml"),
      [
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-audit\n  annotations:\n    tollgate.dev/policy: watch\n",
        `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-bg\n  annotations:\n    tollgate.dev/break-glass: "${until}"\n    tollgate.dev/break-glass-reason: incident 42\n`,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-lost\n  annotations:\n    tollgate.dev/policy: does-not-exist\n",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-ns\n  annotations:\n    tollgate.dev/policy: by-namespace\n",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-other\n  annotations:\n    tollgate.dev/policy: by-namespace\n",
      ].join("---\n"),
    );
    agentConfig = path.join(dir, "agent.yaml");
    writeFileSync(
      agentConfig,
      `policy:\n  source: files\n  dir: ${policies}\n  defaultPolicy: release\n  exemptNamespaces: [kube-system]\n  exemptImages: ["${unsigned.repo}:exempt-*"]\nregistry:\n  certsDir: ${path.join(dir, "certs.d")}\nmetrics:\n  listen: ""\n`,
    );
  });

  const run = (args: string[]) =>
    runCli(cli, ["verify", ...args, "--config", agentConfig, "--output", "json", "--quiet"]);

  it("no annotation → the default policy decides", async () => {
    const a = await run([signed.ref, "--namespace", "team-a"]);
    expect(a.code).toBe(0);
    expect((JSON.parse(a.stdout) as Verdict).policy.name).toBe("release");
    const b = await run([unsigned.ref, "--namespace", "team-a"]);
    expect(b.code).toBe(1);
    // Without --namespace: the default policy (what the pull verifier asks in default-policy mode).
    const c = await run([unsigned.ref]);
    expect(c.code).toBe(1);
  });

  it("--namespace is also CEL's request.namespace", async () => {
    const ok = await run([signed.ref, "--namespace", "team-ns"]);
    expect(ok.code).toBe(0);
    expect((JSON.parse(ok.stdout) as Verdict).policy.name).toBe("by-namespace");
    const no = await run([signed.ref, "--namespace", "team-other"]);
    expect(no.code).toBe(1);
    const v = JSON.parse(no.stdout) as Verdict;
    expect(v).toMatchObject({ allowed: false, namespaceDependent: true });
    expect(v.reasons[0]).toContain('spec.conditions[0]: condition "runs only in team-ns" is false');
  });

  it("the namespace annotation selects the policy (Audit here)", async () => {
    const r = await run([unsigned.ref, "--namespace", "team-audit"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout) as Verdict).toMatchObject({ policy: { name: "watch" }, auditOnly: true });
  });

  it("a live break-glass allows a would-be denial and says so", async () => {
    const r = await run([unsigned.ref, "--namespace", "team-bg"]);
    expect(r.code).toBe(0);
    const v = JSON.parse(r.stdout) as Verdict;
    expect(v).toMatchObject({ allowed: true, auditOnly: true, outcome: "rejected" });
    expect(v.reasons.at(-1)).toMatch(/^break-glass on namespace "team-bg" until .* \(incident 42\)/);
  });

  it("exempt namespace and exempt image pattern → exempt, exit 0", async () => {
    const a = await run([unsigned.ref, "--namespace", "kube-system"]);
    expect(a.code).toBe(0);
    expect(JSON.parse(a.stdout)).toMatchObject({ outcome: "exempt", allowed: true });
    const b = await run([`${unsigned.repo}:exempt-1`, "--namespace", "team-a", "--digest", unsigned.digest]);
    expect(b.code).toBe(0);
    expect(JSON.parse(b.stdout)).toMatchObject({
      outcome: "exempt",
      reasons: [expect.stringContaining("exempt pattern")],
    });
  });

  it("a namespace naming a missing policy fails closed: exit 3, denied", async () => {
    const r = await run([signed.ref, "--namespace", "team-lost"]);
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout)).toMatchObject({ allowed: false, outcome: "failed" });
    expect(r.stdout).toContain("does-not-exist");
  });
});
