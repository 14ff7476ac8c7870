// The ESM verifier as scripts/build.mjs builds it (scripts/verifier-esm.mjs): the fast path is
// one file that ES-imports nothing (each module file or builtin namespace is start-up every
// pull pays), its lazy imports load the split-off files, and it answers from a real socket.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { type BuildOptions, build, type Metafile } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error: a plain .mjs script without types
import { LAZY, verifierEsmBuilds } from "../../scripts/verifier-esm.mjs";
import { repoRoot } from "../support/tools.js";

const DIGEST = `sha256:${"b".repeat(64)}`;

describe("ESM pull verifier build", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-verify-esm-"));
  const out = path.join(dir, "dist");
  const outputs: Metafile["outputs"] = {};
  beforeAll(async () => {
    const builds = verifierEsmBuilds({
      repo: repoRoot,
      outdir: out,
      common: {
        bundle: true,
        platform: "node",
        target: "node24",
        format: "esm",
        logLevel: "error",
        metafile: true,
      },
    }) as BuildOptions[];
    for (const b of builds)
      Object.assign(outputs, (await build({ ...b, absWorkingDir: dir })).metafile?.outputs);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("the fast path is one file whose only imports are the lazy files, loaded on demand", () => {
    const entry = Object.entries(outputs).find(([f]) => path.basename(f) === "tollgate-verify.mjs");
    expect(entry).toBeDefined();
    const imports = entry![1].imports;
    expect(imports.filter((i) => i.kind !== "dynamic-import")).toEqual([]);
    expect(imports.map((i) => i.path).sort()).toEqual(
      Object.values(LAZY as Record<string, string>)
        .map((p) => `./${p}.mjs`)
        .sort(),
    );
    // Builtins included: no `import … from "node:…"` in the fast file.
    const text = readFileSync(path.join(out, "tollgate-verify.mjs"), "utf8");
    expect(text).not.toMatch(/(^|[;\n])\s*import\s*[{\w*]/);
  });

  /** Runs the built fast file as containerd does: bindir args, the descriptor on stdin. */
  const runVerifier = (env: NodeJS.ProcessEnv) =>
    new Promise<{ code: number | null; stdout: string }>((resolve, reject) => {
      const c = execFile(
        process.execPath,
        [path.join(out, "tollgate-verify.mjs"), "-name", "x/y:1", "-digest", DIGEST],
        { env: { PATH: process.env.PATH, ...env } },
        (e, stdout) => (e && typeof e.code !== "number" ? reject(e) : resolve({ code: c.exitCode, stdout })),
      );
      c.stdin?.end(
        JSON.stringify({ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: DIGEST, size: 1 }),
      );
    });

  it("the built file asks a real socket and prints the agent's answer", async () => {
    const sock = path.join(dir, "agent.sock");
    const server = http.createServer((req, res) => {
      req.resume();
      req.on("end", () =>
        res.end(JSON.stringify({ allowed: false, message: "tollgate: denied (test)", kind: "denied" })),
      );
    });
    await new Promise<void>((r) => server.listen(sock, r));
    try {
      expect(await runVerifier({ TOLLGATE_AGENT_SOCKET: sock })).toEqual({
        code: 1,
        stdout: "tollgate: denied (test)\n",
      });
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it("the lazy files load: nobody listening and no configuration file, the failure policy answers", async () => {
    // No sidecar, so the YAML loader (verify-chunks/slow.mjs) is imported and reports the file.
    const r = await runVerifier({
      TOLLGATE_CONFIG: path.join(dir, "none.yaml"),
      TOLLGATE_API_SOCKET: path.join(dir, "no.sock"),
    });
    expect(r.code).toBe(2);
    expect(r.stdout).toContain("none.yaml");
    expect(r.stdout).toMatch(/pull verifier failure policy Closed/);
  });
});
