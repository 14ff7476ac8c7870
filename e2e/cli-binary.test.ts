// The CLI as a self-contained executable (scripts/package-cli.mjs): it runs with an empty
// environment — no node on PATH, no HOME — as on a node or a laptop without Node.js.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "../test/support/tools.js";

let work: string;
let bin: string;

const run = (args: string[], input = "") => {
  const r = spawnSync(bin, args, { env: {}, input, encoding: "utf8", timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

beforeAll(() => {
  work = mkdtempSync(path.join(os.tmpdir(), "tollgate-e2e-cli-binary-"));
  bin = path.join(work, "tollgate");
  execFileSync(process.execPath, [path.join(repoRoot, "scripts", "package-cli.mjs"), "--out", bin], {
    cwd: repoRoot,
    stdio: "pipe",
    timeout: 240_000,
  });
}, 300_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("tollgate as a self-contained binary", () => {
  it("is an executable, not a script, and runs with an empty environment", () => {
    expect(execFileSync("head", ["-c", "4", bin]).toString("latin1")).toBe("\x7fELF");
    const v = run(["--version"]);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^tollgate \d+\.\d+\.\d+\n$/);
    expect(v.stderr).toBe(""); // no SEA warning
  });

  it("policy validate: the shipped examples, standard input, -o json", () => {
    const examples = path.join(repoRoot, "deploy", "examples");
    const files = readdirSync(examples)
      .filter((f) => f.endsWith(".yaml"))
      .map((f) => path.join(examples, f));
    const r = run(["policy", "validate", ...files]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain("(compiled)");
    expect(r.stdout).toContain("1 skipped");
    const bad = run(
      ["policy", "validate", "-o", "json", "-"],
      "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\n",
    );
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({ valid: false });
  });

  it("doctor runs its checks and reports in JSON (the node's agent absent here)", () => {
    const cfg = path.join(work, "config.toml");
    writeFileSync(cfg, 'version = 3\n[plugins."io.containerd.nri.v1.nri"]\n  disable = false\n');
    const r = run([
      "doctor",
      "--containerd-config",
      cfg,
      "--agent-socket",
      path.join(work, "no-agent.sock"),
      "--containerd-bin",
      path.join(work, "no-containerd"),
      "-o",
      "json",
    ]);
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout) as { ok: boolean; findings: Array<{ id: string; check: string }> };
    expect(report.ok).toBe(false);
    expect(report.findings.map((f) => f.id)).toContain("agent.unreachable");
    expect(new Set(report.findings.map((f) => f.check)).size).toBeGreaterThan(2);
  });
});
