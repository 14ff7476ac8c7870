// Thin client of the agent's local API (node:http over the unix socket).
import type http from "node:http";
import type { PullVerdictRequest, PullVerdictResponse } from "../agent-api/types.js";

export type AgentAnswer =
  | { kind: "answer"; response: PullVerdictResponse }
  /** Nobody is listening (no socket, connection refused): verify in-process. */
  | { kind: "unreachable"; message: string }
  /** The agent is there but did not answer usefully in time: apply the failure policy. */
  | { kind: "failed"; message: string };

const MAX_RESPONSE_BYTES = 256 * 1024;

// node:http through getBuiltinModule, not an ES import: importing a builtin as an ES module
// builds its namespace from every export, which runs node:http's lazy getters and loads the
// bundled undici, ~60 ms of every pull's start-up (`node dist/tollgate-verify.mjs`; the SEA
// is CommonJS and was not affected). Measured in bench/ (pull-verifier start-up).
let httpModule: typeof http | undefined;
function nodeHttp(): typeof http {
  httpModule ??= process.getBuiltinModule("node:http");
  return httpModule;
}
const UNREACHABLE = new Set(["ENOENT", "ECONNREFUSED", "ENOTSOCK", "ECONNRESET_BEFORE_CONNECT"]);

export function askAgent(
  socketPath: string,
  req: PullVerdictRequest,
  timeoutMs: number,
): Promise<AgentAnswer> {
  return new Promise((resolve) => {
    const body = JSON.stringify(req);
    let connected = false;
    let settled = false;
    const finish = (a: AgentAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      r.destroy();
      resolve(a);
    };
    const timer = setTimeout(
      () =>
        finish(
          connected
            ? { kind: "failed", message: `agent did not answer within ${timeoutMs} ms` }
            : { kind: "unreachable", message: `could not connect to ${socketPath} within ${timeoutMs} ms` },
        ),
      timeoutMs,
    );
    const r = nodeHttp().request(
      {
        socketPath,
        path: "/v1/pull-verdict",
        method: "POST",
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
        // No http.Agent: one request per process, and an Agent works out a TLS server name
        // for every request (net.isIP on "localhost" compiles Node's IPv6 pattern, ~13 ms).
        createConnection: () => process.getBuiltinModule("node:net").createConnection(socketPath),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size > MAX_RESPONSE_BYTES) finish({ kind: "failed", message: "agent response too large" });
          else chunks.push(c);
        });
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          if (res.statusCode !== 200) {
            return finish({
              kind: "failed",
              message: `agent answered HTTP ${res.statusCode}: ${text.slice(0, 500).trim()}`,
            });
          }
          try {
            const v = JSON.parse(text) as PullVerdictResponse;
            if (typeof v.allowed !== "boolean" || typeof v.message !== "string") throw new Error("bad shape");
            finish({ kind: "answer", response: v });
          } catch {
            finish({ kind: "failed", message: "agent answered with malformed JSON" });
          }
        });
        res.on("error", (e) => finish({ kind: "failed", message: e.message }));
      },
    );
    r.on("socket", (s) => s.on("connect", () => (connected = true)));
    r.on("error", (e: NodeJS.ErrnoException) => {
      const code = e.code ?? "";
      if (!connected && (UNREACHABLE.has(code) || code === "EACCES")) {
        finish({ kind: "unreachable", message: `${socketPath}: ${code}` });
      } else finish({ kind: "failed", message: `agent connection failed: ${e.message}` });
    });
    r.end(body);
  });
}
