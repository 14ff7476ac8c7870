// The pull verifier: containerd runs it once per pull (bindir contract, args.ts). It asks
// the agent over the local socket; when nobody listens there it verifies in-process from
// the on-disk agent configuration; when that is impossible it applies the configured
// failure policy. The engine is imported lazily, only on the fallback path, so the common
// path (ask the agent) loads little more than node:http.

import type { PullVerdictRequest } from "../agent/api-types.js";
import type { AgentConfig } from "../agent/config.js";
import { capReason, parseArgs, parseDescriptor, readStdin, UsageError, type VerifierArgs } from "./args.js";
import { askAgent } from "./client.js";

export interface RunIO {
  argv: string[];
  stdin: NodeJS.ReadableStream;
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  env: NodeJS.ProcessEnv;
}

export const EXIT_ALLOW = 0;
export const EXIT_DENY = 1;
export const EXIT_ERROR = 2;
const DEFAULT_TIMEOUT_MS = 8000;
const DEFAULT_SOCKET = "/run/tollgate/agent.sock";

export async function run(io: RunIO): Promise<number> {
  const started = Date.now();
  const diag = (msg: string, extra: Record<string, unknown> = {}) =>
    io.stderr(
      `${JSON.stringify({ time: new Date().toISOString(), component: "tollgate-verify", msg, ...extra })}\n`,
    );
  const answer = (allowed: boolean, message: string, code = allowed ? EXIT_ALLOW : EXIT_DENY): number => {
    io.stdout(`${capReason(message)}\n`);
    return code;
  };

  // `--version` (alone): which Tollgate and which embedded Node.js runtime a node has installed.
  if (io.argv.length === 1 && (io.argv[0] === "--version" || io.argv[0] === "-version")) {
    const { default: pkg } = await import("../../package.json");
    io.stdout(`tollgate-verify ${pkg.version} (node ${process.version})\n`);
    return EXIT_ALLOW;
  }

  let args: VerifierArgs;
  let req: PullVerdictRequest;
  try {
    args = parseArgs(io.argv);
    const text = await readStdin(io.stdin, 2000);
    req = { name: args.name, digest: args.digest, descriptor: parseDescriptor(text, args.digest) };
  } catch (e) {
    // A broken contract is not an allow: deny with the reason.
    const m = e instanceof UsageError ? e.message : `reading input: ${(e as Error).message}`;
    diag("bad invocation", { error: m });
    return answer(false, `tollgate: cannot verify: ${m}`, EXIT_ERROR);
  }

  // The config file is read only when needed: the socket path can come from the environment.
  let cfg: AgentConfig | undefined;
  let cfgError: string | undefined;
  const loadCfg = async (): Promise<AgentConfig | undefined> => {
    if (cfg || cfgError) return cfg;
    try {
      const { loadConfig } = await import("../agent/config.js");
      cfg = await loadConfig({ env: io.env, argv: [] });
    } catch (e) {
      cfgError = (e as Error).message;
    }
    return cfg;
  };
  const envTimeout = Number(io.env.TOLLGATE_VERIFY_TIMEOUT_MS);
  let socket = io.env.TOLLGATE_AGENT_SOCKET;
  if (!socket) socket = (await loadCfg())?.api.socket ?? DEFAULT_SOCKET;
  const total =
    Number.isFinite(envTimeout) && envTimeout > 0
      ? envTimeout
      : (cfg?.pullVerifier.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const deadline = started + total;

  const a = await askAgent(socket, req, Math.max(100, deadline - Date.now()));
  if (a.kind === "answer") {
    diag("agent answered", { allowed: a.response.allowed, ms: Date.now() - started });
    return answer(a.response.allowed, a.response.message);
  }
  diag(a.kind === "unreachable" ? "agent unreachable, verifying in-process" : "agent failed", {
    error: a.message,
  });

  const config = await loadCfg();
  if (a.kind === "unreachable" && config) {
    try {
      const { verifyInProcess } = await import("./fallback.js");
      const d = await verifyInProcess(config, req, { deadline, log: diag });
      return answer(d.allowed, d.message);
    } catch (e) {
      diag("in-process verification impossible", { error: (e as Error).message });
      return failurePolicy(
        config,
        req,
        `agent unreachable and in-process verification impossible: ${(e as Error).message}`,
      );
    }
  }
  return failurePolicy(
    config,
    req,
    config ? a.message : `${a.message}; configuration: ${cfgError ?? "unavailable"}`,
  );

  async function failurePolicy(
    c: AgentConfig | undefined,
    r: PullVerdictRequest,
    why: string,
  ): Promise<number> {
    if (c) {
      const { ExemptImages } = await import("../agent/exempt.js");
      const by = new ExemptImages(c.policy.exemptImages).match(r.name, r.digest);
      if (by !== undefined)
        return answer(
          true,
          `tollgate: allowed (exempt) ${r.name} (${r.digest}): image matches exempt pattern "${by}"`,
        );
    }
    const fp = c?.pullVerifier.failurePolicy ?? "Closed";
    const open = fp === "Open";
    return answer(
      open,
      `tollgate: ${open ? "allowed (failure policy Open)" : "denied"} ${r.name} (${r.digest}): ${why} (pull verifier failure policy ${fp})`,
      open ? EXIT_ALLOW : EXIT_ERROR,
    );
  }
}
