// `tollgate doctor` against temporary containerd configurations that exhibit each finding,
// a clean one, a fake NRI socket, the real containerd binary's version, and an agent socket
// served by the agent's real local API module (src/agent/api.ts).
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeServer, listenUnix, makeHandler } from "../../src/agent/api.js";
import type { AgentStatus } from "../../src/agent-api/types.js";
import type { Finding } from "../../src/cli/doctor.js";
import { tools } from "../support/tools.js";
import { buildCli, runCli } from "./helpers.js";

let cli: string;
let root: string;
let nriSocket: string;
let nriServer: net.Server;
let agentSocket: string;
let agentServer: http.Server;
let status: AgentStatus;

function baseStatus(): AgentStatus {
  const p = { name: "default", revision: "sha256:aa", mode: "Enforce", failurePolicy: "Closed" };
  return {
    version: "0.1.0",
    startedAt: new Date().toISOString(),
    ready: true,
    notReady: [],
    nri: { enabled: true, state: "registered", requestTimeoutMs: 2000 },
    policySource: { source: "files", ready: true, rejected: [] },
    defaultPolicy: p,
    policies: [p],
    pullVerifier: { mode: "default-policy" },
    exemptNamespaces: [],
    exemptImages: [],
  };
}

/** A verifier bin_dir holding `names` (executable unless listed in `plain`). */
function binDir(name: string, names: string[], plain: string[] = []): string {
  const d = path.join(root, name);
  mkdirSync(d, { recursive: true });
  for (const n of names) {
    const f = path.join(d, n);
    writeFileSync(f, "#!/bin/sh\nexit 0\n");
    chmodSync(f, plain.includes(n) ? 0o644 : 0o755);
  }
  return d;
}

let seq = 0;
function config(body: string, extraFiles: Record<string, string> = {}): string {
  const d = path.join(root, `cfg-${++seq}`);
  mkdirSync(d, { recursive: true });
  for (const [n, t] of Object.entries(extraFiles)) {
    mkdirSync(path.dirname(path.join(d, n)), { recursive: true });
    writeFileSync(path.join(d, n), t);
  }
  const f = path.join(d, "config.toml");
  writeFileSync(f, body);
  return f;
}

function clean(bin: string, extra = ""): string {
  return `version = 3
[plugins."io.containerd.nri.v1.nri"]
  disable = false
  socket_path = "${nriSocket}"
  plugin_request_timeout = "2s"
[plugins."io.containerd.image-verifier.v1.bindir"]
  bin_dir = "${bin}"
  max_verifiers = 10
  per_verifier_timeout = "10s"
[plugins."io.containerd.cri.v1.images".registry]
  config_path = "/etc/containerd/certs.d"
${extra}`;
}

async function doctor(
  cfgFile: string,
  override: Record<string, string> = {},
): Promise<{ code: number; findings: Finding[]; stdout: string }> {
  const flags = { "agent-socket": agentSocket, "containerd-bin": tools.containerd, ...override };
  const r = await runCli(cli, [
    "doctor",
    "--containerd-config",
    cfgFile,
    ...Object.entries(flags).map(([k, v]) => `--${k}=${v}`),
    "--output",
    "json",
  ]);
  expect(r.stderr).toBe("");
  const j = JSON.parse(r.stdout) as { ok: boolean; errors: number; findings: Finding[] };
  expect(j.ok).toBe(r.code === 0);
  return { code: r.code, findings: j.findings, stdout: r.stdout };
}

const ids = (fs: Finding[], sev?: string) => fs.filter((f) => !sev || f.severity === sev).map((f) => f.id);

beforeAll(async () => {
  cli = await buildCli();
  root = mkdtempSync(path.join(os.tmpdir(), "tollgate-doctor-"));
  nriSocket = path.join(root, "nri.sock");
  nriServer = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => nriServer.listen(nriSocket, r));
  status = baseStatus();
  agentSocket = path.join(root, "agent", "agent.sock");
  agentServer = http.createServer(
    makeHandler(
      { status: () => status, pullVerdict: async () => Promise.reject(new Error("unused")) },
      { local: true },
    ),
  );
  await listenUnix(agentServer, agentSocket);
});

afterAll(async () => {
  if (agentServer) await closeServer(agentServer);
  await new Promise<void>((r) => (nriServer ? nriServer.close(() => r()) : r()));
});

