// Azure Container Registry end to end on the real containerd: an ACR double (its
// /oauth2/exchange and /oauth2/token over HTTPS with a test CA, before a real docker-registry
// with token auth) holds signed and unsigned images; kubelet hands containerd an ACR refresh
// token as its ACR credential provider does; the agent gets its own access through the azure
// credential provider — workload identity (the federated token file the AKS webhook projects)
// against a Microsoft Entra double — and pulls and creates are decided by the signatures.
// Restarted with a wrong client secret in front of the chain, the failure policy decides and
// the reason says authentication failed. No secret appears in anything the agent writes or serves.
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import type { AgentStatus } from "../src/agent-api/types.js";
import { agentGet } from "../src/cli/agent-client.js";
import { type AzureWorld, startAzureWorld } from "../test/support/azure-doubles.js";
import { pushBusyboxImage } from "../test/support/images.js";
import { type Daemon, startDaemon, waitFor } from "../test/support/procs.js";
import { type CosignKeys, cosignGenerateKeyPair, cosignSign } from "../test/support/signing.js";
import { repoRoot, tools } from "../test/support/tools.js";
import { cosignPolicyDoc, startAgentNode } from "./lib/agent-node.js";
import type { Containerd } from "./lib/containerd.js";
import { type CriError, criErrorOf } from "./lib/cri.js";

const run = promisify(execFile);
const ACR_USER = "00000000-0000-0000-0000-000000000000";
const WRONG_SECRET = `wrong~${Date.now().toString(36)}-azure-secret`;

let work: string;
let w: AzureWorld;
let ctrd: Containerd;
let configPath: string;
let apiSocket: string;
let key: CosignKeys;
let kubeletRefreshToken: string;
const agents: Daemon[] = [];
const criErrors: string[] = [];
let podSeq = 0;

const img = (n: string) => `${w.acr.host}/priv/${n}:v1`;

async function getText(p: string): Promise<string> {
  const { body } = await agentGet(apiSocket, p);
  return typeof body === "string" ? body : JSON.stringify(body);
}

/** A CRI call's error (kept for the secret scan), or undefined when it succeeded. */
async function cri(p: Promise<unknown>): Promise<CriError | undefined> {
  const e = await criErrorOf(p);
  if (e) criErrors.push(e.details);
  return e;
}

const pull = (ref: string) =>
  cri(ctrd.cri.pullImage(ref, { auth: { username: ACR_USER, password: kubeletRefreshToken } }));

async function create(ref: string): Promise<CriError | undefined> {
  podSeq++;
  const pod = await ctrd.cri.runPodSandbox({ name: `p${podSeq}`, namespace: "apps", uid: `uid-${podSeq}` });
  return cri(ctrd.cri.createContainer(pod, { name: `c${podSeq}`, image: ref }));
}

function decisions(): Array<Record<string, unknown>> {
  return agents
    .flatMap((a) => readFileSync(a.logFile, "utf8").split("\n"))
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((r) => r.audit === true);
}

/** Starts the agent with `env` added (the Azure variables a pod would have). */
async function startAgent(name: string, env: Record<string, string>): Promise<Daemon> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("AZURE_")));
  const agent = startDaemon(
    name,
    process.execPath,
    [path.join(repoRoot, "dist", "tollgate.mjs"), "agent", "--config", configPath],
    { logDir: work, env: { ...clean, ...env } },
  );
  agents.push(agent);
  await waitFor(
    `${name} registered with NRI`,
    async () =>
      existsSync(apiSocket) &&
      (JSON.parse(await getText("/v1/status")) as AgentStatus).nri.state === "registered",
    60_000,
  );
  return agent;
}

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), "tollgate-e2e-azure-"));
  execFileSync(process.execPath, [path.join(repoRoot, "scripts", "build.mjs")], {
    cwd: repoRoot,
    stdio: "pipe",
  });
  w = await startAzureWorld(path.join(work, "azure"));
  // What kubelet's ACR credential provider hands containerd for the node's identity.
  kubeletRefreshToken = w.acr.refreshTokenFor(w.managedIdentity.objectId);
  key = await cosignGenerateKeyPair(path.join(work, "key"));
  for (const n of ["signed-a", "unsigned-a", "signed-w"]) {
    const p = pushBusyboxImage(w.acr.registry.adminHost, `priv/${n}`, "v1", { marker: `azure-${n}` });
    if (n.startsWith("signed")) await cosignSign({ ref: p.pinned, keyDir: key });
  }
  const policyDir = path.join(work, "policies");
  mkdirSync(policyDir);
  writeFileSync(
    path.join(policyDir, "policies.yaml"),
    stringify(cosignPolicyDoc("strict", key.publicKeyPem, { failurePolicy: "Closed" })),
  );
  const node = await startAgentNode({
    work,
    policyDir,
    nriTimeoutMs: 5000,
    perVerifierTimeout: "10s",
    defaultPolicy: "strict",
    pullVerifierTimeoutMs: 8000,
    // containerd and the agent both reach the ACR double over https, trusting the test CA.
    registryCertsDir: w.hostsDir,
  });
  ({ ctrd, apiSocket, configPath } = node);
  const cfg = parse(readFileSync(configPath, "utf8")) as Record<string, Record<string, unknown>>;
  cfg.registry = {
    ...cfg.registry,
    credentialProviders: [
      {
        name: "acr",
        type: "azure",
        hosts: [w.acr.host],
        sources: ["environment", "workloadIdentity"],
        authorityHost: w.entra.authorityHost,
        caFiles: [w.ca.caFile],
      },
      { name: "nothing-else", type: "anonymous" },
    ],
  };
  writeFileSync(configPath, stringify(cfg));
  // As the workload identity webhook sets up the pod.
  await startAgent("agent-workload-identity", {
    AZURE_TENANT_ID: w.tenantId,
    AZURE_CLIENT_ID: w.workload.clientId,
    AZURE_FEDERATED_TOKEN_FILE: w.workload.tokenFile,
  });
}, 300_000);

