// A loopback HTTP proxy in front of a registry for e2e tests: counts every request (so a
// test can prove how many verifications reached the registry) and can be switched to
// "hung" mode, where it accepts connections and never answers.
import http from "node:http";
import type net from "node:net";

export interface CountingProxy {
  host: string;
  requests: Array<{ method: string; path: string }>;
  hang: boolean;
  count(pred?: (r: { method: string; path: string }) => boolean): number;
  stop(): Promise<void>;
}

export async function startCountingProxy(upstream: string): Promise<CountingProxy> {
  const [uhost, uport] = upstream.split(":");
  const sockets = new Set<net.Socket>();
  const state: CountingProxy = {
    host: "",
    requests: [],
    hang: false,
    count(pred) {
      return pred ? state.requests.filter(pred).length : state.requests.length;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  const server = http.createServer((req, res) => {
    state.requests.push({ method: req.method ?? "", path: req.url ?? "" });
    if (state.hang) return; // accept, read, never answer
    const up = http.request(
      {
        host: uhost,
        port: Number(uport),
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: upstream },
      },
      (ures) => {
        const headers = { ...ures.headers };
        // Keep redirects (blob storage) pointing at the proxy.
        if (typeof headers.location === "string")
          headers.location = headers.location.replace(upstream, state.host);
        res.writeHead(ures.statusCode ?? 502, headers);
        ures.pipe(res);
      },
    );
    up.on("error", () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const a = server.address() as net.AddressInfo;
  state.host = `127.0.0.1:${a.port}`;
  return state;
}
