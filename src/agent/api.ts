// The agent's local API: JSON over HTTP on a unix socket that only root can use (the
// socket is 0600 inside a 0700 directory). Also serves /metrics, /healthz, /readyz on an
// optional TCP listener — and nothing else there: /v1/status names exemptions, every
// tenant's policies and non-compliant pods, so it is served on the root-only socket only.
// node:http only, so the pull verifier's client stays tiny.
import { descriptorFromJson } from "../base/descriptor.js";
import { isDigest } from "../base/digest.js";
import { errorMessage } from "../base/errors.js";
import { chmodSync, existsSync, lstatSync, mkdirSync, unlinkSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import type { AgentStatus, PullVerdictRequest, PullVerdictResponse } from "../agent-api/types.js";
import type { Decision } from "../decision/decision.js";

export const MAX_BODY_BYTES = 64 * 1024;

export interface ApiHandlers {
  pullVerdict(req: PullVerdictRequest): Promise<Decision>;
  status(): AgentStatus;
  /** Prometheus text exposition. */
  metrics?(): Promise<{ contentType: string; body: string }>;
}

export class BadRequest extends Error {}

/** Validates a pull-verdict request body (bounded, typed). */
export function parsePullVerdictRequest(v: unknown): PullVerdictRequest {
  if (v === null || typeof v !== "object" || Array.isArray(v))
    throw new BadRequest("body must be a JSON object");
  const o = v as Record<string, unknown>;
  if (typeof o.name !== "string" || o.name === "" || o.name.length > 4096)
    throw new BadRequest("name must be a non-empty string of at most 4096 characters");
  if (typeof o.digest !== "string" || !isDigest(o.digest))
    throw new BadRequest("digest must be algorithm:hex");
  const out: PullVerdictRequest = { name: o.name, digest: o.digest };
  if (o.descriptor !== undefined && o.descriptor !== null) {
    const d = descriptorFromJson(o.descriptor);
    if (!d) throw new BadRequest("descriptor must be an OCI descriptor (string mediaType, digest, integer size)");
    if (d.digest !== o.digest) throw new BadRequest("descriptor.digest does not match digest");
    out.descriptor = d;
  }
  return out;
}

export function toPullResponse(d: Decision): PullVerdictResponse {
  return { allowed: d.allowed, message: d.message, kind: d.kind, policy: d.policy, policies: d.policies };
}

async function readBody(req: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new BadRequest(`body larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function send(res: http.ServerResponse, code: number, body: unknown, type = "application/json"): void {
  const text = type === "application/json" ? `${JSON.stringify(body)}\n` : String(body);
  res.writeHead(code, { "content-type": type, "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/** One request handler for both listeners; `local` enables the tenant-revealing routes (status, pull verdicts). */
export function makeHandler(h: ApiHandlers, opts: { local: boolean }): http.RequestListener {
  return (req, res) => {
    const url = (req.url ?? "/").split("?")[0];
    const run = async () => {
      if (req.method === "GET" && url === "/healthz") return send(res, 200, { ok: true });
      if (req.method === "GET" && url === "/readyz") {
        const s = h.status();
        return send(res, s.ready ? 200 : 503, { ready: s.ready, notReady: s.notReady });
      }
      if (opts.local && req.method === "GET" && url === "/v1/status") return send(res, 200, h.status());
      if (req.method === "GET" && url === "/metrics" && h.metrics) {
        const m = await h.metrics();
        return send(res, 200, m.body, m.contentType);
      }
      if (opts.local && url === "/v1/pull-verdict") {
        if (req.method !== "POST") return send(res, 405, { error: "use POST" });
        let body: unknown;
        try {
          body = JSON.parse(await readBody(req));
        } catch (e) {
          throw e instanceof BadRequest ? e : new BadRequest("body is not valid JSON");
        }
        const d = await h.pullVerdict(parsePullVerdictRequest(body));
        return send(res, 200, toPullResponse(d));
      }
      return send(res, 404, { error: "not found" });
    };
    run().catch((e: unknown) => {
      if (res.headersSent) return res.destroy();
      if (e instanceof BadRequest) send(res, 400, { error: e.message });
      else send(res, 500, { error: errorMessage(e) });
    });
  };
}

/** Listens on a unix socket readable only by its owner; replaces a stale socket file. */
export async function listenUnix(server: http.Server, socketPath: string): Promise<void> {
  const dir = path.dirname(socketPath);
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (existsSync(socketPath)) {
    const st = lstatSync(socketPath);
    if (!st.isSocket()) throw new Error(`${socketPath} exists and is not a socket`);
    if (await socketAlive(socketPath)) throw new Error(`another process is serving ${socketPath}`);
    unlinkSync(socketPath);
  }
  // The umask closes the window between bind() and chmod().
  const old = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(socketPath, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } finally {
    process.umask(old);
  }
  chmodSync(socketPath, 0o600);
}

/**
 * The local API's unix listener, kept alive: if the socket file is removed or replaced (an
 * operator's cleanup, a tmpfs remount), the agent binds a fresh one within `checkMs` instead
 * of leaving every pull to the verifier's slower in-process fallback until a restart.
 */
export class UnixApiListener {
  private server: http.Server | undefined;
  private ino: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private checking = false;

  constructor(
    private readonly handler: http.RequestListener,
    readonly socketPath: string,
    private readonly log: { warn(o: object, msg?: string): void; info(o: object, msg?: string): void },
    private readonly checkMs = 2000,
  ) {}

  async start(): Promise<void> {
    await this.bind();
    this.timer = setInterval(() => void this.check(), this.checkMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    const s = this.server;
    this.server = undefined;
    if (s) await closeServer(s);
  }

  private async bind(): Promise<void> {
    const s = http.createServer(this.handler);
    await listenUnix(s, this.socketPath);
    this.server = s;
    this.ino = lstatSync(this.socketPath).ino;
  }

  private currentIno(): number | undefined {
    try {
      const st = lstatSync(this.socketPath);
      return st.isSocket() ? st.ino : undefined;
    } catch {
      return undefined;
    }
  }

  private async check(): Promise<void> {
    if (this.checking || this.timer === undefined) return;
    if (this.server && this.currentIno() === this.ino) return;
    this.checking = true;
    try {
      this.log.warn(
        { socket: this.socketPath },
        "local API socket was removed or replaced; binding it again",
      );
      const old = this.server;
      this.server = undefined;
      if (old) await closeServer(old);
      await this.bind();
      this.log.info({ socket: this.socketPath }, "local API listening again");
    } catch (e) {
      // Retried at the next check (e.g. another process now serves the path).
      this.log.warn(
        { socket: this.socketPath, err: errorMessage(e) },
        "cannot bind the local API socket",
      );
    } finally {
      this.checking = false;
    }
  }
}

function socketAlive(p: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(p);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

export async function listenTcp(server: http.Server, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const a = server.address();
  return typeof a === "object" && a ? a.port : port;
}

export function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections?.();
  });
}
