// Rego through the real @open-policy-agent/opa-wasm SDK with a real WebAssembly module.
//
// No OPA compiler can be installed on these machines, so the module is hand-written
// WebAssembly text (test/fixtures/rego/signer.wat) that implements the OPA wasm ABI 1.2
// (opa_eval fast path plus the eval-context exports, opa_malloc, opa_json_parse/dump,
// builtins, entrypoints, heap pointer get/set, env.memory import). It evaluates
// test/fixtures/rego/signer.rego: allow iff some verifier passed with a signer containing
// data.requiredSigner. It is assembled here, at test time, with wabt's wat2wasm.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import {
  compilePolicy,
  interpretRegoResult,
  loadRego,
  PolicyValidationError,
  type RegoInput,
} from "../../../src/engine/policy/index.js";
import type { SignatureCheck } from "../../../src/engine/types.js";
import { createEngineCore } from "../../../src/engine/verify.js";
import { fakeDeps, pass, subject } from "./engine-fakes.js";
import { ecKeyPair, mapResolver } from "./material.js";

const fixture = path.resolve(import.meta.dirname, "../../fixtures/rego/signer.wat");
let wasm: Buffer;

beforeAll(() => {
  const out = path.join(mkdtempSync(path.join(os.tmpdir(), "tollgate-rego-")), "signer.wasm");
  // wat2wasm comes from Debian's wabt (scripts/install-deps.sh installs it).
  execFileSync("wat2wasm", [fixture, "-o", out], { stdio: "pipe" });
  wasm = readFileSync(out);
  expect(wasm.subarray(0, 4).toString("latin1")).toBe("\0asm");
});

function report(checks: Partial<SignatureCheck>[]): RegoInput {
  return {
    subject: { reference: "127.0.0.1:5000/team/app:v1", digest: `sha256:${"a".repeat(64)}` },
    policy: { name: "team", revision: "sha256:x", mode: "Enforce", match: "AnyOf" },
    verifiers: checks.map((c) => ({ verifier: "v", kind: "notation", result: "failed", reason: "r", ...c })),
    match: { allowed: true, reason: "verified" },
  };
}

const key = ecKeyPair();

function doc(rego: Record<string, unknown>) {
  return {
    apiVersion: "tollgate.dev/v1alpha1",
    kind: "ImagePolicy",
    metadata: { name: "team" },
    spec: {
      images: ["127.0.0.1:5000/team/**"],
      verifiers: [{ name: "cosign-key", cosign: { keys: [{ pem: key.publicPem }] } }],
      rego,
    },
  };
}

