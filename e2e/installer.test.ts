// `tollgate install` end to end:
//  A. into a temporary host root that has glibc and nothing else (no Node.js): the installed
//     verifier runs there under `env -i chroot` and answers through a running agent (real
//     agent from dist/, file policy source, cosign-signed and unsigned images in a real
//     registry); with the agent stopped it verifies in-process from the installed config.
//  B. with its drop-in imported by the main config of a real containerd 2.1: containerd
//     starts, `ctr plugins ls` shows the bindir verifier and NRI as ok, the agent registers
//     over the NRI socket the drop-in names, and pulls through containerd are allowed or
//     blocked by the installed verifier.
// Part B installs with --host-root / and every path under a private temp dir, because the
// drop-in must name paths containerd itself can reach (never the real /etc or /opt).
import { execFileSync, spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { type PushedImage, pushBusyboxImage } from "../test/support/images.js";
import { type Daemon, startDaemon, waitFor } from "../test/support/procs.js";
import { type LocalRegistry, startRegistry } from "../test/support/registry.js";
import { type CosignKeys, cosignGenerateKeyPair, cosignSign } from "../test/support/signing.js";
import { repoRoot, sidBin, tools } from "../test/support/tools.js";
import { mountsUnder } from "./lib/containerd.js";

const SEA = path.join(repoRoot, "dist", "tollgate-verify");
const CLI = path.join(repoRoot, "dist", "tollgate.mjs");
const BIN_DIR = "/opt/containerd/image-verifier/bin";
const DESCRIPTOR_MT = "application/vnd.oci.descriptor.v1+json";

let work: string;
let registry: LocalRegistry;
let keys: CosignKeys;
let signed: PushedImage;
let unsigned: PushedImage;
const daemons: Daemon[] = [];

function policyDocs(pem: string): string {
  return stringify({
    apiVersion: "tollgate.dev/v1alpha1",
    kind: "ImagePolicy",
    metadata: { name: "default" },
    spec: {
      mode: "Enforce",
      failurePolicy: "Closed",
      verifiers: [{ name: "release-key", cosign: { keys: [{ name: "release", pem }] } }],
    },
  });
}

function writeYaml(file: string, doc: unknown): string {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, stringify(doc));
  return file;
}

function runInstall(args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, "install", ...args], { encoding: "utf8", timeout: 120_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

async function startAgent(name: string, configFile: string): Promise<{ daemon: Daemon; socket: string }> {
  const cfg = readFileSync(configFile, "utf8");
  const socket = /socket: (\S+agent\.sock)/.exec(cfg)![1]!;
  const d = startDaemon(name, process.execPath, [CLI, "agent", "--config", configFile], { logDir: work });
  daemons.push(d);
  let exited = false;
  d.child.once("exit", () => {
    exited = true;
  });
  await waitFor(
    `${name} API socket`,
    () => {
      if (exited) throw new Error(`agent exited: ${readFileSync(d.logFile, "utf8").slice(-2000)}`);
      return existsSync(socket);
    },
    60_000,
  );
  return { daemon: d, socket };
}

function agentStatus(socket: string): Promise<{ nri: { state: string } }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath: socket, path: "/v1/status", timeout: 5000 }, (res) => {
      let body = "";
      res.on("data", (c) => {
        body += c;
      });
      res.on("end", () => {
        try {
          resolve(JSON.parse(body));
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on("error", reject);
  });
}

/** Runs the installed verifier inside the host root with an empty environment, like containerd would. */
function verifyInChroot(hostRoot: string, img: PushedImage) {
  const descriptor = JSON.stringify({
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: img.digest,
    size: 500,
  });
  const r = spawnSync(
    "/usr/bin/env",
    [
      "-i",
      "/usr/sbin/chroot",
      hostRoot,
      `${BIN_DIR}/50-tollgate`,
      "-name",
      img.ref,
      "-digest",
      img.digest,
      "-stdin-media-type",
      DESCRIPTOR_MT,
    ],
    { input: `${descriptor}\n`, encoding: "utf8", timeout: 60_000 },
  );
  return { code: r.status, stdout: r.stdout.trim(), stderr: r.stderr };
}

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), "tollgate-e2e-installer-"));
  // The self-contained verifier (global setup builds dist/ but not the SEA).
  execFileSync(process.execPath, [path.join(repoRoot, "scripts", "package-verifier.mjs")], {
    cwd: repoRoot,
    stdio: "pipe",
    timeout: 240_000,
  });
  registry = await startRegistry(path.join(work, "registry"));
  keys = await cosignGenerateKeyPair(path.join(work, "cosign"));
  signed = pushBusyboxImage(registry.host, "e2e/installer-signed", "v1", { marker: "signed" });
  unsigned = pushBusyboxImage(registry.host, "e2e/installer-unsigned", "v1", { marker: "unsigned" });
  await cosignSign({ ref: signed.pinned, keyDir: keys });
});

