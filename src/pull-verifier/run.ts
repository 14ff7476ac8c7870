// The pull verifier: containerd runs it once per pull (bindir contract, args.ts). It asks
// the agent over the local socket; when nobody listens there it verifies in-process from
// the on-disk agent configuration; when that is impossible it applies the configured
// failure policy. The common path (settings from the installer's JSON sidecar or the
// environment, ask the agent, print its answer) loads little more than node:net; the YAML
// configuration loader and the engine are in ./slow.js, imported only when that is not enough.

import { errorMessage, UsageError } from "../base/errors.js";
import type { PullVerdictRequest } from "../agent-api/types.js";
import type { AgentConfig } from "../config/agent.js";
import { capReason, parseArgs, parseDescriptor, readStdin, type VerifierArgs } from "./args.js";
import { askAgent } from "./client.js";
import { readSidecar } from "./sidecar.js";

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
/**
 * The agent settings' defaults the fast path needs, restated so it does not load the settings
 * table (test/config/settings.test.ts checks they equal the table's).
 */
export const FAST_PATH_DEFAULTS = {
  /** pullVerifier.timeoutMs */
  timeoutMs: 8000,
  /** api.socket */
  socket: "/run/tollgate/agent.sock",
  /** Where the agent's configuration is when TOLLGATE_CONFIG is unset (src/config/agent.ts). */
  configPath: "/etc/tollgate/agent.yaml",
} as const;
const {
  timeoutMs: DEFAULT_TIMEOUT_MS,
  socket: DEFAULT_SOCKET,
  configPath: DEFAULT_CONFIG_PATH,
} = FAST_PATH_DEFAULTS;

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
    const m = e instanceof UsageError ? e.message : `reading input: ${errorMessage(e)}`;
    diag("bad invocation", { error: m });
    return answer(false, `tollgate: cannot verify: ${m}`, EXIT_ERROR);
  }

  // The YAML configuration is read only when needed: the socket path and time budget come
  // from the environment or the installer's sidecar (sidecar.ts) when they can.
  let cfg: AgentConfig | undefined;
  let cfgError: string | undefined;
  const slow = () => import("./slow.js");
  const loadCfg = async (): Promise<AgentConfig | undefined> => {
    if (cfg || cfgError) return cfg;
    try {
      const { loadConfig } = await slow();
      cfg = await loadConfig({ env: io.env, argv: [] });
    } catch (e) {
      cfgError = errorMessage(e);
    }
    return cfg;
  };
  const envTimeout = Number(io.env.TOLLGATE_VERIFY_TIMEOUT_MS);
  let socket = io.env.TOLLGATE_AGENT_SOCKET;
  let budget: number | undefined;
  if (!socket) {
    const side = readSidecar(io.env.TOLLGATE_CONFIG || DEFAULT_CONFIG_PATH);
    if (side.ok) {
      // The same precedence as loadConfig: $TOLLGATE_API_SOCKET over the file's api.socket.
      socket = io.env.TOLLGATE_API_SOCKET || side.settings.socket;
      budget = side.settings.timeoutMs;
    } else {
      const c = await loadCfg();
      socket = c?.api.socket ?? DEFAULT_SOCKET;
      budget = c?.pullVerifier.timeoutMs;
    }
  }
  const total = Number.isFinite(envTimeout) && envTimeout > 0 ? envTimeout : (budget ?? DEFAULT_TIMEOUT_MS);
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
      const { verifyInProcess } = await slow();
      const d = await verifyInProcess(config, req, { deadline, log: diag });
      return answer(d.allowed, d.message);
    } catch (e) {
      diag("in-process verification impossible", { error: errorMessage(e) });
      return failurePolicy(
        config,
        req,
        `agent unreachable and in-process verification impossible: ${errorMessage(e)}`,
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
      const { ExemptImages } = await slow();
      const by = new ExemptImages(c.policy.exemptImages).match(r.name, r.digest);
      if (by !== undefined)
        return answer(
          true,
          `tollgate: allowed (exempt) ${r.name} (${r.digest}): image matches exempt pattern "${by}"`,
        );
      const { PullScope } = await import("../decision/pull-scope.js");
      const scope = new PullScope(c.policy);
      const nsBy = scope.exemptNamespaceImage(r.name, r.digest);
      if (nsBy !== undefined)
        return answer(
          true,
          `tollgate: allowed (exempt) ${r.name} (${r.digest}): ${scope.exemptNamespaceReason(nsBy)}`,
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
