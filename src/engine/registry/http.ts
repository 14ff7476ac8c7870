// One bounded HTTP exchange on node:http/https: connect + total timeouts, AbortSignal,
// and a hard cap on the body bytes actually read (Content-Length is only a hint).
// Redirects, auth and retries live in the client; this layer never follows anything.
import { errorMessage } from "../../base/errors.js";
import http from "node:http";
import https from "node:https";
import tls_ from "node:tls";
import { EngineError } from "../errors.js";
import { byteAccount } from "../limits.js";

export interface TlsOptions {
  /** Extra CA certificates (PEM); combined with Node's default roots. */
  ca?: string[];
  /** Client certificate + key (PEM). */
  cert?: string;
  key?: string;
  /** skip_verify in hosts.toml. */
  insecureSkipVerify?: boolean;
}

export interface HttpRequest {
  method: "GET" | "HEAD" | "POST";
  url: URL;
  headers: Record<string, string>;
  body?: string;
  /** Cap on the response body; reading more fails with TOO_LARGE. */
  maxBytes: number;
  signal?: AbortSignal;
  tls?: TlsOptions;
  /** What is being fetched, for error messages ("manifest sha256:…"). */
  what: string;
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  url: URL;
}

export interface Timeouts {
  /** TCP (+TLS) connect. */
  connectMs: number;
  /** Whole exchange, first byte sent to last byte read. */
  totalMs: number;
}

/** Keep-alive agents, one per distinct TLS configuration. */
export class AgentPool {
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  private readonly httpsAgents = new Map<string, https.Agent>();

  agentFor(url: URL, tls?: TlsOptions): http.Agent {
    if (url.protocol === "http:") return this.httpAgent;
    const key = JSON.stringify(tls ?? {});
    let a = this.httpsAgents.get(key);
    if (!a) {
      a = new https.Agent({
        keepAlive: true,
        maxSockets: 16,
        // Node's `ca` replaces the default roots; containerd appends to the system pool.
        ...(tls?.ca ? { ca: [...tls_.rootCertificates, ...tls.ca] } : {}),
        ...(tls?.cert ? { cert: tls.cert } : {}),
        ...(tls?.key ? { key: tls.key } : {}),
        rejectUnauthorized: !(tls?.insecureSkipVerify ?? false),
      });
      this.httpsAgents.set(key, a);
    }
    return a;
  }

  destroy(): void {
    this.httpAgent.destroy();
    for (const a of this.httpsAgents.values()) a.destroy();
    this.httpsAgents.clear();
  }
}

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPIPE",
  "ETIMEDOUT",
]);

