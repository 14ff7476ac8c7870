// A node as the agent e2e tests need it: a private containerd whose bin_dir holds our pull
// verifier (as the installer would put it) and whose environment points the verifier at an
// agent configuration with the file policy source. The agent process is started by each
// test file (they differ in how they watch and restart it; startAgentProcess is the plain way).
import { chmodSync, existsSync, writeFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { stringify } from "yaml";
import type { AgentStatus } from "../../src/agent-api/types.js";
import { type Daemon, startDaemon, waitFor } from "../../test/support/procs.js";
import { shippedAgentNodeFlags } from "../../test/support/shipped.js";
import { repoRoot } from "../../test/support/tools.js";
import { type Containerd, DEFAULT_SANDBOX_IMAGE, startContainerd } from "./containerd.js";

export interface AgentNodeOptions {
  /** Working directory of the test; the agent socket and config are created under it. */
  work: string;
  policyDir: string;
  nriTimeoutMs: number;
  perVerifierTimeout: string;
  defaultPolicy: string;
  /** Added to the pinned sandbox image, which is always exempt. */
  exemptImages?: string[];
  exemptNamespaces?: string[];
  pullVerifierTimeoutMs: number;
  /**
   * A certs.d tree (hosts.toml per registry) used by containerd's CRI pulls and by the
   * agent's registry client alike, e.g. to mirror docker.io to the loopback registry.
   */
  registryCertsDir?: string;
  /** Extra top-level sections of the agent configuration (e.g. `gate`), added to the ones below. */
  agentConfig?: Record<string, Record<string, unknown>>;
  /**
   * A whole agent configuration (e.g. an overlay's) used instead of the file-source one;
   * only the node-specific sockets (NRI, containerd, agent API) and registryCertsDir are filled in.
   */
  wholeAgentConfig?: Record<string, Record<string, unknown>>;
}

export interface AgentNode {
  ctrd: Containerd;
  configPath: string;
  apiSocket: string;
}

export async function startAgentNode(o: AgentNodeOptions): Promise<AgentNode> {
  const apiSocket = path.join(o.work, "run", "agent.sock");
  const configPath = path.join(o.work, "agent.yaml");
  const ctrd = await startContainerd({
    nriRequestTimeout: `${o.nriTimeoutMs / 1000}s`,
    perVerifierTimeout: o.perVerifierTimeout,
    env: { TOLLGATE_CONFIG: configPath },
    ...(o.registryCertsDir
      ? {
          extraToml: `\n[plugins."io.containerd.cri.v1.images".registry]\n  config_path = ${JSON.stringify(o.registryCertsDir)}\n`,
        }
      : {}),
  });
  const c = o.wholeAgentConfig;
  writeFileSync(
    configPath,
    stringify(
      c
        ? {
            ...c,
            nri: { ...c.nri, socket: ctrd.nriSocket },
            containerd: { ...c.containerd, address: ctrd.address },
            api: { ...c.api, socket: apiSocket },
            ...(o.registryCertsDir ? { registry: { ...c.registry, certsDir: o.registryCertsDir } } : {}),
          }
        : {
            nri: { socket: ctrd.nriSocket, pluginName: "tollgate", pluginIndex: "10" },
            containerd: { address: ctrd.address },
            api: { socket: apiSocket },
            policy: {
              source: "files",
              dir: o.policyDir,
              defaultPolicy: o.defaultPolicy,
              ...(o.exemptNamespaces ? { exemptNamespaces: o.exemptNamespaces } : {}),
              exemptImages: [DEFAULT_SANDBOX_IMAGE, ...(o.exemptImages ?? [])],
            },
            pullVerifier: { mode: "any-policy-in-use", timeoutMs: o.pullVerifierTimeoutMs },
            ...(o.registryCertsDir ? { registry: { certsDir: o.registryCertsDir } } : {}),
            metrics: { listen: "127.0.0.1:0" },
            log: { level: "info" },
            ...o.agentConfig,
          },
    ),
  );
  // The verifier binary, as an installer would put it into bin_dir.
  const verifier = path.join(ctrd.binDir, "50-tollgate");
  writeFileSync(
    verifier,
    `#!/bin/sh\nexec ${process.execPath} ${path.join(repoRoot, "dist", "tollgate-verify.mjs")} "$@"\n`,
  );
  chmodSync(verifier, 0o755);
  return { ctrd, configPath, apiSocket };
}

/** GET on the agent's root-only local API socket (a fresh connection each time: no keep-alive reuse). */
export function agentApiGet(socket: string, p: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const r = http.request({ socketPath: socket, path: p, agent: false, timeout: 5000 }, (res) => {
      let b = "";
      res.on("data", (c) => (b += c));
      res.on("end", () => resolve(b));
    });
    r.on("error", reject);
    r.end();
  });
}

/** GET /v1/status on the agent's root-only socket. */
export async function agentStatus(apiSocket: string): Promise<AgentStatus> {
  return JSON.parse(await agentApiGet(apiSocket, "/v1/status")) as AgentStatus;
}

/** Starts the built agent (dist/tollgate.mjs) on `node` and waits until NRI registered it. */
export async function startAgentProcess(
  node: AgentNode,
  logDir: string,
  timeoutMs = 60_000,
  opts: { fifoStdout?: boolean } = {},
): Promise<Daemon> {
  const agent = startDaemon(
    "agent",
    process.execPath,
    // As the DaemonSet runs it (its Node flags change the agent's memory, e2e/hostile-load.test.ts).
    [
      ...shippedAgentNodeFlags(),
      path.join(repoRoot, "dist", "tollgate.mjs"),
      "agent",
      "--config",
      node.configPath,
    ],
    { logDir, fifoStdout: opts.fifoStdout },
  );
  await waitFor(
    "agent registered with NRI",
    async () => existsSync(node.apiSocket) && (await agentStatus(node.apiSocket)).nri.state === "registered",
    timeoutMs,
  );
  return agent;
}

/** An ImagePolicy with one cosign key verifier (`spec` overrides or adds fields). */
export function cosignPolicyDoc(name: string, publicKeyPem: string, spec: Record<string, unknown> = {}) {
  return {
    apiVersion: "tollgate.dev/v1alpha1",
    kind: "ImagePolicy",
    metadata: { name },
    spec: {
      verifiers: [{ name: "cosign", cosign: { keys: [{ name: "k", pem: publicKeyPem }] } }],
      cache: { positiveTTLSeconds: 600, negativeTTLSeconds: 600 },
      ...spec,
    },
  };
}