afterAll(async () => {
  for (const d of daemons.reverse()) await d.stop("SIGTERM", 10_000).catch(() => {});
  await registry?.stop();
  if (work && mountsUnder(work).length === 0 && !process.env.TOLLGATE_KEEP_E2E_DIRS)
    rmSync(work, { recursive: true, force: true });
});

describe("A: install into a temporary host root without Node.js", () => {
  let hostRoot: string;
  let agent: { daemon: Daemon; socket: string };

  beforeAll(async () => {
    hostRoot = path.join(work, "hostroot");
    // A host with glibc (what the SEA links against) and nothing else: no node, no shell.
    for (const lib of execFileSync("ldd", [SEA], { encoding: "utf8" }).match(/\/\S+/g) ?? []) {
      mkdirSync(path.join(hostRoot, path.dirname(lib)), { recursive: true });
      copyFileSync(lib, path.join(hostRoot, lib));
    }
    mkdirSync(path.join(hostRoot, "etc/containerd"), { recursive: true });
    writeFileSync(
      path.join(hostRoot, "etc/containerd/config.toml"),
      'version = 3\nimports = ["/etc/containerd/conf.d/*.toml"]\n',
    );
    mkdirSync(path.join(hostRoot, "etc/tollgate/policies"), { recursive: true });
    writeFileSync(path.join(hostRoot, "etc/tollgate/policies/default.yaml"), policyDocs(keys.publicKeyPem));
    // The configuration as the host sees it (what the DaemonSet's ConfigMap would hold)…
    const hostView = {
      nri: { enabled: false },
      api: { socket: "/run/tollgate/agent.sock" },
      policy: { source: "files", dir: "/etc/tollgate/policies" },
      metrics: { listen: "" },
    };
    writeYaml(path.join(work, "a-install.yaml"), hostView);
    // …and the agent's own view of the same paths (the DaemonSet mounts them at the same place).
    writeYaml(path.join(work, "a-agent.yaml"), {
      ...hostView,
      api: { socket: path.join(hostRoot, "run/tollgate/agent.sock") },
      policy: { source: "files", dir: path.join(hostRoot, "etc/tollgate/policies") },
    });
    const r = runInstall([
      "--host-root",
      hostRoot,
      "--agent-config",
      path.join(work, "a-install.yaml"),
      "--verifier-binary",
      SEA,
    ]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/pull verifier +\/opt\/containerd\/image-verifier\/bin\/50-tollgate \(installed/);
    expect(r.out).toMatch(/imported by main +yes \(\/etc\/containerd\/conf\.d\/\*\.toml\)/);
    agent = await startAgent("agent-a", path.join(work, "a-agent.yaml"));
  });

  it("the host root has no Node.js; the installed verifier is the self-contained executable", () => {
    expect(existsSync(path.join(hostRoot, "usr/bin/node"))).toBe(false);
    expect(existsSync(path.join(hostRoot, "usr/local/bin/node"))).toBe(false);
    const bin = readFileSync(path.join(hostRoot, BIN_DIR, "50-tollgate"));
    expect(bin.subarray(0, 4).toString("latin1")).toBe("\x7fELF");
    expect(bin.equals(readFileSync(SEA))).toBe(true);
  });

  it("runs on Node 24: the agent process and the installed verifier binary report v24", async () => {
    // The agent's start record names the runtime it runs on (process.version).
    let started: { msg?: string; node?: string } | undefined;
    await waitFor(
      "agent-a start record",
      () => {
        started = readFileSync(agent.daemon.logFile, "utf8")
          .split("\n")
          .filter((l) => l.startsWith("{"))
          .map((l) => JSON.parse(l) as { msg?: string; node?: string })
          .find((rec) => rec.msg === "agent started");
        return started !== undefined;
      },
      30_000,
    );
    // The verifier containerd would run: the installed SEA, empty environment, no Node on the host.
    const r = spawnSync(
      "/usr/bin/env",
      ["-i", "/usr/sbin/chroot", hostRoot, `${BIN_DIR}/50-tollgate`, "--version"],
      { encoding: "utf8", timeout: 60_000 },
    );
    console.log(`agent process: node ${started?.node}; installed verifier: ${r.stdout.trim()}`);
    expect(started?.node).toMatch(/^v24\./);
    expect(started?.node).toBe(process.version);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toMatch(/^tollgate-verify \S+ \(node v24\.\d+\.\d+\)$/);
    expect(r.stdout).toContain(`(node ${process.version})`);
  });

  it("answers through the agent: signed image allowed, unsigned denied with the reason", () => {
    const ok = verifyInChroot(hostRoot, signed);
    expect(ok.stderr).toMatch(/"msg":"agent answered"/);
    expect(ok.stdout).toMatch(
      new RegExp(`^tollgate: allowed ${signed.ref.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`),
    );
    expect(ok.code).toBe(0);
    const no = verifyInChroot(hostRoot, unsigned);
    expect(no.stderr).toMatch(/"msg":"agent answered"/);
    expect(no.stdout).toMatch(/^tollgate: denied .*installer-unsigned:v1 .*policy "default"/);
    expect(no.code).toBe(1);
  });

  it("with the agent stopped, verifies in-process from the installed configuration", async () => {
    await agent.daemon.stop("SIGTERM", 10_000);
    const ok = verifyInChroot(hostRoot, signed);
    expect(ok.stderr).toMatch(/agent unreachable, verifying in-process/);
    expect(ok.stdout).toMatch(/^tollgate: allowed /);
    expect(ok.code).toBe(0);
    const no = verifyInChroot(hostRoot, unsigned);
    expect(no.stdout).toMatch(/^tollgate: denied /);
    expect(no.code).toBe(1);
  });
});

describe("B: the drop-in on a real containerd 2.1", () => {
  const dir = () => path.join(work, "b");
  let containerd: Daemon;
  let agentSocket: string;
  let address: string;

  const ctr = (args: string[]) =>
    spawnSync(tools.ctr, ["-a", address, ...args], { encoding: "utf8", timeout: 120_000 });

  beforeAll(async () => {
    const d = dir();
    mkdirSync(path.join(d, "policies"), { recursive: true });
    writeFileSync(path.join(d, "policies/default.yaml"), policyDocs(keys.publicKeyPem));
    address = path.join(d, "containerd.sock");
    // The host's main config: containerd basics + the import; nothing about verifiers or NRI.
    writeFileSync(
      path.join(d, "config.toml"),
      [
        "version = 3",
        `imports = [${JSON.stringify(path.join(d, "conf.d", "*.toml"))}]`,
        `root = ${JSON.stringify(path.join(d, "root"))}`,
        `state = ${JSON.stringify(path.join(d, "state"))}`,
        "[grpc]",
        `  address = ${JSON.stringify(address)}`,
        "[ttrpc]",
        `  address = ${JSON.stringify(`${address}.ttrpc`)}`,
        `[plugins."io.containerd.internal.v1.opt"]`,
        `  path = ${JSON.stringify(path.join(d, "opt"))}`,
        `[plugins."io.containerd.nri.v1.nri"]`,
        `  plugin_path = ${JSON.stringify(path.join(d, "nri-plugins"))}`,
        `  plugin_config_path = ${JSON.stringify(path.join(d, "nri-conf.d"))}`,
        `[plugins."io.containerd.cri.v1.runtime"]`,
        "  restrict_oom_score_adj = true",
        `[plugins."io.containerd.grpc.v1.cri"]`,
        '  stream_server_address = "127.0.0.1"',
        '  stream_server_port = "0"',
        "",
      ].join("\n"),
    );
    const cfg = {
      nri: { socket: path.join(d, "nri", "nri.sock") },
      containerd: { address },
      api: { socket: path.join(d, "run", "agent.sock") },
      policy: { source: "files", dir: path.join(d, "policies") },
      metrics: { listen: "" },
    };
    writeYaml(path.join(d, "agent.yaml"), cfg);
    agentSocket = cfg.api.socket;
    const r = runInstall([
      "--host-root=/",
      `--agent-config=${path.join(d, "agent.yaml")}`,
      `--verifier-binary=${SEA}`,
      `--bin-dir=${path.join(d, "verifier", "bin")}`,
      `--verifier-config=${path.join(d, "verifier", "agent.yaml")}`,
      `--config-dropin=${path.join(d, "conf.d", "tollgate.toml")}`,
      `--containerd-config=${path.join(d, "config.toml")}`,
      "--nri-request-timeout=2s",
      "--output=json",
    ]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out);
    expect(report.import.state).toBe("imported");
    expect(report.dropin.changed).toBe(true);
    expect(report.restart).toMatchObject({ strategy: "none", done: false });
    // The drop-in kept the main config's NRI plugin paths (containerd merges per section).
    expect(report.dropin.text).toContain(path.join(d, "nri-plugins"));

    // containerd's environment: no node on PATH; the verifier finds its configuration
    // through TOLLGATE_CONFIG because this test cannot write the real /etc/tollgate.
    containerd = startDaemon("containerd", tools.containerd, ["--config", path.join(d, "config.toml")], {
      env: {
        PATH: `${sidBin}:/usr/sbin:/sbin`,
        TOLLGATE_CONFIG: path.join(d, "verifier", "agent.yaml"),
      },
      logDir: d,
    });
    daemons.push(containerd);
    await waitFor("containerd socket", () => existsSync(address), 60_000);
    await waitFor("ctr version", () => ctr(["version"]).status === 0, 60_000);
  });

  afterAll(async () => {
    await containerd?.stop("SIGTERM", 15_000);
    for (const m of mountsUnder(dir())) spawnSync("umount", ["-l", m]);
  });

  it("containerd starts with the drop-in and lists the bindir verifier and NRI plugins as ok", () => {
    const r = ctr(["plugins", "ls"]);
    expect(r.status).toBe(0);
    const row = (type: string, id: string) =>
      r.stdout.split("\n").find((l) => {
        const f = l.trim().split(/\s+/);
        return f[0] === type && f[1] === id;
      });
    expect(row("io.containerd.image-verifier.v1", "bindir")).toMatch(/\sok\s*$/);
    expect(row("io.containerd.nri.v1", "nri")).toMatch(/\sok\s*$/);
    expect(existsSync(path.join(dir(), "nri", "nri.sock"))).toBe(true);
  });

  it("the agent registers on the NRI socket the drop-in names", async () => {
    await startAgent("agent-b", path.join(dir(), "agent.yaml"));
    await waitFor(
      "NRI registration",
      async () => (await agentStatus(agentSocket)).nri.state === "registered",
      60_000,
    );
  });

  it("pulls through containerd run the installed verifier: signed allowed, unsigned blocked with the reason", () => {
    const ok = ctr(["-n", "k8s.io", "image", "pull", "--plain-http", signed.ref]);
    expect(ok.stderr + ok.stdout).not.toMatch(/blocked|rejected/);
    expect(ok.status).toBe(0);
    const no = ctr(["-n", "k8s.io", "image", "pull", "--plain-http", unsigned.ref]);
    expect(no.status).not.toBe(0);
    expect(no.stderr).toMatch(
      /verifier 50-tollgate rejected image \(exit code 1\): tollgate: denied .*installer-unsigned:v1/,
    );
    const log = readFileSync(containerd.logFile, "utf8");
    expect(log).not.toMatch(/image verifier directory .* does not exist|no image verifier binaries found/);
  });
});