export function performRequest(req: HttpRequest, pool: AgentPool, timeouts: Timeouts): Promise<HttpResponse> {
  const host = req.url.host;
  // Taken here, in the verification's async context: socket callbacks may run in another.
  const account = byteAccount();
  return new Promise<HttpResponse>((resolve, reject) => {
    let settled = false;
    let clientReq: http.ClientRequest | undefined;
    const timers: NodeJS.Timeout[] = [];
    const finish = (err: EngineError | undefined, res?: HttpResponse) => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      req.signal?.removeEventListener("abort", onAbort);
      if (err) {
        // Destroying the request also destroys its socket: nothing half-read goes back to the pool.
        clientReq?.destroy();
        reject(err);
      } else if (res) resolve(res);
    };
    const onAbort = () =>
      finish(new EngineError("CANCELLED", `request for ${req.what} to ${host} was cancelled`));
    if (req.signal?.aborted) {
      onAbort();
      return;
    }
    req.signal?.addEventListener("abort", onAbort, { once: true });

    timers.push(
      setTimeout(
        () =>
          finish(
            new EngineError(
              "REGISTRY_TIMEOUT",
              `registry ${host} did not answer ${req.what} within ${timeouts.totalMs} ms`,
              {
                details: { host, timeoutMs: timeouts.totalMs },
              },
            ),
          ),
        timeouts.totalMs,
      ),
    );

    const mod = req.url.protocol === "https:" ? https : http;
    const headers: Record<string, string> = { ...req.headers };
    if (req.body !== undefined) headers["content-length"] = String(Buffer.byteLength(req.body));
    try {
      clientReq = mod.request(req.url, {
        method: req.method,
        headers,
        agent: pool.agentFor(req.url, req.tls),
      });
    } catch (e) {
      finish(
        new EngineError(
          "REGISTRY_ERROR",
          `cannot request ${req.what} from ${host}: ${errorMessage(e)}`,
          { cause: e },
        ),
      );
      return;
    }

    clientReq.on("socket", (sock) => {
      // A reused keep-alive socket is already connected.
      if (!sock.connecting) return;
      const t = setTimeout(
        () =>
          finish(
            new EngineError(
              "REGISTRY_TIMEOUT",
              `could not connect to registry ${host} within ${timeouts.connectMs} ms`,
              {
                details: { host, timeoutMs: timeouts.connectMs },
              },
            ),
          ),
        timeouts.connectMs,
      );
      timers.push(t);
      sock.once(req.url.protocol === "https:" ? "secureConnect" : "connect", () => clearTimeout(t));
    });

    clientReq.on("error", (e: NodeJS.ErrnoException) => {
      const code = e.code ?? "";
      if (NETWORK_CODES.has(code)) {
        finish(
          new EngineError("REGISTRY_UNAVAILABLE", `registry ${host} is unreachable (${code})`, { cause: e }),
        );
      } else if (
        code.startsWith("ERR_TLS") ||
        code.includes("CERT") ||
        code.startsWith("ERR_SSL") ||
        /SSL|TLS|certificate/i.test(e.message)
      ) {
        finish(
          new EngineError("REGISTRY_UNAVAILABLE", `TLS with registry ${host} failed: ${e.message}`, {
            cause: e,
          }),
        );
      } else {
        finish(
          new EngineError("REGISTRY_ERROR", `request for ${req.what} to ${host} failed: ${e.message}`, {
            cause: e,
          }),
        );
      }
    });

    clientReq.on("response", (res) => {
      const status = res.statusCode ?? 0;
      const declared = res.headers["content-length"];
      const max = req.method === "HEAD" ? 0 : req.maxBytes;
      if (declared !== undefined && Number(declared) > max && req.method !== "HEAD" && status < 300) {
        finish(
          new EngineError(
            "TOO_LARGE",
            `${req.what} from ${host} is ${declared} bytes, more than the ${max}-byte cap`,
            {
              details: { host, declared: Number(declared), max },
            },
          ),
        );
        return;
      }
      // Error and redirect bodies are only read for their messages: cap them small.
      const cap = status >= 300 ? Math.min(max, 64 * 1024) : max;
      const chunks: Buffer[] = [];
      let total = 0;
      res.on("data", (c: Buffer) => {
        if (settled) return;
        if (account) {
          try {
            account.charge(c.length, `${req.what} from ${host}`);
          } catch (e) {
            finish(e as EngineError);
            return;
          }
        }
        total += c.length;
        if (total > cap) {
          if (status >= 300) {
            // Keep what we have; the status decides, not the body.
            res.destroy();
            finish(undefined, { status, headers: res.headers, body: Buffer.concat(chunks), url: req.url });
            return;
          }
          finish(
            new EngineError("TOO_LARGE", `${req.what} from ${host} exceeds the ${cap}-byte cap`, {
              details: { host, max: cap },
            }),
          );
          return;
        }
        chunks.push(c);
      });
      res.on("end", () => {
        const body = Buffer.concat(chunks);
        if (declared !== undefined && req.method !== "HEAD" && body.length !== Number(declared)) {
          finish(
            new EngineError(
              "REGISTRY_ERROR",
              `${req.what} from ${host} was truncated (${body.length} of ${declared} bytes)`,
            ),
          );
          return;
        }
        finish(undefined, { status, headers: res.headers, body, url: req.url });
      });
      res.on("aborted", () =>
        finish(
          new EngineError("REGISTRY_ERROR", `connection to ${host} closed before ${req.what} was complete`),
        ),
      );
      res.on("error", (e) =>
        finish(
          new EngineError("REGISTRY_ERROR", `reading ${req.what} from ${host} failed: ${e.message}`, {
            cause: e,
          }),
        ),
      );
    });

    clientReq.end(req.body);
  });
}

/** First value of a header. */
export function header(h: http.IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}
