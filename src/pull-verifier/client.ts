// Thin client of the agent's local API: one HTTP/1.1 request over the unix socket, written
// and read by ./http1.ts on a bare node:net socket. node:http would cost every pull ~4 ms of
// start-up for this one request (bench: pull verifier start-up).
import type { PullVerdictRequest, PullVerdictResponse } from "../agent-api/types.js";
import { readResponse, renderPost } from "./http1.js";

export type AgentAnswer =
  | { kind: "answer"; response: PullVerdictResponse }
  /** Nobody is listening (no socket, connection refused): verify in-process. */
  | { kind: "unreachable"; message: string }
  /** The agent is there but did not answer usefully in time: apply the failure policy. */
  | { kind: "failed"; message: string };

/** Headers included; the agent's answer is a few hundred bytes. */
export const MAX_RESPONSE_BYTES = 256 * 1024;

const UNREACHABLE = new Set(["ENOENT", "ECONNREFUSED", "ENOTSOCK", "EACCES"]);

export function askAgent(
  socketPath: string,
  req: PullVerdictRequest,
  timeoutMs: number,
): Promise<AgentAnswer> {
  return new Promise((resolve) => {
    // node:net through getBuiltinModule, not an ES import: importing a builtin as an ES module
    // builds its namespace from every export (for node:http that loaded the bundled undici,
    // ~60 ms of every pull of the .mjs build).
    const socket = process.getBuiltinModule("node:net").createConnection(socketPath);
    const chunks: Buffer[] = [];
    let size = 0;
    // Parse again only when the bytes received have doubled (and at the end): a response
    // dribbled in tiny pieces costs linear, not quadratic, work.
    let parseAt = 0;
    let connected = false;
    let settled = false;
    const finish = (a: AgentAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
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
    const read = (ended: boolean) => {
      const r = readResponse(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks), ended);
      if (r.kind === "incomplete") return;
      if (r.kind === "malformed") return finish({ kind: "failed", message: `agent response: ${r.message}` });
      const { status, body } = r.response;
      const text = body.toString("utf8");
      if (status !== 200) {
        return finish({
          kind: "failed",
          message: `agent answered HTTP ${status}: ${text.slice(0, 500).trim()}`,
        });
      }
      try {
        const v = JSON.parse(text) as PullVerdictResponse;
        if (typeof v.allowed !== "boolean" || typeof v.message !== "string") throw new Error("bad shape");
        finish({ kind: "answer", response: v });
      } catch {
        finish({ kind: "failed", message: "agent answered with malformed JSON" });
      }
    };
    socket.on("connect", () => {
      connected = true;
      // write, not end: the agent answers and closes (`Connection: close`).
      socket.write(renderPost("/v1/pull-verdict", JSON.stringify(req)));
    });
    socket.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_RESPONSE_BYTES) return finish({ kind: "failed", message: "agent response too large" });
      chunks.push(c);
      if (size >= parseAt) {
        parseAt = size * 2;
        read(false);
      }
    });
    socket.on("end", () => read(true));
    socket.on("close", () =>
      finish({ kind: "failed", message: "agent closed the connection without a complete response" }),
    );
    socket.on("error", (e: NodeJS.ErrnoException) => {
      const code = e.code ?? "";
      if (!connected && UNREACHABLE.has(code))
        finish({ kind: "unreachable", message: `${socketPath}: ${code}` });
      else finish({ kind: "failed", message: `agent connection failed: ${e.message}` });
    });
  });
}
