// A fault-injecting loopback HTTP proxy in front of a real registry (docker-registry on
// 127.0.0.1). Normally it forwards every request; a fault, optionally limited to requests a
// predicate picks, makes it misbehave the ways registries and networks do in production:
// error statuses (500, 429 + Retry-After), bodies that trickle, connections reset before or
// in the middle of a body, requests that are accepted and never answered, bodies larger than
// any cap, and content that does not match its digest. It records every request and the
// fault it got, so tests can prove what the client saw.
import http from "node:http";
import type net from "node:net";

export type Fault =
  | { kind: "status"; status: number; headers?: Record<string, string>; body?: string }
  /** Headers at once, then `chunk` bytes of the real body every `everyMs`. */
  | { kind: "slow-body"; chunk: number; everyMs: number }
  /** TCP reset before any byte of the answer. */
  | { kind: "reset" }
  /** Headers and half the real body, then a TCP reset. */
  | { kind: "reset-mid-body" }
  /** Accept, read, never answer. */
  | { kind: "hang" }
  /** A 200 whose body is `bytes` long (chunked, no Content-Length), starting like JSON. */
  | { kind: "oversized"; bytes: number }
  /** The real answer with its body altered (one extra byte), Content-Length adjusted. */
  | { kind: "wrong-digest" };

export interface ProxiedRequest {
  method: string;
  path: string;
  fault?: Fault["kind"];
}

export interface FaultProxy {
  /** host:port clients use instead of the registry's. */
  host: string;
  requests: ProxiedRequest[];
  /** Sets (or clears, with undefined) the fault for requests `match` picks (default: all). */
  setFault(fault: Fault | undefined, match?: (r: { method: string; path: string }) => boolean): void;
  count(pred?: (r: ProxiedRequest) => boolean): number;
  stop(): Promise<void>;
}

export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const [uhost, uport] = upstream.split(":");
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let fault: Fault | undefined;
  let match: (r: { method: string; path: string }) => boolean = () => true;

  const forward = (
    req: http.IncomingMessage,
    onResponse: (ures: http.IncomingMessage) => void,
    onError: () => void,
  ) => {
    const up = http.request(
      {
        host: uhost,
        port: Number(uport),
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: upstream },
        agent: false,
      },
      onResponse,
    );
    up.on("error", onError);
    req.pipe(up);
  };

  const fixHeaders = (h: http.IncomingHttpHeaders): http.OutgoingHttpHeaders => {
    const headers: http.OutgoingHttpHeaders = { ...h };
    // Keep redirects (blob storage) pointing at the proxy.
    if (typeof headers.location === "string")
      headers.location = headers.location.replace(upstream, state.host);
    return headers;
  };

  const readAll = (s: http.IncomingMessage): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      s.on("data", (c: Buffer) => parts.push(c));
      s.on("end", () => resolve(Buffer.concat(parts)));
      s.on("error", reject);
    });

  const server = http.createServer((req, res) => {
    const r = { method: req.method ?? "", path: req.url ?? "" };
    const f = fault && match(r) ? fault : undefined;
    state.requests.push({ ...r, fault: f?.kind });
    const bad = () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    };
    if (!f) {
      forward(
        req,
        (ures) => {
          res.writeHead(ures.statusCode ?? 502, fixHeaders(ures.headers));
          ures.pipe(res);
        },
        bad,
      );
      return;
    }
    switch (f.kind) {
      case "status": {
        req.resume();
        const body = Buffer.from(
          f.body ?? JSON.stringify({ errors: [{ code: "UNAVAILABLE", message: `injected ${f.status}` }] }),
        );
        res.writeHead(f.status, {
          "content-type": "application/json",
          "content-length": body.length,
          ...f.headers,
        });
        res.end(req.method === "HEAD" ? undefined : body);
        return;
      }
      case "reset":
        req.resume();
        req.socket.resetAndDestroy();
        return;
      case "hang":
        req.resume();
        return;
      case "oversized": {
        req.resume();
        res.writeHead(200, {
          "content-type": "application/vnd.oci.image.manifest.v1+json",
          "docker-content-digest": `sha256:${"0".repeat(64)}`,
        });
        if (req.method === "HEAD") {
          res.end();
          return;
        }
        let left = f.bytes;
        const block = Buffer.alloc(64 * 1024, 0x20);
        block[0] = 0x7b; // "{"
        const pump = () => {
          while (left > 0) {
            const n = Math.min(left, block.length);
            left -= n;
            if (!res.write(block.subarray(0, n))) {
              res.once("drain", pump);
              return;
            }
          }
          res.end();
        };
        res.on("error", () => {});
        pump();
        return;
      }
      case "slow-body":
      case "reset-mid-body":
      case "wrong-digest":
        forward(
          req,
          async (ures) => {
            const body = await readAll(ures).catch(() => Buffer.alloc(0));
            const headers = fixHeaders(ures.headers);
            if (f.kind === "wrong-digest") {
              const altered = body.length > 0 ? Buffer.concat([body, Buffer.from(" ")]) : body;
              headers["content-length"] = String(altered.length);
              res.writeHead(ures.statusCode ?? 502, headers);
              res.end(req.method === "HEAD" ? undefined : altered);
              return;
            }
            res.writeHead(ures.statusCode ?? 502, headers);
            if (req.method === "HEAD" || body.length === 0) {
              res.end();
              return;
            }
            if (f.kind === "reset-mid-body") {
              res.write(body.subarray(0, Math.max(1, body.length >> 1)), () => {
                res.socket?.resetAndDestroy();
              });
              return;
            }
            let off = 0;
            const tick = () => {
              if (res.destroyed) return;
              res.write(body.subarray(off, off + f.chunk));
              off += f.chunk;
              if (off >= body.length) {
                res.end();
                return;
              }
              const t = setTimeout(() => {
                timers.delete(t);
                tick();
              }, f.everyMs);
              timers.add(t);
            };
            tick();
          },
          bad,
        );
        return;
    }
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("error", () => {});
    s.on("close", () => sockets.delete(s));
  });
  const state: FaultProxy = {
    host: "",
    requests: [],
    setFault(f, m) {
      fault = f;
      match = m ?? (() => true);
    },
    count(pred) {
      return pred ? state.requests.filter(pred).length : state.requests.length;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  state.host = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return state;
}
