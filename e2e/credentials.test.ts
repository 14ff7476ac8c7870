// Private registries end to end on the real containerd: docker-registry instances that
// require token authentication (a token server checks Basic credentials and issues signed
// JWTs, as real registries do) hold signed and unsigned images. kubelet hands containerd
// the pull credentials in PullImage; the agent finds its own through its credential
// providers: a kubelet credential provider plugin, a docker credential helper, a plugin that
// answers wrong credentials, and none at all. Signatures decide when the agent can read
// them; when it cannot, the failure policy decides and the reason says authentication
// failed. No secret appears in anything the agent writes or serves.
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import type { AgentStatus } from "../src/agent-api/types.js";
import { agentGet } from "../src/cli/agent-client.js";
import { calls, writeDockerHelper, writeKubeletPlugin } from "../test/support/credential-plugins.js";
import { pushBusyboxImage } from "../test/support/images.js";
import { type Daemon, startDaemon, waitFor } from "../test/support/procs.js";
import { type CosignKeys, cosignGenerateKeyPair, cosignSign } from "../test/support/signing.js";
import { startTokenRegistry, type TokenRegistry } from "../test/support/token-registry.js";
import { repoRoot, tools } from "../test/support/tools.js";
import { startAgentNode } from "./lib/agent-node.js";
import type { Containerd } from "./lib/containerd.js";
import { CriError } from "./lib/cri.js";

const run = promisify(execFile);

let work: string;
let reg: TokenRegistry;
let ctrd: Containerd;
let agent: Daemon | undefined;
let key: CosignKeys;
let apiSocket: string;
let podSeq = 0;
const criErrors: string[] = [];
const WRONG_PASSWORD = `wrong-${Date.now().toString(36)}-secret`;

// Hosts: [0] and [1] are two authenticated instances of one registry; each is reachable as
// 127.0.0.1:port and as localhost:port, which containerd and the agent treat as four
// registries — one per credential source under test.
let viaPlugin: string; // 127.0.0.1:P0 → kubelet plugin with the right credentials
let viaHelper: string; // localhost:P0 → docker credential helper
let viaWrong: string; // 127.0.0.1:P1 → kubelet plugin answering a wrong password
let viaNone: string; // localhost:P1 → no credentials
let kubeletLogs: string;
let wrongLogs: string;
let helperLogs: string;

async function getText(p: string): Promise<string> {
  const { body } = await agentGet(apiSocket, p);
  return typeof body === "string" ? body : JSON.stringify(body);
}

async function pull(ref: string): Promise<CriError | undefined> {
  try {
    await ctrd.cri.pullImage(ref, { auth: { username: reg.username, password: reg.password } });
    return undefined;
  } catch (e) {
    if (!(e instanceof CriError)) throw e;
    criErrors.push(e.details);
    return e;
  }
}

async function create(ref: string): Promise<CriError | undefined> {
  podSeq++;
  const pod = await ctrd.cri.runPodSandbox({ name: `p${podSeq}`, namespace: "apps", uid: `uid-${podSeq}` });
  try {
    await ctrd.cri.createContainer(pod, { name: `c${podSeq}`, image: ref });
    return undefined;
  } catch (e) {
    if (!(e instanceof CriError)) throw e;
    criErrors.push(e.details);
    return e;
  }
}

function decisions(): Array<Record<string, unknown>> {
  return readFileSync(agent!.logFile, "utf8")
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((r) => r.audit === true);
}

