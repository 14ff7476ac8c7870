import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FilePolicySource } from "../../src/policy-source/files.js";
import type { SourceLogger } from "../../src/policy-source/types.js";
import { waitFor } from "../support/procs.js";
import { configMapDoc, namespaceDoc, newPublicKeyPem, policyDoc, writeDocs, writeRaw } from "./fixtures.js";

const config = { defaultPolicy: "baseline", exemptNamespaces: ["kube-system"] };

function capturingLogger() {
  const warnings: { obj: object; msg?: string }[] = [];
  const logger: SourceLogger = {
    info() {},
    warn(obj, msg) {
      warnings.push({ obj, msg });
    },
    error(obj, msg) {
      warnings.push({ obj, msg });
    },
  };
  return { logger, warnings };
}

describe("FilePolicySource", () => {
  let dir: string;
  let source: FilePolicySource | undefined;
  const keyA = newPublicKeyPem();
  const keyA2 = newPublicKeyPem();
  const keyBase = newPublicKeyPem();

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-policies-"));
    writeDocs(dir, "policies.yaml", [
      policyDoc("strict", {
        key: { configMap: { namespace: "tollgate-system", name: "trust-a", key: "cosign.pub" } },
      }),
      policyDoc("baseline", { key: keyBase }),
    ]);
    writeDocs(dir, "trust.yaml", [configMapDoc("tollgate-system", "trust-a", { "cosign.pub": keyA })]);
    writeDocs(dir, "namespaces.yaml", [namespaceDoc("team-a", { "tollgate.dev/policy": "strict" })]);
  });

  afterEach(async () => {
    await source?.stop();
    source = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  const revisionOf = (s: FilePolicySource, name: string) =>
    s.policies().find((p) => p.name === name)?.revision;

  it("loads policies, namespaces and trust material; selects by annotation and default", async () => {
    source = new FilePolicySource({ dir, config, rescanIntervalMs: 0 });
    await source.start();
    const st = source.status();
    expect(st).toMatchObject({ source: "files", ready: true, defaultPolicy: "baseline", rejected: [] });
    expect(st.policies.map((p) => p.name)).toEqual(["baseline", "strict"]);
    const a = source.select("team-a");
    expect(a.kind === "policy" && a.policy.name).toBe("strict");
    expect(a.kind === "policy" && a.policy.verifiers[0]?.kind).toBe("cosign");
    const b = source.select("team-b");
    expect(b.kind === "policy" && b.policy.name).toBe("baseline");
    expect(source.select("kube-system").kind).toBe("exempt");
    expect(source.defaultPolicy()?.name).toBe("baseline");
  });

  it("counts as in use only the default and the policies a non-exempt namespace names", async () => {
    writeDocs(dir, "namespaces.yaml", [
      namespaceDoc("team-a", { "tollgate.dev/policy": "strict" }),
      namespaceDoc("kube-system", { "tollgate.dev/policy": "lax" }),
    ]);
    writeDocs(dir, "extra.yaml", [policyDoc("lax", { key: keyA2, mode: "Audit" })]);
    source = new FilePolicySource({ dir, config, rescanIntervalMs: 0 });
    await source.start();
    expect(
      source
        .policies()
        .map((p) => p.name)
        .sort(),
    ).toEqual(["baseline", "lax", "strict"]);
    // "lax" is loaded but only an exempt namespace names it: it must not decide pulls.
    expect(
      source
        .policiesInUse()
        .map((p) => p.name)
        .sort(),
    ).toEqual(["baseline", "strict"]);
  });

  it("lists the known namespaces each policy decides for (pull-time request.namespace conditions)", async () => {
    writeDocs(dir, "namespaces.yaml", [
      namespaceDoc("team-b", { "tollgate.dev/policy": "strict" }),
      namespaceDoc("team-a", { "tollgate.dev/policy": "strict" }),
      namespaceDoc("plain", {}),
      namespaceDoc("kube-system", { "tollgate.dev/policy": "strict" }),
      namespaceDoc("broken", { "tollgate.dev/policy": "missing" }),
    ]);
    source = new FilePolicySource({ dir, config, rescanIntervalMs: 0 });
    await source.start();
    const byName = (n: string) => source!.policies().find((p) => p.name === n)!;
    // Sorted; exempt namespaces and namespaces whose selection fails decide nothing.
    expect(source.namespacesUsing(byName("strict"))).toEqual(["team-a", "team-b"]);
    expect(source.namespacesUsing(byName("baseline"))).toEqual(["plain"]);
    // Another revision of a policy is not the one in use.
    expect(source.namespacesUsing({ name: "strict", revision: "other" })).toEqual([]);
  });

  it("hot-reloads a policy edit (new revision, no restart) via fs.watch", async () => {
    source = new FilePolicySource({ dir, config, rescanIntervalMs: 0, debounceMs: 50 });
    await source.start();
    const before = revisionOf(source, "strict");
    let changes = 0;
    source.onChange(() => changes++);
    writeDocs(dir, "policies.yaml", [
      policyDoc("strict", {
        mode: "Audit",
        key: { configMap: { namespace: "tollgate-system", name: "trust-a", key: "cosign.pub" } },
      }),
      policyDoc("baseline", { key: keyBase }),
    ]);
    const s = source;
    await waitFor("strict revision to change", () => revisionOf(s, "strict") !== before);
    const sel = source.select("team-a");
    expect(sel.kind === "policy" && sel.policy.mode).toBe("Audit");
    expect(changes).toBeGreaterThan(0);
    expect(source.status().rejected).toEqual([]);
  });

  it("a trust material change alone changes the revision of the policy that references it", async () => {
    source = new FilePolicySource({ dir, config, rescanIntervalMs: 200, debounceMs: 50 });
    await source.start();
    const strictBefore = revisionOf(source, "strict");
    const baselineBefore = revisionOf(source, "baseline");
    writeDocs(dir, "trust.yaml", [configMapDoc("tollgate-system", "trust-a", { "cosign.pub": keyA2 })]);
    const s = source;
    await waitFor("strict revision to change", () => revisionOf(s, "strict") !== strictBefore);
    expect(revisionOf(source, "baseline")).toBe(baselineBefore);
  });

  it("an invalid policy edit is rejected: last good revision stays, status and log say why", async () => {
    const { logger, warnings } = capturingLogger();
    source = new FilePolicySource({ dir, config, logger, rescanIntervalMs: 200, debounceMs: 50 });
    await source.start();
    const good = revisionOf(source, "strict");
    writeDocs(dir, "policies.yaml", [
      policyDoc("strict", {
        key: { configMap: { namespace: "tollgate-system", name: "trust-a", key: "cosign.pub" } },
        extraSpec: { match: "Sometimes" },
      }),
      policyDoc("baseline", { key: keyBase }),
    ]);
    const s = source;
    await waitFor("rejection in status", () => s.status().rejected.length > 0);
    const st = source.status();
    expect(st.rejected[0]).toMatchObject({ policy: "strict", keptRevision: good });
    expect(st.rejected[0]?.reason).toMatch(/spec\.match/);
    expect(st.policies.find((p) => p.name === "strict")?.rejectedUpdate?.reason).toMatch(/spec\.match/);
    expect(revisionOf(source, "strict")).toBe(good);
    const sel = source.select("team-a");
    expect(sel.kind === "policy" && sel.policy.revision).toBe(good);
    expect(warnings.some((w) => (w.obj as { policy?: string }).policy === "strict")).toBe(true);

    // A broken reference (missing ConfigMap key) is rejected the same way.
    writeDocs(dir, "policies.yaml", [
      policyDoc("strict", {
        key: { configMap: { namespace: "tollgate-system", name: "trust-a", key: "nope" } },
      }),
      policyDoc("baseline", { key: keyBase }),
    ]);
    await waitFor("second rejection", () => s.status().rejected.length > 1);
    expect(source.status().rejected[0]?.reason).toMatch(/nope/);
    expect(revisionOf(source, "strict")).toBe(good);

    // Fixing it clears the marker and loads a new revision.
    writeDocs(dir, "policies.yaml", [
      policyDoc("strict", { mode: "Audit", key: keyA }),
      policyDoc("baseline", { key: keyBase }),
    ]);
    await waitFor("fixed policy", () => revisionOf(s, "strict") !== good);
    expect(source.status().policies.find((p) => p.name === "strict")?.rejectedUpdate).toBeUndefined();
  });

  it("a file that does not parse is rejected whole and its last good objects stay", async () => {
    source = new FilePolicySource({ dir, config, rescanIntervalMs: 200, debounceMs: 50 });
    await source.start();
    const good = revisionOf(source, "strict");
    writeRaw(
      dir,
      "policies.yaml",
      "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: strict\n",
    );
    writeRaw(dir, "namespaces.yaml", "- just\n- a list\n");
    const s = source;
    await waitFor("file rejections", () => s.status().rejected.length >= 3);
    const origins = source.status().rejected.map((r) => path.basename(r.origin));
    expect(origins).toContain("policies.yaml");
    expect(origins).toContain("namespaces.yaml");
    expect(revisionOf(source, "strict")).toBe(good);
    expect(revisionOf(source, "baseline")).toBeDefined();
    const sel = source.select("team-a");
    expect(sel.kind === "policy" && sel.policy.name).toBe("strict");
  });

  it("removing the namespace annotation falls back to the default", async () => {
    source = new FilePolicySource({ dir, config, rescanIntervalMs: 200, debounceMs: 50 });
    await source.start();
    expect(
      source.select("team-a").kind === "policy" &&
        (source.select("team-a") as { policy: { name: string } }).policy.name,
    ).toBe("strict");
    writeDocs(dir, "namespaces.yaml", [namespaceDoc("team-a", {})]);
    const s = source;
    await waitFor("team-a on default", () => {
      const sel = s.select("team-a");
      return sel.kind === "policy" && sel.policy.name === "baseline";
    });
  });

  it("deleting a policy that a namespace names fails closed for that namespace", async () => {
    source = new FilePolicySource({ dir, config, rescanIntervalMs: 200, debounceMs: 50 });
    await source.start();
    writeDocs(dir, "policies.yaml", [policyDoc("baseline", { key: keyBase })]);
    const s = source;
    await waitFor("strict removed", () => revisionOf(s, "strict") === undefined);
    expect(source.select("team-a")).toMatchObject({ kind: "error", failurePolicy: "Closed" });
    expect(source.select("team-b").kind).toBe("policy");
  });

  it("an oversized file is rejected once and its last good objects stay", async () => {
    source = new FilePolicySource({
      dir,
      config,
      rescanIntervalMs: 100,
      debounceMs: 20,
      maxFileBytes: 64 * 1024,
    });
    await source.start();
    const good = revisionOf(source, "strict");
    writeRaw(dir, "policies.yaml", `# ${"x".repeat(70 * 1024)}\n`);
    const s = source;
    await waitFor("size rejection", () => s.status().rejected.some((r) => /larger than/.test(r.reason)));
    const count = source.status().rejected.length;
    await s.reload();
    await s.reload();
    expect(source.status().rejected.length).toBe(count);
    expect(revisionOf(source, "strict")).toBe(good);
  });

  it("refuses to start on a missing directory", async () => {
    const s = new FilePolicySource({ dir: path.join(dir, "nope"), config });
    await expect(s.start()).rejects.toMatchObject({ code: "INVALID_CONFIG" });
  });

  it("break-glass from a Namespace document is reported", async () => {
    const until = new Date(Date.now() + 600_000).toISOString();
    writeDocs(dir, "namespaces.yaml", [
      namespaceDoc("team-a", {
        "tollgate.dev/policy": "strict",
        "tollgate.dev/break-glass": until,
        "tollgate.dev/break-glass-reason": "INC-7",
      }),
    ]);
    source = new FilePolicySource({
      dir,
      config: { ...config, maxBreakGlassSeconds: 3600 },
      rescanIntervalMs: 0,
    });
    await source.start();
    const sel = source.select("team-a");
    expect(sel.kind === "policy" && sel.breakGlass?.reason).toBe("INC-7");
  });
});
