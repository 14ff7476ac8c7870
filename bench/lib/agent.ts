// Starts the real agent (bench/children/agent.ts → src/agent/main.ts) as a child process
// with a file policy source, and talks to its local API over the unix socket.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { stringify } from "yaml";
import type { AgentStatus, PullVerdictRequest, PullVerdictResponse } from "../../src/agent-api/types.js";
import { type Daemon, jsonLogRecords, startDaemon, waitFor } from "../../test/support/procs.js";
import { shippedAgentNodeFlags } from "../../test/support/shipped.js";

export interface BenchAgentOptions {
  /** Bundled agent entry (bundle("bench/children/agent.ts", ...)). */
  entry: string;
  dir: string;
  policies: unknown[];
  namespaces?: unknown[];
  defaultPolicy: string;
  exemptImages?: string[];
  /** NRI socket to register on; undefined = NRI disabled (pull API only). */
  nriSocket?: string;
  containerdAddress?: string;
  pullMode?: "default-policy" | "any-policy-in-use";
  logLevel?: string;
  /** registry.certsDir (containerd-style hosts.toml directory, e.g. for a mirror). */
  certsDir?: string;
  /** One process for the whole run, taken out of containerd's path with pause() (bench/children/agent.ts). */
  resident?: boolean;
}

export interface BenchAgent {
  socket: string;
  configPath: string;
  daemon: Daemon;
  status(): Promise<AgentStatus>;
  pullVerdict(req: PullVerdictRequest): Promise<PullVerdictResponse>;
  /** JSON log records the agent wrote so far. */
  records(): Array<Record<string, unknown>>;
  /** Resident agents: stops every component (NRI unregistered) but keeps the process. */
  pause(): Promise<void>;
  /** Resident agents: starts the agent again in the same process; resolves once it is registered. */
  resume(): Promise<void>;
  stop(): Promise<void>;
}

function writeYaml(file: string, docs: unknown[]): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, docs.map((d) => stringify(d)).join("---\n"));
  renameSync(tmp, file);
}

/** Writes the agent's config + policy dir under `dir` (idempotent); returns the config path. */
export function writeAgentConfig(o: Omit<BenchAgentOptions, "entry">): {
  configPath: string;
  socket: string;
} {
  const policyDir = path.join(o.dir, "policies");
  mkdirSync(policyDir, { recursive: true });
  writeYaml(path.join(policyDir, "policies.yaml"), o.policies);
  if (o.namespaces?.length) writeYaml(path.join(policyDir, "namespaces.yaml"), o.namespaces);
  const socket = path.join(o.dir, "run", "agent.sock");
  const configPath = path.join(o.dir, "agent.yaml");
  writeFileSync(
    configPath,
    stringify({
      nri: o.nriSocket
        ? { socket: o.nriSocket, pluginName: "tollgate", pluginIndex: "10" }
        : { enabled: false },
      containerd: { address: o.containerdAddress ?? path.join(o.dir, "no-containerd.sock") },
      api: { socket },
      policy: {
        source: "files",
        dir: policyDir,
        defaultPolicy: o.defaultPolicy,
        exemptImages: o.exemptImages ?? [],
      },
      pullVerifier: { mode: o.pullMode ?? "default-policy", timeoutMs: 8000 },
      metrics: { listen: "127.0.0.1:0" },
      ...(o.certsDir ? { registry: { certsDir: o.certsDir } } : {}),
      log: { level: o.logLevel ?? "info" },
    }),
  );
  return { configPath, socket };
}

export function unixJson<T>(socketPath: string, method: string, p: string, body?: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const text = body === undefined ? "" : JSON.stringify(body);
    const r = http.request(
      {
        socketPath,
        path: p,
        method,
        agent: false,
        headers:
          body === undefined
            ? {}
            : { "content-type": "application/json", "content-length": Buffer.byteLength(text) },
      },
      (res) => {
        let b = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (b += c));
        res.on("end", () => {
          if (res.statusCode !== 200) return reject(new Error(`${method} ${p}: HTTP ${res.statusCode} ${b}`));
          try {
            resolve(JSON.parse(b) as T);
          } catch (e) {
            reject(e);
          }
        });
      },
    );
    r.on("error", reject);
    r.end(text);
  });
}

export async function startBenchAgent(o: BenchAgentOptions): Promise<BenchAgent> {
  const { configPath, socket } = writeAgentConfig(o);
  // Node flags as the DaemonSet starts the agent.
  const daemon = startDaemon(
    "agent",
    process.execPath,
    [...shippedAgentNodeFlags(), o.entry, ...(o.resident ? ["--resident"] : []), "--config", configPath],
    // stdout through a FIFO and a reader, as on a node (containerd's shim), not a file.
    { logDir: o.dir, fifoStdout: true },
  );
  const status = () => unixJson<AgentStatus>(socket, "GET", "/v1/status");
  const ready = () =>
    waitFor(
      o.nriSocket ? "agent registered with NRI" : "agent API",
      async () => {
        if (daemon.child.exitCode !== null) throw new Error("agent exited");
        if (!existsSync(socket)) return false;
        const s = await status().catch(() => undefined);
        if (!s) return false;
        const policiesLoaded = s.policies.length >= o.policies.length;
        return policiesLoaded && (!o.nriSocket || s.nri.state === "registered");
      },
      60_000,
    );
  const records = () => jsonLogRecords(daemon.logFile);
  const stops = () => records().filter((r) => r.bench === "stopped").length;
  const fail = async (e: unknown): Promise<never> => {
    await daemon.stop("SIGKILL");
    throw new Error(`${(e as Error).message}\n${readFileSync(daemon.logFile, "utf8").slice(-2000)}`);
  };
  await ready().catch(fail);
  return {
    socket,
    configPath,
    daemon,
    status,
    pullVerdict: (req) => unixJson<PullVerdictResponse>(socket, "POST", "/v1/pull-verdict", req),
    records,
    async pause() {
      if (!o.resident) throw new Error("pause(): not a resident agent");
      const before = stops();
      daemon.child.kill("SIGUSR2");
      await waitFor("agent stopped", () => stops() > before, 30_000).catch(fail);
    },
    async resume() {
      if (!o.resident) throw new Error("resume(): not a resident agent");
      daemon.child.kill("SIGUSR2");
      await ready().catch(fail);
    },
    stop: () => daemon.stop("SIGTERM", 10_000),
  };
}