const names = ["signed", "unsigned"] as const;
const img = (host: string, n: string) => `${host}/priv/${n}:v1`;

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), "tollgate-e2e-creds-"));
  execFileSync(process.execPath, [path.join(repoRoot, "scripts", "build.mjs")], {
    cwd: repoRoot,
    stdio: "pipe",
  });
  reg = await startTokenRegistry(path.join(work, "registry"), 2);
  const [h0, h1] = reg.authHosts as [string, string];
  viaPlugin = h0;
  viaHelper = h0.replace("127.0.0.1", "localhost");
  viaWrong = h1;
  viaNone = h1.replace("127.0.0.1", "localhost");

  // Distinct images per credential source: verdicts are cached per digest, so a shared
  // image would be answered from the cache without asking the provider under test.
  key = await cosignGenerateKeyPair(path.join(work, "key"));
  for (const [src, tag] of [
    ["plugin", "p"],
    ["helper", "h"],
    ["wrong", "w"],
    ["none", "n"],
  ] as const) {
    for (const n of names) {
      const p = pushBusyboxImage(reg.adminHost, `priv/${n}-${tag}`, "v1", { marker: `${src}-${n}` });
      if (n === "signed") await cosignSign({ ref: p.pinned, keyDir: key });
    }
  }

  // kubelet's credential provider configuration and plugins.
  const kdir = path.join(work, "kubelet");
  kubeletLogs = path.join(kdir, "log-good");
  wrongLogs = path.join(kdir, "log-wrong");
  const response = (password: string, host: string) =>
    JSON.stringify({
      apiVersion: "credentialprovider.kubelet.k8s.io/v1",
      kind: "CredentialProviderResponse",
      cacheKeyType: "Registry",
      cacheDuration: "5m",
      auth: { [host]: { username: reg.username, password } },
    });
  writeKubeletPlugin(path.join(kdir, "bin"), "test-registry-plugin", {
    response: response(reg.password, viaPlugin),
    logDir: kubeletLogs,
  });
  writeKubeletPlugin(path.join(kdir, "bin"), "stale-plugin", {
    response: response(WRONG_PASSWORD, viaWrong),
    logDir: wrongLogs,
  });
  writeFileSync(
    path.join(kdir, "config.yaml"),
    stringify({
      apiVersion: "kubelet.config.k8s.io/v1",
      kind: "CredentialProviderConfig",
      providers: [
        {
          name: "test-registry-plugin",
          matchImages: [viaPlugin],
          defaultCacheDuration: "1m",
          apiVersion: "credentialprovider.kubelet.k8s.io/v1",
        },
        {
          name: "stale-plugin",
          matchImages: [viaWrong],
          defaultCacheDuration: "1m",
          apiVersion: "credentialprovider.kubelet.k8s.io/v1",
        },
      ],
    }),
  );
  // A docker config whose credHelpers entry sends the helper's host to docker-credential-test.
  const ddir = path.join(work, "docker");
  helperLogs = path.join(ddir, "log");
  writeDockerHelper(
    path.join(ddir, "bin"),
    "test",
    { [viaHelper]: [reg.username, reg.password] },
    helperLogs,
  );
  writeFileSync(path.join(ddir, "config.json"), JSON.stringify({ credHelpers: { [viaHelper]: "test" } }));

  const policyDir = path.join(work, "policies");
  mkdirSync(policyDir);
  writeFileSync(
    path.join(policyDir, "policies.yaml"),
    stringify({
      apiVersion: "tollgate.dev/v1alpha1",
      kind: "ImagePolicy",
      metadata: { name: "strict" },
      spec: {
        verifiers: [{ name: "cosign", cosign: { keys: [{ name: "k", pem: key.publicKeyPem }] } }],
        failurePolicy: "Closed",
      },
    }),
  );
  const node = await startAgentNode({
    work,
    policyDir,
    nriTimeoutMs: 5000,
    perVerifierTimeout: "10s",
    defaultPolicy: "strict",
    pullVerifierTimeoutMs: 8000,
  });
  ({ ctrd, apiSocket } = node);
  const cfg = parse(readFileSync(node.configPath, "utf8")) as Record<string, unknown>;
  cfg.registry = {
    credentialProviders: [
      {
        name: "kubelet",
        type: "kubelet",
        hosts: [viaPlugin, viaWrong],
        config: path.join(kdir, "config.yaml"),
        binDir: path.join(kdir, "bin"),
      },
      {
        name: "docker",
        type: "dockerConfig",
        hosts: [viaHelper],
        files: [path.join(ddir, "config.json")],
        helperDirs: [path.join(ddir, "bin")],
      },
      { name: "nothing", type: "anonymous", hosts: [viaNone] },
    ],
  };
  writeFileSync(node.configPath, stringify(cfg));
  agent = startDaemon(
    "agent",
    process.execPath,
    [path.join(repoRoot, "dist", "tollgate.mjs"), "agent", "--config", node.configPath],
    { logDir: work },
  );
  await waitFor(
    "agent registered with NRI",
    async () =>
      existsSync(apiSocket) &&
      (JSON.parse(await getText("/v1/status")) as AgentStatus).nri.state === "registered",
    60_000,
  );
}, 300_000);

