import { mkdtempSync, rmSync, statSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pkg from "../../package.json";
import {
  closeServer,
  listenTcp,
  listenUnix,
  makeHandler,
  parsePullVerdictRequest,
} from "../../src/agent/api.js";
import type { AgentStatus } from "../../src/agent-api/types.js";
import { ExemptImages } from "../../src/decision/exempt.js";
import { PullDecider } from "../../src/decision/pull.js";
import { EXIT_ALLOW, EXIT_DENY, EXIT_ERROR, run } from "../../src/pull-verifier/run.js";
import { FakeEngine, FakeSelector, MemorySink, policy, verdict } from "./fakes.js";

const SIGNED = `sha256:${"1".repeat(64)}`;
const UNSIGNED = `sha256:${"2".repeat(64)}`;

function request(socketPath: string, method: string, p: string, body?: string) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const r = http.request({ socketPath, method, path: p, agent: false }, (res) => {
      let b = "";
      res.on("data", (c) => (b += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: b }));
    });
    r.on("error", reject);
    r.end(body);
  });
}

describe("agent local API + pull verifier", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-api-"));
  const sock = path.join(dir, "run", "agent.sock");
  const sink = new MemorySink();
  const strict = policy("strict");
  const engine = new FakeEngine((s, p) => verdict(p, s, { allowed: s.digest === SIGNED }));
  const decider = new PullDecider({
    selector: new FakeSelector([strict], strict),
    engine,
    exemptImages: new ExemptImages(["127.0.0.1:5000/pause:3.10"]),
    mode: "default-policy",
    timeoutMs: 2000,
    failurePolicy: "Closed",
    sink,
  });
  const status: AgentStatus = {
    version: "test",
    startedAt: new Date().toISOString(),
    ready: true,
    notReady: [],
    nri: { enabled: false, state: "disabled" },
    policySource: {},
    policies: [],
    pullVerifier: { mode: "default-policy" },
    exemptNamespaces: [],
    exemptImages: [],
  };
  const server = http.createServer(
    makeHandler({ pullVerdict: (r) => decider.decide(r), status: () => status }, { local: true }),
  );

  beforeAll(async () => {
    await listenUnix(server, sock);
  });
  afterAll(async () => {
    await closeServer(server);
    rmSync(dir, { recursive: true, force: true });
  });

  const verify = async (
    name: string,
    digest: string,
    env: NodeJS.ProcessEnv = { TOLLGATE_AGENT_SOCKET: sock },
  ) => {
    let out = "";
    let err = "";
    const desc = `${JSON.stringify({ mediaType: "application/vnd.oci.image.manifest.v1+json", digest, size: 123 })}\n`;
    const code = await run({
      argv: ["-name", name, "-digest", digest, "-stdin-media-type", "application/vnd.oci.descriptor.v1+json"],
      stdin: Readable.from([Buffer.from(desc)]),
      stdout: (s) => (out += s),
      stderr: (s) => (err += s),
      env: { TOLLGATE_CONFIG: path.join(dir, "none.yaml"), ...env },
    });
    return { code, out, err };
  };

  it("the socket is owner-only", () => {
    expect(statSync(sock).mode & 0o777).toBe(0o600);
  });

  it("health, readiness and status", async () => {
    expect((await request(sock, "GET", "/healthz")).status).toBe(200);
    expect((await request(sock, "GET", "/readyz")).status).toBe(200);
    const s = await request(sock, "GET", "/v1/status");
    expect(JSON.parse(s.body)).toMatchObject({ version: "test", ready: true });
  });

  it("the TCP listener serves /metrics, /healthz, /readyz and nothing tenant-revealing", async () => {
    const tcp = http.createServer(
      makeHandler(
        {
          pullVerdict: (r) => decider.decide(r),
          status: () => status,
          metrics: async () => ({ contentType: "text/plain", body: "m 1\n" }),
        },
        { local: false },
      ),
    );
    const port = await listenTcp(tcp, "127.0.0.1", 0);
    try {
      const get = async (p: string, method = "GET") =>
        (await fetch(`http://127.0.0.1:${port}${p}`, { method })).status;
      expect(await get("/metrics")).toBe(200);
      expect(await get("/healthz")).toBe(200);
      expect(await get("/readyz")).toBe(200);
      for (const p of ["/v1/status", "/v1/status?x=1", "/v1/pull-verdict"]) expect(await get(p)).toBe(404);
      expect(await get("/v1/pull-verdict", "POST")).toBe(404);
    } finally {
      await closeServer(tcp);
    }
  });

  it("rejects malformed and oversized requests with 400", async () => {
    expect((await request(sock, "POST", "/v1/pull-verdict", "{")).status).toBe(400);
    expect(
      (await request(sock, "POST", "/v1/pull-verdict", JSON.stringify({ name: "x", digest: "nope" }))).status,
    ).toBe(400);
    const big = JSON.stringify({ name: "x".repeat(100_000), digest: SIGNED });
    const r = await request(sock, "POST", "/v1/pull-verdict", big).catch(() => ({ status: 400, body: "" }));
    expect(r.status).toBe(400);
    expect(() =>
      parsePullVerdictRequest({
        name: "a",
        digest: SIGNED,
        descriptor: { mediaType: "m", digest: UNSIGNED, size: 1 },
      }),
    ).toThrow(/does not match/);
    // The descriptor is parsed like any OCI descriptor: size is required.
    expect(() =>
      parsePullVerdictRequest({ name: "a", digest: SIGNED, descriptor: { mediaType: "m", digest: SIGNED } }),
    ).toThrow(/OCI descriptor/);
  });

  it("verifier: allowed image exits 0, denied exits non-zero with the agent's reason on stdout", async () => {
    const ok = await verify("127.0.0.1:5000/app:signed", SIGNED);
    expect(ok.code).toBe(EXIT_ALLOW);
    const no = await verify("127.0.0.1:5000/app:v1", UNSIGNED);
    expect(no.code).toBe(EXIT_DENY);
    expect(no.out).toMatch(
      /^tollgate: denied 127\.0\.0\.1:5000\/app:v1 \(sha256:2+\) by policy "strict" \(rev rev-strict-0\): no cosign signature found\n$/,
    );
    expect(sink.decisions.filter((d) => d.event === "pull")).toHaveLength(2);
  });

  it("verifier: a broken contract (digest mismatch on stdin, missing -name) denies", async () => {
    let out = "";
    const code = await run({
      argv: [
        "-name",
        "r/a:v1",
        "-digest",
        SIGNED,
        "-stdin-media-type",
        "application/vnd.oci.descriptor.v1+json",
      ],
      stdin: Readable.from([
        Buffer.from(`${JSON.stringify({ mediaType: "m", digest: UNSIGNED, size: 1 })}\n`),
      ]),
      stdout: (s) => (out += s),
      stderr: () => {},
      env: { TOLLGATE_AGENT_SOCKET: sock },
    });
    expect(code).toBe(EXIT_ERROR);
    expect(out).toContain("does not match");
    const c2 = await run({
      argv: ["-digest", SIGNED],
      stdin: Readable.from([]),
      stdout: () => {},
      stderr: () => {},
      env: {},
    });
    expect(c2).toBe(EXIT_ERROR);
  });

  it("verifier: --version alone names the package and the Node.js runtime; with other args it is no allow", async () => {
    for (const flag of ["--version", "-version"]) {
      let out = "";
      const code = await run({
        argv: [flag],
        stdin: Readable.from([]),
        stdout: (s) => (out += s),
        stderr: () => {},
        env: {},
      });
      expect(code).toBe(EXIT_ALLOW);
      expect(out).toBe(`tollgate-verify ${pkg.version} (node ${process.version})\n`);
    }
    let out = "";
    const code = await run({
      argv: ["--version", "-name", "r/a:v1", "-digest", SIGNED],
      stdin: Readable.from([]),
      stdout: (s) => (out += s),
      stderr: () => {},
      env: { TOLLGATE_AGENT_SOCKET: path.join(dir, "absent.sock") },
    });
    expect(code).not.toBe(EXIT_ALLOW);
    expect(out).not.toContain("tollgate-verify");
  });

  it("verifier: agent unreachable and no configuration → failure policy Closed", async () => {
    const r = await verify("127.0.0.1:5000/app:signed", SIGNED, {
      TOLLGATE_AGENT_SOCKET: path.join(dir, "absent.sock"),
    });
    expect(r.code).not.toBe(0);
    expect(r.out).toContain("failure policy Closed");
  });
});
