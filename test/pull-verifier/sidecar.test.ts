// The verifier's JSON sidecar (src/pull-verifier/sidecar.ts): written by the installer next to
// the YAML configuration, used by the verifier only while it matches that file, and the
// verifier asks the socket it names without loading the YAML configuration.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { validateConfig } from "../../src/config/agent.js";
import { install } from "../../src/installer/install.js";
import { run } from "../../src/pull-verifier/run.js";
import { readSidecar, renderSidecar, SIDECAR_FORMAT, sidecarPath } from "../../src/pull-verifier/sidecar.js";

const DIGEST = `sha256:${"3".repeat(64)}`;

describe("verifier sidecar", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-sidecar-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const yaml = (name: string, text: string) => {
    const p = path.join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  it("lives next to the configuration", () => {
    expect(sidecarPath("/etc/tollgate/agent.yaml")).toBe("/etc/tollgate/agent.verifier.json");
    expect(sidecarPath("/x/cfg")).toBe("/x/cfg.verifier.json");
  });

  it("round-trips while the configuration is unchanged", () => {
    const cfg = yaml("a.yaml", "api:\n  socket: /run/a.sock\n");
    writeFileSync(sidecarPath(cfg), renderSidecar(cfg, { socket: "/run/a.sock", timeoutMs: 1234 }));
    expect(readSidecar(cfg)).toEqual({ ok: true, settings: { socket: "/run/a.sock", timeoutMs: 1234 } });
  });

  it("is ignored once the configuration changed (content or only mtime)", () => {
    const cfg = yaml("b.yaml", "api:\n  socket: /run/b.sock\n");
    writeFileSync(sidecarPath(cfg), renderSidecar(cfg, { socket: "/run/b.sock", timeoutMs: 1000 }));
    writeFileSync(cfg, "api:\n  socket: /run/other.sock\n");
    const r = readSidecar(cfg);
    expect(r.ok).toBe(false);
    const c2 = yaml("c.yaml", "api:\n  socket: /run/c.sock\n");
    writeFileSync(sidecarPath(c2), renderSidecar(c2, { socket: "/run/c.sock", timeoutMs: 1000 }));
    utimesSync(c2, new Date(), new Date(Date.now() + 5000));
    expect(readSidecar(c2)).toMatchObject({
      ok: false,
      why: expect.stringContaining("changed since install"),
    });
  });

  it("rejects missing, malformed and foreign documents with a reason", () => {
    const cfg = yaml("d.yaml", "{}\n");
    expect(readSidecar(cfg)).toMatchObject({ ok: false, why: expect.stringContaining("ENOENT") });
    for (const bad of [
      "not json",
      "null",
      "[]",
      JSON.stringify({
        format: "other",
        config: { size: 3, mtimeMs: 1 },
        api: { socket: "/s" },
        pullVerifier: { timeoutMs: 1 },
      }),
      JSON.stringify({
        format: SIDECAR_FORMAT,
        config: { size: 3 },
        api: { socket: "/s" },
        pullVerifier: { timeoutMs: 1 },
      }),
      JSON.stringify({
        format: SIDECAR_FORMAT,
        config: { size: 3, mtimeMs: 1 },
        api: { socket: "" },
        pullVerifier: { timeoutMs: 1 },
      }),
      JSON.stringify({
        format: SIDECAR_FORMAT,
        config: { size: 3, mtimeMs: 1 },
        api: { socket: "/s" },
        pullVerifier: { timeoutMs: -5 },
      }),
      JSON.stringify({
        format: SIDECAR_FORMAT,
        config: { size: 3, mtimeMs: 1 },
        api: { socket: "/s" },
        pullVerifier: { timeoutMs: 1.5 },
      }),
    ]) {
      writeFileSync(sidecarPath(cfg), bad);
      const r = readSidecar(cfg);
      expect(r.ok, bad).toBe(false);
    }
  });

  it("the installer writes it after the YAML, so it matches; unchanged on a second run", async () => {
    const host = path.join(dir, "host");
    mkdirSync(path.join(host, "etc/containerd"), { recursive: true });
    writeFileSync(
      path.join(host, "etc/containerd/config.toml"),
      'version = 3\nimports = ["/etc/containerd/conf.d/*.toml"]\n',
    );
    const bin = path.join(dir, "fake-verifier");
    writeFileSync(bin, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 0]));
    const agentConfig = validateConfig({
      api: { socket: "/run/x/agent.sock" },
      pullVerifier: { timeoutMs: 4321 },
    });
    const r = await install({ hostRoot: host, verifierBinary: bin, agentConfig, version: "t" });
    expect(r.verifierConfig.sidecar).toEqual({
      hostPath: "/etc/tollgate/agent.verifier.json",
      changed: true,
    });
    const side = readSidecar(path.join(host, "etc/tollgate/agent.yaml"));
    expect(side).toEqual({ ok: true, settings: { socket: "/run/x/agent.sock", timeoutMs: 4321 } });
    const again = await install({ hostRoot: host, verifierBinary: bin, agentConfig, version: "t" });
    expect(again.verifierConfig.sidecar.changed).toBe(false);
    expect(JSON.parse(readFileSync(path.join(host, "etc/tollgate/agent.verifier.json"), "utf8")).format).toBe(
      SIDECAR_FORMAT,
    );
  });
});