afterAll(async () => {
  await agent?.stop();
  await ctrd?.stop();
  await reg?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("private registry with token auth", () => {
  it("(a) kubelet credential provider plugin: signed pulls and runs, unsigned is denied as unsigned", async () => {
    expect(await pull(img(viaPlugin, "signed-p"))).toBeUndefined();
    expect(await create(img(viaPlugin, "signed-p"))).toBeUndefined();
    const denied = await pull(img(viaPlugin, "unsigned-p"));
    expect(denied?.details).toContain(`tollgate: denied ${img(viaPlugin, "unsigned-p")}`);
    expect(denied?.details).not.toMatch(/authenticat/i);
    // The plugin was asked as kubelet asks; its Registry-wide answer served both images.
    const reqs = calls(kubeletLogs).map((s) => JSON.parse(s) as Record<string, unknown>);
    expect(reqs.length).toBeGreaterThanOrEqual(1);
    expect(reqs[0]).toMatchObject({ kind: "CredentialProviderRequest", image: `${viaPlugin}/priv/signed-p` });
    expect(reqs.length).toBeLessThanOrEqual(2); // the pull verifier process and the agent at most once each
  });

  it("(b) docker credential helper: signed pulls and runs, unsigned is denied as unsigned", async () => {
    expect(await pull(img(viaHelper, "signed-h"))).toBeUndefined();
    expect(await create(img(viaHelper, "signed-h"))).toBeUndefined();
    const denied = await pull(img(viaHelper, "unsigned-h"));
    expect(denied?.details).toContain(`tollgate: denied ${img(viaHelper, "unsigned-h")}`);
    expect(denied?.details).not.toMatch(/authenticat/i);
    expect(calls(helperLogs)).toContain(viaHelper);
  });

  it.each([
    ["wrong credentials (a plugin with a stale password)", () => viaWrong, "w"],
    ["no credentials", () => viaNone, "n"],
  ])("%s: the failure policy decides and says authentication failed", async (_n, host, tag) => {
    const signed = img(host(), `signed-${tag}`);
    const err = await pull(signed);
    expect(err?.details).toContain(`tollgate: denied ${signed}`);
    expect(err?.details).toMatch(/authentication failed/);
    expect(err?.details).not.toMatch(/unsigned|no cosign signature/i);
    // At create time too (the image put in place without a pull, as an old node would have it).
    // Asynchronously: the token server runs in this process.
    await run(tools.ctr, [
      "-a",
      ctrd.address,
      "-n",
      "k8s.io",
      "images",
      "pull",
      "--local",
      "--plain-http",
      "--user",
      `${reg.username}:${reg.password}`,
      signed,
    ]);
    const c = await create(signed);
    expect(c?.details).toContain("code = PermissionDenied");
    expect(c?.details).toMatch(/authentication failed/);
    const d = decisions().filter((r) => r.image === signed && r.event === "create");
    expect(d.at(-1)).toMatchObject({ result: "deny", kind: "failed" });
  });

  it("no secret appears in the agent's log, status, metrics or the denial texts", async () => {
    const secrets = [reg.password, WRONG_PASSWORD, ...reg.issuedTokens];
    expect(reg.issuedTokens.length).toBeGreaterThan(0);
    const basic = (p: string) => Buffer.from(`${reg.username}:${p}`).toString("base64");
    secrets.push(basic(reg.password), basic(WRONG_PASSWORD));
    const haystacks = {
      log: readFileSync(agent!.logFile, "utf8"),
      status: await getText("/v1/status"),
      metrics: await getText("/metrics"),
      decisions: JSON.stringify(decisions()),
      cri: criErrors.join("\n"),
    };
    const st = JSON.parse(haystacks.status) as AgentStatus;
    expect(st.credentialProviders?.map((p) => [p.name, p.type])).toEqual([
      ["kubelet", "kubelet"],
      ["docker", "dockerConfig"],
      ["nothing", "anonymous"],
    ]);
    expect(st.credentialProviders?.[0]?.calls).toBeGreaterThanOrEqual(2);
    for (const [where, text] of Object.entries(haystacks)) {
      expect(text.length, where).toBeGreaterThan(0);
      for (const s of secrets) expect(text.includes(s), `${where} contains a secret`).toBe(false);
    }
  });
});
