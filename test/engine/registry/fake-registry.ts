// An in-test OCI registry on 127.0.0.1 (node:http) speaking the distribution protocol:
// manifests/blobs by digest or tag, the Referrers API with `Link` paging and
// `OCI-Filters-Applied`, optional bearer-token or basic auth, and a hook to misbehave.
import { createHash } from "node:crypto";
import http from "node:http";
import https from "node:https";
import type { AddressInfo, Socket } from "node:net";

export type Handler = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  url: URL,
) => boolean | Promise<boolean>;

export interface FakeRegistryOptions {
  referrersApi?: boolean;
  /** Referrers per page (Link paging). */
  pageSize?: number;
  /** Honour ?artifactType= and say so with OCI-Filters-Applied. */
  filters?: boolean;
  auth?:
    | { kind: "bearer"; username: string; password: string; ttlSeconds: number; now: () => number }
    | { kind: "basic"; username: string; password: string };
  tls?: { key: string; cert: string };
}

export interface FakeRegistry {
  host: string;
  url: string;
  /** Every request path+query seen. */
  requests: string[];
  tokenRequests: Array<{ scope: string | null; service: string | null; authorization?: string | undefined }>;
  issuedTokens: Set<string>;
  putManifest(
    repo: string,
    body: Buffer | string | object,
    opts?: { tag?: string; mediaType?: string },
  ): string;
  putBlob(repo: string, body: Buffer | string): string;
  /** Handlers run before the registry; return true when they answered. */
  use(h: Handler): void;
  close(): Promise<void>;
}

export function sha256(b: Buffer | string): string {
  return `sha256:${createHash("sha256").update(b).digest("hex")}`;
}

interface Stored {
  body: Buffer;
  mediaType: string;
}

