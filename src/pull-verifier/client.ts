// Thin client of the agent's local API (node:http over the unix socket).
import http from "node:http";
import type { PullVerdictRequest, PullVerdictResponse } from "../agent-api/types.js";

export type AgentAnswer =
  | { kind: "answer"; response: PullVerdictResponse }
  /** Nobody is listening (no socket, connection refused): verify in-process. */
  | { kind: "unreachable"; message: string }
  /** The agent is there but did not answer usefully in time: apply the failure policy. */
  | { kind: "failed"; message: string };

const MAX_RESPONSE_BYTES = 256 * 1024;
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
    const r = http.request(
      {
        socketPath,
        path: "/v1/pull-verdict",
        method: "POST",
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
        agent: false,
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