describe("pull verifier with a sidecar", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-sidecar-run-"));
  const sock = path.join(dir, "agent.sock");
  let asked = 0;
  const server = http.createServer((req, res) => {
    asked++;
    req.resume();
    req.on("end", () =>
      res.end(JSON.stringify({ allowed: true, message: "tollgate: allowed by the sidecar's agent" })),
    );
  });
  beforeAll(() => new Promise<void>((r) => server.listen(sock, r)));
  afterAll(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const verify = async (env: NodeJS.ProcessEnv) => {
    let out = "";
    let err = "";
    const code = await run({
      argv: ["-name", "r.example/app:1", "-digest", DIGEST],
      stdin: Readable.from([Buffer.from(`${JSON.stringify({ mediaType: "x", digest: DIGEST, size: 1 })}\n`)]),
      stdout: (s) => (out += s),
      stderr: (s) => (err += s),
      env,
    });
    return { code, out, err };
  };

  it("asks the socket the sidecar names without reading the YAML (which would fail here)", async () => {
    // Valid sidecar, YAML that the loader rejects: only the sidecar can make this pass.
    const cfg = path.join(dir, "agent.yaml");
    writeFileSync(cfg, "api: [this is: not, a valid configuration\n");
    writeFileSync(sidecarPath(cfg), renderSidecar(cfg, { socket: sock, timeoutMs: 3000 }));
    const before = asked;
    const r = await verify({ TOLLGATE_CONFIG: cfg });
    expect(r.code).toBe(0);
    expect(r.out).toContain("allowed by the sidecar's agent");
    expect(asked).toBe(before + 1);
  });

  it("$TOLLGATE_API_SOCKET overrides the sidecar's socket, as it overrides the YAML's", async () => {
    const cfg = path.join(dir, "agent2.yaml");
    writeFileSync(cfg, "{}\n");
    writeFileSync(
      sidecarPath(cfg),
      renderSidecar(cfg, { socket: path.join(dir, "absent.sock"), timeoutMs: 3000 }),
    );
    const r = await verify({ TOLLGATE_CONFIG: cfg, TOLLGATE_API_SOCKET: sock });
    expect(r.code).toBe(0);
  });

  it("a stale sidecar is ignored: the YAML decides", async () => {
    const cfg = path.join(dir, "agent3.yaml");
    writeFileSync(cfg, `api:\n  socket: ${path.join(dir, "absent.sock")}\n`);
    writeFileSync(sidecarPath(cfg), renderSidecar(cfg, { socket: sock, timeoutMs: 3000 }));
    utimesSync(cfg, new Date(), new Date(Date.now() + 5000));
    const r = await verify({ TOLLGATE_CONFIG: cfg });
    // The YAML's socket is absent and it names no policies: the failure policy denies.
    expect(r.code).not.toBe(0);
    expect(r.err).toContain("agent unreachable");
  });
});