describe("Rego via opa-wasm", () => {
  it("loads the module and decides from the verification report", async () => {
    const rego = await loadRego(wasm, "tollgate/allow", { requiredSigner: "CN=release" });
    expect(rego.entrypoints.sort()).toEqual(["tollgate/allow", "tollgate/decision"]);
    // Allowed: a passed check whose signer contains the required name (escapes in other fields are fine).
    const ok = report([
      { result: "failed", signer: "CN=release", reason: 'bad "quoted" \\ reason' },
      { result: "passed", signer: "CN=release,O=Tollgate", details: { n: -1.5e3, list: [true, null, {}] } },
    ]);
    expect(rego.evaluate(ok)).toEqual({ allow: true, reasons: ["rego tollgate/allow allowed"] });
    // Denied: the matching signer failed, the passing one is someone else.
    const bad = report([
      { result: "failed", signer: "CN=release" },
      { result: "passed", signer: "CN=intruder" },
    ]);
    expect(rego.evaluate(bad).allow).toBe(false);
    expect(rego.evaluate(report([])).allow).toBe(false);
  });

  it("returns {allow, reasons} from an object-valued entrypoint", async () => {
    const rego = await loadRego(wasm, "tollgate/decision", { requiredSigner: "CN=release" });
    expect(rego.evaluate(report([{ result: "passed", signer: "CN=release" }]))).toEqual({
      allow: true,
      reasons: ["a verifier passed with a signer matching data.requiredSigner"],
    });
    expect(rego.evaluate(report([{ result: "passed", signer: "CN=other" }]))).toEqual({
      allow: false,
      reasons: ["no verifier passed with a signer matching data.requiredSigner"],
    });
  });

  it("data decides: without data.requiredSigner nothing matches", async () => {
    const rego = await loadRego(wasm, "tollgate/allow");
    expect(rego.evaluate(report([{ result: "passed", signer: "CN=release" }])).allow).toBe(false);
  });

  it("interprets result sets: undefined denies, junk is an error", () => {
    expect(interpretRegoResult("e", [])).toEqual({
      allow: false,
      reasons: ["rego e is undefined for this input"],
    });
    expect(() => interpretRegoResult("e", [{ result: "yes" }])).toThrow(/expected a boolean/);
    expect(() => interpretRegoResult("e", [{ result: true }, { result: false }])).toThrow(/2 results/);
  });

  it("compilePolicy loads inline base64 and ConfigMap binary modules; the module is part of the revision", async () => {
    const inline = await compilePolicy(
      doc({
        module: wasm.toString("base64"),
        entrypoint: "tollgate/allow",
        data: { requiredSigner: "CN=release" },
      }),
    );
    const resolver = mapResolver({ "ConfigMap/tollgate/rego/policy.wasm": new Uint8Array(wasm) });
    const ref = await compilePolicy(
      doc({
        module: { configMapRef: { name: "rego", namespace: "tollgate", key: "policy.wasm" } },
        entrypoint: "tollgate/allow",
        data: { requiredSigner: "CN=release" },
      }),
      { resolver },
    );
    expect(ref.revision).toBe(inline.revision);
    const otherData = await compilePolicy(
      doc({
        module: wasm.toString("base64"),
        entrypoint: "tollgate/allow",
        data: { requiredSigner: "CN=x" },
      }),
    );
    expect(otherData.revision).not.toBe(inline.revision);
    const patched = Buffer.from(wasm);
    // Change one byte of a data-segment string (a reason text): still a valid module, new revision.
    const at = patched.indexOf("no verifier passed");
    patched[at] = "N".charCodeAt(0);
    const changed = await compilePolicy(
      doc({ module: patched.toString("base64"), entrypoint: "tollgate/allow" }),
    );
    const plain = await compilePolicy(doc({ module: wasm.toString("base64"), entrypoint: "tollgate/allow" }));
    expect(changed.revision).not.toBe(plain.revision);
  });

  it("rejects a module without the entrypoint, and bytes that are not a module, at their paths", async () => {
    const e1 = (await compilePolicy(
      doc({ module: wasm.toString("base64"), entrypoint: "tollgate/nope" }),
    ).catch((e) => e)) as PolicyValidationError;
    expect(e1).toBeInstanceOf(PolicyValidationError);
    expect(e1.issues[0]).toMatchObject({
      path: "spec.rego.entrypoint",
      message: expect.stringMatching(/tollgate\/allow/),
    });
    const truncated = wasm.subarray(0, 100).toString("base64");
    const e2 = (await compilePolicy(doc({ module: truncated, entrypoint: "tollgate/allow" })).catch(
      (e) => e,
    )) as PolicyValidationError;
    expect(e2.issues[0]).toMatchObject({
      path: "spec.rego.module",
      message: expect.stringMatching(/not a loadable/),
    });
  });

  it("gates the engine's verdict after the signature verifiers", async () => {
    const p = await compilePolicy(
      doc({
        module: wasm.toString("base64"),
        entrypoint: "tollgate/decision",
        data: { requiredSigner: "CN=release" },
      }),
    );
    const good = fakeDeps({ cosign: pass("cosign-key", "cosign", "CN=release,O=Tollgate") });
    const v1 = await createEngineCore(good.deps).verify(subject(1), p);
    expect(v1).toMatchObject({ allowed: true, outcome: "verified" });
    expect(v1.reasons).toContain("a verifier passed with a signer matching data.requiredSigner");

    const wrongSigner = fakeDeps({ cosign: pass("cosign-key", "cosign", "CN=someone-else") });
    const v2 = await createEngineCore(wrongSigner.deps).verify(subject(1), p);
    expect(v2).toMatchObject({ allowed: false, outcome: "rejected" });
    expect(v2.reasons[0]).toBe(
      `ImagePolicy team denies 127.0.0.1:5000/team/app:v1@${subject(1).digest}: no verifier passed with a signer matching data.requiredSigner`,
    );
  });
});