describe("tollgate doctor", () => {
  it("a clean node: no errors, exit 0; the table names every area", async () => {
    const cfg = config(clean(binDir("bin-clean", ["10-tollgate-verify"])));
    const r = await doctor(cfg);
    expect(ids(r.findings, "error")).toEqual([]);
    expect(ids(r.findings, "warning")).toEqual([]);
    expect(r.code).toBe(0);
    for (const id of [
      "containerd.version",
      "nri.enabled",
      "nri.socket",
      "nri.timeout",
      "bindir.ok",
      "cri.transfer",
      "agent.healthy",
      "agent.ready",
      "agent.policies",
      "agent.nri-registered",
    ])
      expect(ids(r.findings), id).toContain(id);
    expect(r.findings.find((f) => f.id === "containerd.version")!.message).toMatch(/containerd v?2\.1\.\d+/);
    const t = await runCli(cli, [
      "doctor",
      "--containerd-config",
      cfg,
      "--agent-socket",
      agentSocket,
      "--containerd-bin",
      tools.containerd,
    ]);
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/^\[ok\] +bindir +.*10-tollgate-verify/m);
    expect(t.stdout).toContain("0 error(s), 0 warning(s)");
  });

  it.each([
    ["bindir.missing", () => clean(path.join(root, "no-such-dir"))],
    ["bindir.empty", () => clean(binDir("bin-empty", []))],
    [
      "bindir.bad-entry",
      () => clean(binDir("bin-noexec", ["10-tollgate-verify", "20-notes.txt"], ["20-notes.txt"])),
    ],
    [
      "bindir.too-many",
      () =>
        clean(binDir("bin-many", ["10-tollgate-verify", "20-a", "30-b"])).replace(
          "max_verifiers = 10",
          "max_verifiers = 2",
        ),
    ],
    ["nri.disabled", () => clean(binDir("bin-1", ["tollgate"])).replace("disable = false", "disable = true")],
    [
      "nri.socket-missing",
      () => clean(binDir("bin-2", ["tollgate"])).replace(nriSocket, path.join(root, "nope.sock")),
    ],
    ["nri.timeout-invalid", () => clean(binDir("bin-3", ["tollgate"])).replace('"2s"', '"two seconds"')],
    [
      "cri.use-local-image-pull",
      () =>
        clean(
          binDir("bin-4", ["tollgate"]),
          `[plugins."io.containerd.cri.v1.images"]\n  use_local_image_pull = true\n`,
        ),
    ],
    [
      "cri.discard-unpacked-layers",
      () =>
        clean(
          binDir("bin-5", ["tollgate"]),
          `[plugins."io.containerd.cri.v1.images"]\n  discard_unpacked_layers = true\n`,
        ),
    ],
    [
      "cri.max-concurrent-downloads",
      () =>
        clean(
          binDir("bin-6", ["tollgate"]),
          `[plugins."io.containerd.cri.v1.images"]\n  max_concurrent_downloads = 5\n`,
        ),
    ],
    [
      "cri.image-pull-with-sync-fs",
      () =>
        clean(
          binDir("bin-7", ["tollgate"]),
          `[plugins."io.containerd.cri.v1.images"]\n  image_pull_with_sync_fs = true\n`,
        ),
    ],
    [
      "cri.snapshot-annotations",
      () =>
        clean(
          binDir("bin-8", ["tollgate"]),
          `[plugins."io.containerd.cri.v1.images"]\n  disable_snapshot_annotations = false\n`,
        ),
    ],
    [
      "cri.registry-mirrors",
      () =>
        clean(
          binDir("bin-9", ["tollgate"]),
          `[plugins."io.containerd.cri.v1.images".registry.mirrors."docker.io"]\n  endpoint = ["https://mirror.example"]\n`,
        ),
    ],
    [
      "cri.registry-configs",
      () =>
        clean(
          binDir("bin-10", ["tollgate"]),
          `[plugins."io.containerd.cri.v1.images".registry.configs."r.example".tls]\n  insecure_skip_verify = true\n`,
        ),
    ],
    [
      "cri.registry-auths",
      () =>
        clean(
          binDir("bin-11", ["tollgate"]),
          `[plugins."io.containerd.cri.v1.images".registry.auths."r.example"]\n  username = "u"\n`,
        ),
    ],
    [
      "config.plugin-disabled",
      () =>
        `disabled_plugins = ["io.containerd.image-verifier.v1.bindir"]\n${clean(binDir("bin-12", ["tollgate"]))}`,
    ],
  ])("%s is an error (exit 1) with a fix", async (id, body) => {
    const r = await doctor(config(body()));
    expect(r.code).toBe(1);
    const f = r.findings.find((x) => x.id === id);
    expect(f, JSON.stringify(r.findings, null, 1)).toBeDefined();
    expect(f!.severity).toBe("error");
    expect(f!.fix).toBeTruthy();
    // Nothing else is wrong in these configurations.
    const others = ids(r.findings, "error").filter((x) => x !== id);
    expect(others).toEqual([]);
  });

  it("names what would be skipped past max_verifiers, and a directory entry blocks pulls", async () => {
    const d = binDir("bin-dir-entry", ["10-tollgate-verify"]);
    mkdirSync(path.join(d, "20-subdir"));
    const r = await doctor(config(clean(d).replace("max_verifiers = 10", "max_verifiers = 1")));
    const many = r.findings.find((f) => f.id === "bindir.too-many")!;
    expect(many.message).toContain("would-be skipped in order: 20-subdir");
    expect(r.findings.find((f) => f.id === "bindir.bad-entry")!.message).toContain(
      "20-subdir is a directory",
    );
  });

  it("a short NRI request timeout and a bin_dir without Tollgate are warnings (exit 0)", async () => {
    const r = await doctor(config(clean(binDir("bin-other", ["50-other"])).replace('"2s"', '"500ms"')));
    expect(r.code).toBe(0);
    expect(ids(r.findings, "warning").sort()).toEqual(["bindir.no-tollgate", "nri.timeout-short"]);
    expect(r.findings.find((f) => f.id === "nri.timeout-short")!.message).toContain("answers within 250 ms");
  });

  it("version 2 spelling: CRI settings under io.containerd.grpc.v1.cri are found (migrated like containerd does)", async () => {
    const body = `version = 2
[plugins."io.containerd.nri.v1.nri"]
  socket_path = "${nriSocket}"
[plugins."io.containerd.image-verifier.v1.bindir"]
  bin_dir = "${binDir("bin-v2", ["tollgate"])}"
[plugins."io.containerd.grpc.v1.cri"]
  max_concurrent_downloads = 3
  [plugins."io.containerd.grpc.v1.cri".containerd]
    disable_snapshot_annotations = false
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
    endpoint = ["https://mirror.example"]
`;
    const r = await doctor(config(body));
    expect(r.code).toBe(1);
    expect(ids(r.findings, "error").sort()).toEqual(["cri.registry-mirrors", "cri.snapshot-annotations"]);
    expect(r.findings.find((f) => f.id === "cri.snapshot-annotations")!.message).toContain(
      '[plugins."io.containerd.grpc.v1.cri".containerd] disable_snapshot_annotations',
    );
  });

  it("imports: glob drop-ins are merged in order (a later drop-in's value wins, false included)", async () => {
    const bin = binDir("bin-imports", ["tollgate"]);
    const main = clean(bin).replace(
      "version = 3\n",
      'version = 3\nimports = ["conf.d/*.toml", "./extra.toml"]\n',
    );
    const cfg = config(main, {
      "conf.d/10-nri-off.toml": `version = 3\n[plugins."io.containerd.nri.v1.nri"]\n  disable = true\n`,
      "conf.d/20-nri-on.toml": `version = 3\n[plugins."io.containerd.nri.v1.nri"]\n  disable = false\n`,
      "extra.toml": `version = 3\n[plugins."io.containerd.cri.v1.images"]\n  use_local_image_pull = true\n`,
    });
    const r = await doctor(cfg);
    expect(ids(r.findings, "error")).toEqual(["cri.use-local-image-pull"]);
    const files = r.findings.find((f) => f.id === "config.files")!.message;
    expect(files.indexOf("10-nri-off.toml")).toBeLessThan(files.indexOf("20-nri-on.toml"));
    expect(files).toContain("extra.toml");
  });

  it("a missing import and a TOML syntax error are errors", async () => {
    const r = await doctor(
      config(
        clean(binDir("bin-imp2", ["tollgate"])).replace(
          "version = 3\n",
          'version = 3\nimports = ["missing.toml"]\n',
        ),
      ),
    );
    expect(r.findings.find((f) => f.id === "config.unreadable")!.message).toContain(
      "missing.toml: no such file",
    );
    const s = await doctor(config(`version = 3\n[plugins\n`));
    expect(s.code).toBe(1);
    expect(ids(s.findings)).toContain("config.unreadable");
  });

  it("no config file: containerd's defaults are checked (default bin_dir, default NRI socket)", async () => {
    const r = await doctor(path.join(root, "absent.toml"));
    expect(ids(r.findings)).toContain("config.missing");
    const b = r.findings.find((f) => f.id.startsWith("bindir."))!;
    expect(b.message).toContain("/opt/containerd/image-verifier/bin");
  });

  it("containerd 1.x is an error", async () => {
    const fake = path.join(root, "containerd-1.7");
    writeFileSync(
      fake,
      "#!/bin/sh\necho 'containerd github.com/containerd/containerd v1.7.20 8fc6bcff51318944179630522a095cc9dbf9f353'\n",
    );
    chmodSync(fake, 0o755);
    const r = await doctor(config(clean(binDir("bin-old", ["tollgate"]))), { "containerd-bin": fake });
    expect(r.code).toBe(1);
    expect(ids(r.findings, "error")).toEqual(["containerd.too-old"]);
  });

  it("agent problems: not ready, no policies, rejected update, NRI not registered", async () => {
    const cfg = config(clean(binDir("bin-agent", ["tollgate"])));
    status = {
      ...baseStatus(),
      ready: false,
      notReady: ["NRI plugin connecting"],
      nri: { enabled: true, state: "connecting" },
      policies: [],
      defaultPolicy: undefined,
      policySource: {
        rejected: [{ policy: "strict", origin: "/p/strict.yaml", reason: "spec.mode: bad", at: "x" }],
      },
    };
    try {
      const r = await doctor(cfg);
      expect(r.code).toBe(1);
      expect(ids(r.findings, "error").sort()).toEqual(
        ["agent.no-policies", "agent.not-ready", "agent.nri-not-registered"].sort(),
      );
      expect(ids(r.findings, "warning")).toEqual(["agent.policy-rejected"]);
      expect(r.findings.find((f) => f.id === "agent.not-ready")!.message).toContain("NRI plugin connecting");
    } finally {
      status = baseStatus();
    }
  });

  it("agent unreachable: missing socket, and a peer that hangs up", async () => {
    const cfg = config(clean(binDir("bin-agent2", ["tollgate"])));
    const r = await doctor(cfg, { "agent-socket": path.join(root, "none.sock") });
    expect(r.code).toBe(1);
    expect(r.findings.find((f) => f.id === "agent.unreachable")!.message).toContain("no such socket");
    // A peer that accepts and hangs up at once (a wedged or dying agent).
    const stale = path.join(root, "hangup.sock");
    const hang = net.createServer((c) => c.destroy());
    await new Promise<void>((res) => hang.listen(stale, res));
    try {
      const h = await doctor(cfg, { "agent-socket": stale });
      expect(h.code).toBe(1);
      expect(ids(h.findings, "error")).toContain("agent.unreachable");
    } finally {
      await new Promise<void>((res) => hang.close(() => res()));
    }
  });

  it("cross-checks the agent configuration: NRI socket mismatch, verifier timeout above per_verifier_timeout", async () => {
    const agentCfg = path.join(root, "agent.yaml");
    writeFileSync(
      agentCfg,
      `nri:\n  socket: /run/other/nri.sock\npullVerifier:\n  timeoutMs: 12000\napi:\n  socket: ${agentSocket}\nmetrics:\n  listen: ""\n`,
    );
    const r = await runCli(cli, [
      "doctor",
      "--containerd-config",
      config(clean(binDir("bin-x", ["tollgate"]))),
      "--config",
      agentCfg,
      "--containerd-bin",
      tools.containerd,
      "--output=json",
    ]);
    const j = JSON.parse(r.stdout) as { findings: Finding[] };
    expect(ids(j.findings, "error")).toEqual(["nri.socket-mismatch"]);
    // The agent configuration exempts no sandbox image: every pod's sandbox pull is checked.
    expect(ids(j.findings, "warning").sort()).toEqual(["bindir.timeout-short", "pull.sandbox-not-exempt"]);
    // The agent socket came from the agent configuration.
    expect(ids(j.findings)).toContain("agent.healthy");
    const bad = path.join(root, "bad-agent.yaml");
    writeFileSync(bad, "nri:\n  sockett: /x\n");
    const b = await runCli(cli, ["doctor", "--config", bad]);
    expect(b.code).toBe(2);
    expect(b.stderr).toContain("nri.sockett: unknown key");
  });
});