afterAll(async () => {
  for (const a of agents) await a.stop();
  await ctrd?.stop();
  await w?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("Azure Container Registry through Microsoft Entra", () => {
  it("(c) workload identity: signed pulls and runs, unsigned is denied as unsigned", async () => {
    expect(await pull(img("signed-a"))).toBeUndefined();
    expect(await create(img("signed-a"))).toBeUndefined();
    const denied = await pull(img("unsigned-a"));
    expect(denied?.details).toContain(`tollgate: denied ${img("unsigned-a")}`);
    expect(denied?.details).not.toMatch(/authenticat/i);
    // Entra saw the federated assertion; ACR one exchange; the registry tokens came from the refresh token.
    expect(w.entra.requests.filter((r) => r.kind === "token")).toEqual([
      expect.objectContaining({ clientId: w.workload.clientId, ok: true }),
    ]);
    expect(w.acr.exchanges).toEqual([{ tenant: w.tenantId, ok: true }]);
    expect(w.acr.tokens.filter((t) => t.grant === "refresh_token").length).toBeGreaterThan(0);
    const st = JSON.parse(await getText("/v1/status")) as AgentStatus;
    expect(st.credentialProviders?.[0]).toMatchObject({ name: "acr", type: "azure", calls: 1, failures: 0 });
  });

  it("a wrong client secret first in the chain: the failure policy decides and says authentication failed", async () => {
    await agents.at(-1)!.stop();
    await startAgent("agent-wrong-secret", {
      AZURE_TENANT_ID: w.tenantId,
      AZURE_CLIENT_ID: w.sp.clientId,
      AZURE_CLIENT_SECRET: WRONG_SECRET,
      AZURE_FEDERATED_TOKEN_FILE: w.workload.tokenFile,
    });
    const signed = img("signed-w");
    const err = await pull(signed);
    expect(err?.details).toContain(`tollgate: denied ${signed}`);
    expect(err?.details).toMatch(/authentication (to \S+ )?failed/);
    expect(err?.details).not.toMatch(/unsigned|no cosign signature/i);
    // At create time too (the image put in place without a pull, as an old node would have it).
    // Asynchronously: the ACR and Entra doubles run in this process.
    const user = `${ACR_USER}:${kubeletRefreshToken}`;
    const ctrArgs = ["-a", ctrd.address, "-n", "k8s.io", "images", "pull", "--local", "--user", user];
    await run(tools.ctr, [...ctrArgs, "--hosts-dir", w.hostsDir, signed]);
    const c = await create(signed);
    expect(c?.details).toContain("code = PermissionDenied");
    expect(c?.details).toMatch(/authentication (to \S+ )?failed/);
    const d = decisions().filter((r) => r.image === signed && r.event === "create");
    expect(d.at(-1)).toMatchObject({ result: "deny", kind: "failed" });
    const st = JSON.parse(await getText("/v1/status")) as AgentStatus;
    expect(st.credentialProviders?.[0]?.lastError?.message).toMatch(
      /Microsoft Entra refused the token request \(environment: .*AADSTS7000215/,
    );
    const metrics = await getText("/metrics");
    expect(metrics).toMatch(/tollgate_registry_credential_errors_total\{provider="acr",type="azure"\} [1-9]/);
  });

  it("no secret appears in the agents' logs, status, metrics or the denial texts", async () => {
    const secrets = [...w.secrets(), WRONG_SECRET, kubeletRefreshToken];
    expect(w.entra.issued.length).toBeGreaterThan(0);
    expect(w.acr.refreshTokens.length).toBeGreaterThan(1);
    const haystacks = {
      log: agents.map((a) => readFileSync(a.logFile, "utf8")).join("\n"),
      status: await getText("/v1/status"),
      metrics: await getText("/metrics"),
      decisions: JSON.stringify(decisions()),
      cri: criErrors.join("\n"),
    };
    for (const [where, text] of Object.entries(haystacks)) {
      expect(text.length, where).toBeGreaterThan(0);
      for (const s of secrets) expect(text.includes(s), `${where} contains a secret`).toBe(false);
    }
  });
});
