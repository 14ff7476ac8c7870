// The README's demo command, run as a newcomer would (bash scripts/demo.sh), with its
// narrated output checked line by line: every allowed and denied step with Tollgate's
// reason, the summary table, and a teardown that leaves no process or directory behind.
import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "../test/support/tools.js";

let out = "";
let code: number | null = null;
let demoDirsBefore: Set<string>;

const demoDirs = () => new Set(readdirSync(os.tmpdir()).filter((d) => d.startsWith("tollgate-demo-")));

beforeAll(async () => {
  demoDirsBefore = demoDirs();
  const child = spawn("bash", [path.join(repoRoot, "scripts", "demo.sh")], {
    cwd: repoRoot,
    env: { ...process.env, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.on("data", (c) => {
    out += c;
  });
  child.stderr.on("data", (c) => {
    out += c;
  });
  code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
}, 600_000);

describe("bash scripts/demo.sh", () => {
  it("exits 0: every outcome was the expected one", () => {
    expect(out).toContain("demo: all 9 outcomes as expected");
    expect(code).toBe(0);
  });

  it("narrates the allowed pulls and creations in both namespaces", () => {
    expect(out).toMatch(/\[1\] ALLOWED pull demo\/app-a:v1 in team-a/);
    expect(out).toMatch(/\[2\] ALLOWED create demo\/app-a:v1 in team-a/);
    expect(out).toMatch(/\[3\] ALLOWED pull demo\/app-b:v1 in team-b/);
    expect(out).toMatch(/\[4\] ALLOWED create demo\/app-b:v1 in team-b/);
    expect(out).toMatch(/\[9\] ALLOWED create demo\/app-a:v1 in team-a/);
  });

  it("shows each denial with the reason containerd's CRI returned", () => {
    expect(out).toMatch(/\[5\] DENIED +pull demo\/unsigned:v1 in team-a/);
    expect(out).toMatch(
      /reason: tollgate: denied demo\/unsigned:v1 \(sha256:[0-9a-f]{12}…\): no policy in use on this node allows it/,
    );
    // cross-tenant, both ways
    expect(out).toMatch(/\[6\] DENIED +create demo\/app-a:v1 in team-b: cross-tenant/);
    expect(out).toMatch(
      /reason: tollgate: denied demo\/app-a:v1 \(sha256:[0-9a-f]{12}…\) in namespace "team-b" by policy "team-b-notation" .*no Notary Project signature found/,
    );
    expect(out).toMatch(/\[7\] DENIED +create demo\/app-b:v1 in team-a: cross-tenant/);
    expect(out).toMatch(/in namespace "team-a" by policy "team-a-cosign" .*no cosign signature found/);
    // pre-existing image: never pulled, still checked at create
    expect(out).toMatch(/\[8\] DENIED +create demo\/preloaded:v1 in team-a: pre-existing image/);
  });

  it("prints the summary table", () => {
    const table = out.slice(out.indexOf("8. What happened and why"));
    expect(table).toMatch(/^# +namespace +action +image +result +why$/m);
    expect(table).toMatch(/^5 +team-a +pull +demo\/unsigned:v1 +DENIED +no policy in use accepts it/m);
    expect(table).toMatch(
      /^6 +team-b +create +demo\/app-a:v1 +DENIED +team-b-notation: no Notary Project signature found$/m,
    );
    expect(table).toMatch(
      /^8 +team-a +create +demo\/preloaded:v1 +DENIED +team-a-cosign: no cosign signature found$/m,
    );
    expect(table).toMatch(/^2 +team-a +create +demo\/app-a:v1 +ALLOWED +team-a-cosign: signature verified$/m);
  });

  it("tears everything down", () => {
    expect(out).toMatch(
      /9\. Teardown\n +agent, containerd \(pods, shims, mounts\), registry stopped; demo directory removed/,
    );
    const left = [...demoDirs()].filter((d) => !demoDirsBefore.has(d));
    expect(left).toEqual([]);
    const pids = /agent pid (\d+)/.exec(out)?.[1];
    const ctrdPid = /containerd \S+ \(pid (\d+)\)/.exec(out)?.[1];
    for (const p of [pids, ctrdPid]) {
      expect(p).toBeDefined();
      expect(existsSync(`/proc/${p}`)).toBe(false);
    }
  });
});
