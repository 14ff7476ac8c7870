// doctor's pull-time checks (src/cli/doctor-pulls.ts) against real containerd configuration
// files and agent configurations as validateConfig builds them.
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { validateConfig } from "../../src/config/agent.js";
import { loadContainerdConfig } from "../../src/cli/containerd-config.js";
import type { Finding } from "../../src/cli/doctor.js";
import { checkPulls, sandboxImageOf } from "../../src/cli/doctor-pulls.js";
import { writeSnapshot } from "../../src/policy-source/snapshot.js";

const root = mkdtempSync(path.join(os.tmpdir(), "tollgate-doctor-pulls-"));
let seq = 0;
function ctrdConfig(body: string) {
  const f = path.join(root, `config-${++seq}.toml`);
  writeFileSync(f, body);
  return loadContainerdConfig(f);
}
const PAUSE =
  "registry.k8s.io/pause:3.10@sha256:ee6521f290b2168b6e0935a181d4cff9be1ac3f505666ef0e3c98fae8199917a";

function run(ctrd: ReturnType<typeof ctrdConfig>, policy: Record<string, unknown>) {
  const out: Finding[] = [];
  checkPulls(ctrd, validateConfig({ policy }), (f) => out.push(f));
  return out;
}
const ids = (fs: Finding[], sev?: string) =>
  fs
    .filter((f) => !sev || f.severity === sev)
    .map((f) => f.id)
    .sort();

describe("doctor: pull-time checks", () => {
  it("the sandbox image comes from pinned_images (v3), sandbox_image (v2), else containerd's default", () => {
    expect(
      sandboxImageOf(
        ctrdConfig(
          'version = 3\n[plugins."io.containerd.cri.v1.images".pinned_images]\n  sandbox = "example.com/pause:9"\n',
        ),
      ),
    ).toBe("example.com/pause:9");
    expect(
      sandboxImageOf(
        ctrdConfig(
          'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "example.com/pause:8"\n',
        ),
      ),
    ).toBe("example.com/pause:8");
    expect(sandboxImageOf(ctrdConfig("version = 3\n"))).toBe("registry.k8s.io/pause:3.10");
  });

  it("warns when exempt namespaces have no pull-time images and the sandbox image is not exempt", () => {
    const f = run(ctrdConfig("version = 3\n"), { exemptNamespaces: ["kube-system"] });
    expect(ids(f, "warning")).toEqual(["pull.exempt-namespaces-blocked", "pull.sandbox-not-exempt"]);
    expect(f.find((x) => x.id === "pull.exempt-namespaces-blocked")!.fix).toContain("exemptNamespaceImages");
  });

  it("the shipped defaults are clean: pause pinned by digest, registry.k8s.io for exempt namespaces", () => {
    const f = run(ctrdConfig("version = 3\n"), {
      exemptNamespaces: ["kube-system"],
      exemptNamespaceImages: ["registry.k8s.io/**"],
      exemptImages: [PAUSE],
    });
    expect(ids(f, "warning")).toEqual([]);
    expect(f.find((x) => x.id === "pull.sandbox-exempt")!.message).toContain("pinned by digest");
  });

  it("warns about exempt images without a digest", () => {
    const f = run(ctrdConfig("version = 3\n"), { exemptImages: ["registry.k8s.io/pause"] });
    expect(ids(f, "warning")).toEqual(["pull.exempt-unpinned"]);
  });

  it("kubernetes source: no snapshot, a missing one, a fresh one, a stale one, a world-readable one", () => {
    const c = ctrdConfig("version = 3\n");
    const base = { source: "kubernetes", exemptImages: [PAUSE] };
    expect(ids(run(c, { ...base, snapshotPath: "" }), "warning")).toEqual(["pull.no-snapshot"]);
    const dir = path.join(root, "state");
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, "snap.json");
    expect(ids(run(c, { ...base, snapshotPath: file }), "warning")).toEqual(["pull.snapshot-missing"]);
    const body = (at: Date) => ({
      format: "tollgate.dev/policy-snapshot/v1" as const,
      source: "kubernetes" as const,
      syncedAt: at.toISOString(),
      writtenAt: at.toISOString(),
      policies: [],
      namespaces: [],
    });
    writeSnapshot(file, body(new Date()));
    expect(ids(run(c, { ...base, snapshotPath: file }), "ok")).toContain("pull.snapshot");
    writeSnapshot(file, body(new Date(Date.now() - 7200_000)));
    expect(ids(run(c, { ...base, snapshotPath: file, snapshotMaxAgeSeconds: 3600 }), "warning")).toEqual([
      "pull.snapshot-stale",
    ]);
    chmodSync(file, 0o644);
    expect(ids(run(c, { ...base, snapshotPath: file }), "warning")).toEqual(["pull.snapshot-mode"]);
  });
});