export async function startFakeRegistry(opts: FakeRegistryOptions = {}): Promise<FakeRegistry> {
  const manifests = new Map<string, Stored>(); // repo@digest
  const tags = new Map<string, string>(); // repo:tag → digest
  const blobs = new Map<string, Buffer>();
  const handlers: Handler[] = [];
  const sockets = new Set<Socket>();
  const requests: string[] = [];
  const tokenRequests: FakeRegistry["tokenRequests"] = [];
  const issuedTokens = new Set<string>();
  const tokenExpiry = new Map<string, { exp: number; scope: string }>();
  let tokenN = 0;
  let base = "";

  const json = (
    res: http.ServerResponse,
    status: number,
    obj: unknown,
    headers: Record<string, string> = {},
  ) => {
    const b = Buffer.from(JSON.stringify(obj));
    res.writeHead(status, { "content-type": "application/json", "content-length": b.length, ...headers });
    res.end(b);
  };
  const err = (res: http.ServerResponse, status: number, code: string) =>
    json(res, status, { errors: [{ code, message: code.toLowerCase() }] });

  const authorized = (req: http.IncomingMessage, res: http.ServerResponse, repo: string): boolean => {
    const a = opts.auth;
    if (!a) return true;
    const h = req.headers.authorization ?? "";
    if (a.kind === "basic") {
      const want = `Basic ${Buffer.from(`${a.username}:${a.password}`).toString("base64")}`;
      if (h === want) return true;
      res.setHeader("www-authenticate", `Basic realm="fake"`);
      err(res, 401, "UNAUTHORIZED");
      return false;
    }
    const scope = `repository:${repo}:pull`;
    const tok = h.startsWith("Bearer ") ? h.slice(7) : "";
    const t = tokenExpiry.get(tok);
    if (t && t.exp > a.now() && t.scope === scope) return true;
    res.setHeader(
      "www-authenticate",
      `Bearer realm="${base}/token",service="fake-registry",scope="${scope}"`,
    );
    err(res, 401, "UNAUTHORIZED");
    return false;
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = new URL(req.url ?? "/", base);
    requests.push(url.pathname + url.search);
    for (const h of handlers) if (await h(req, res, url)) return;
    if (url.pathname === "/token" && opts.auth?.kind === "bearer") {
      const a = opts.auth;
      tokenRequests.push({
        scope: url.searchParams.get("scope"),
        service: url.searchParams.get("service"),
        authorization: req.headers.authorization,
      });
      const want = `Basic ${Buffer.from(`${a.username}:${a.password}`).toString("base64")}`;
      if (req.headers.authorization !== want) return err(res, 401, "UNAUTHORIZED");
      const token = `tok-${++tokenN}`;
      issuedTokens.add(token);
      tokenExpiry.set(token, {
        exp: a.now() + a.ttlSeconds * 1000,
        scope: url.searchParams.get("scope") ?? "",
      });
      return json(res, 200, { token, expires_in: a.ttlSeconds, issued_at: new Date(a.now()).toISOString() });
    }
    if (url.pathname === "/v2/" || url.pathname === "/v2") return json(res, 200, {});
    const m = /^\/v2\/(.+)\/(manifests|blobs|referrers)\/([^/]+)$/.exec(url.pathname);
    if (!m) return err(res, 404, "NAME_UNKNOWN");
    const [, repo = "", kind, ref = ""] = m;
    if (!authorized(req, res, repo)) return;
    if (kind === "blobs") {
      const b = blobs.get(`${repo}@${ref}`);
      if (!b) return err(res, 404, "BLOB_UNKNOWN");
      res.writeHead(200, {
        "content-type": "application/octet-stream",
        "content-length": b.length,
        "docker-content-digest": ref,
      });
      return res.end(b);
    }
    if (kind === "manifests") {
      const digest = ref.includes(":") ? ref : tags.get(`${repo}:${ref}`);
      const s = digest ? manifests.get(`${repo}@${digest}`) : undefined;
      if (!s || !digest) return err(res, 404, "MANIFEST_UNKNOWN");
      res.writeHead(200, {
        "content-type": s.mediaType,
        "content-length": s.body.length,
        "docker-content-digest": digest,
      });
      return res.end(s.body);
    }
    // referrers
    if (!opts.referrersApi) {
      res.writeHead(404, { "content-type": "text/plain" });
      return res.end("404 page not found");
    }
    const filter = url.searchParams.get("artifactType");
    const all: object[] = [];
    for (const [key, s] of manifests) {
      if (!key.startsWith(`${repo}@`)) continue;
      const doc = JSON.parse(s.body.toString()) as {
        subject?: { digest?: string };
        artifactType?: string;
        config?: { mediaType?: string };
        annotations?: Record<string, string>;
      };
      if (doc.subject?.digest !== ref) continue;
      const artifactType = doc.artifactType ?? doc.config?.mediaType;
      if (opts.filters && filter && artifactType !== filter) continue;
      all.push({
        mediaType: s.mediaType,
        digest: key.slice(repo.length + 1),
        size: s.body.length,
        artifactType,
        ...(doc.annotations ? { annotations: doc.annotations } : {}),
      });
    }
    const size = opts.pageSize ?? 1_000_000;
    const start = Number(url.searchParams.get("page") ?? "0");
    const page = all.slice(start * size, (start + 1) * size);
    const headers: Record<string, string> = { "content-type": "application/vnd.oci.image.index.v1+json" };
    if (opts.filters && filter) headers["oci-filters-applied"] = "artifactType";
    if ((start + 1) * size < all.length) {
      const next = new URL(url.pathname, base);
      if (filter) next.searchParams.set("artifactType", filter);
      next.searchParams.set("page", String(start + 1));
      headers.link = `<${next.pathname}${next.search}>; rel="next"`;
    }
    return json(
      res,
      200,
      { schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: page },
      headers,
    );
  };

  const listener = (req: http.IncomingMessage, res: http.ServerResponse) => {
    handle(req, res).catch((e) => {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(e));
    });
  };
  const server = opts.tls
    ? https.createServer({ key: opts.tls.key, cert: opts.tls.cert }, listener)
    : http.createServer(listener);
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const host = `127.0.0.1:${port}`;
  base = `${opts.tls ? "https" : "http"}://${host}`;

  return {
    host,
    url: base,
    requests,
    tokenRequests,
    issuedTokens,
    putManifest(repo, body, o = {}) {
      const b = Buffer.isBuffer(body)
        ? body
        : Buffer.from(typeof body === "string" ? body : JSON.stringify(body));
      let mediaType = o.mediaType;
      if (!mediaType) {
        try {
          mediaType = (JSON.parse(b.toString()) as { mediaType?: string }).mediaType;
        } catch {}
      }
      const d = sha256(b);
      manifests.set(`${repo}@${d}`, {
        body: b,
        mediaType: mediaType ?? "application/vnd.oci.image.manifest.v1+json",
      });
      if (o.tag) tags.set(`${repo}:${o.tag}`, d);
      return d;
    },
    putBlob(repo, body) {
      const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
      const d = sha256(b);
      blobs.set(`${repo}@${d}`, b);
      return d;
    },
    use(h) {
      handlers.push(h);
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const EMPTY = Buffer.from("{}");

/** An OCI image manifest (a tiny "image") stored in `repo`; returns its digest and size. */
export function putImage(
  reg: FakeRegistry,
  repo: string,
  tag: string,
  marker = tag,
): { digest: string; size: number } {
  const cfg = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", marker }));
  const layer = Buffer.from(`layer ${marker}`);
  const m = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: reg.putBlob(repo, cfg),
      size: cfg.length,
    },
    layers: [
      {
        mediaType: "application/vnd.oci.image.layer.v1.tar",
        digest: reg.putBlob(repo, layer),
        size: layer.length,
      },
    ],
  };
  const body = JSON.stringify(m);
  return { digest: reg.putManifest(repo, body, { tag }), size: Buffer.byteLength(body) };
}

/** A notation-shaped signature manifest (protocols.md §7.2) referring to `subject`. */
export function putNotationLike(
  reg: FakeRegistry,
  repo: string,
  subject: { digest: string; size: number },
  n: number,
): string {
  const sig = Buffer.from(JSON.stringify({ payload: "e30", protected: "e30", signature: `sig-${n}` }));
  const m = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.cncf.notary.signature", digest: reg.putBlob(repo, EMPTY), size: 2 },
    layers: [{ mediaType: "application/jose+json", digest: reg.putBlob(repo, sig), size: sig.length }],
    subject: { mediaType: "application/vnd.oci.image.manifest.v1+json", ...subject },
    annotations: { "org.opencontainers.image.created": "2025-01-01T00:00:00Z", n: String(n) },
  };
  return reg.putManifest(repo, m);
}

/** A non-signature artifact (an SBOM) referring to `subject`. */
export function putSbom(
  reg: FakeRegistry,
  repo: string,
  subject: { digest: string; size: number },
  n: number,
): string {
  const sbom = Buffer.from(`sbom ${n}`);
  const m = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    artifactType: "application/spdx+json",
    config: { mediaType: "application/vnd.oci.empty.v1+json", digest: reg.putBlob(repo, EMPTY), size: 2 },
    layers: [{ mediaType: "application/spdx+json", digest: reg.putBlob(repo, sbom), size: sbom.length }],
    subject: { mediaType: "application/vnd.oci.image.manifest.v1+json", ...subject },
  };
  return reg.putManifest(repo, m);
}
