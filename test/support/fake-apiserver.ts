// A small Kubernetes API server for tests: list and watch (with resourceVersion, bookmarks,
// 410 Gone) for Namespaces, Secrets, ConfigMaps and the cluster-scoped
// imagepolicies.tollgate.dev/v1alpha1, plus GET of single objects. It speaks the real wire
// protocol so @kubernetes/client-node's informers run unmodified against it:
//   list   GET <collection>                          → {kind: XList, metadata.resourceVersion, items}
//   watch  GET <collection>?watch=true&resourceVersion=N[&allowWatchBookmarks=true]
//          → 200, chunked JSON lines {type: ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, object}
//   too old N (below the compaction point) → 200 + ERROR event with a Status (code 410,
//          reason Expired), then the stream ends — what kube-apiserver does; or, with
//          `goneAs: "http"`, an HTTP 410 Status response.
// Faults on demand: drop every open connection, refuse requests with a status, stop and
// restart on the same port. Every request is logged for assertions.
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";

export type Resource = "namespaces" | "imagepolicies" | "secrets" | "configmaps";

export interface KObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    resourceVersion?: string;
    uid?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

export interface LoggedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  watch: boolean;
  status: number;
  at: number;
}

type EventType = "ADDED" | "MODIFIED" | "DELETED";

interface HistoryEvent {
  rv: number;
  resource: Resource;
  type: EventType;
  obj: KObject;
}

interface Watcher {
  resource: Resource;
  namespace: string | undefined;
  filter: (o: KObject) => boolean;
  bookmarks: boolean;
  res: http.ServerResponse;
}

const META: Record<Resource, { apiVersion: string; kind: string; namespaced: boolean; core: boolean }> = {
  namespaces: { apiVersion: "v1", kind: "Namespace", namespaced: false, core: true },
  secrets: { apiVersion: "v1", kind: "Secret", namespaced: true, core: true },
  configmaps: { apiVersion: "v1", kind: "ConfigMap", namespaced: true, core: true },
  imagepolicies: { apiVersion: "tollgate.dev/v1alpha1", kind: "ImagePolicy", namespaced: false, core: false },
};

export interface FakeApiServerOptions {
  /** Listen on this port (127.0.0.1); default: any free port. */
  port?: number;
  /** How a too-old resourceVersion is answered on watch (default "event", as kube-apiserver). */
  goneAs?: "event" | "http";
}

export class FakeApiServer {
  readonly requests: LoggedRequest[] = [];
  private readonly objects = new Map<Resource, Map<string, KObject>>();
  private history: HistoryEvent[] = [];
  private rv = 100;
  /** Watches from a resourceVersion below this answer 410 Gone. */
  private compactedRv = 0;
  private readonly watchers = new Set<Watcher>();
  private readonly sockets = new Set<Socket>();
  private server: http.Server | undefined;
  private fault: ((r: { path: string; watch: boolean }) => number | undefined) | undefined;
  private uidSeq = 0;
  port = 0;

  private constructor(private readonly opts: FakeApiServerOptions) {
    for (const r of Object.keys(META) as Resource[]) this.objects.set(r, new Map());
  }

  static async start(opts: FakeApiServerOptions = {}): Promise<FakeApiServer> {
    const s = new FakeApiServer(opts);
    await s.listen(opts.port ?? 0);
    return s;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** A KubeConfig for @kubernetes/client-node pointing at this server (plain HTTP on loopback). */
  kubeConfig(): KubeConfig {
    return kubeConfigFor(this.url);
  }

  async listen(port = this.port): Promise<void> {
    if (this.server) return;
    const server = http.createServer((req, res) => this.handle(req, res));
    server.on("connection", (sock) => {
      this.sockets.add(sock);
      sock.on("close", () => this.sockets.delete(sock));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  /** Stops listening and cuts every connection (the port can be reused by listen()). */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    this.dropConnections();
    await closed;
  }

  /** Destroys every open connection, watches included, without a clean end of stream. */
  dropConnections(): void {
    for (const w of this.watchers) w.res.destroy();
    this.watchers.clear();
    for (const s of this.sockets) s.destroy();
  }

  /** Answers requests matching the predicate with the returned HTTP status (undefined = normal). */
  setFault(f: ((r: { path: string; watch: boolean }) => number | undefined) | undefined): void {
    this.fault = f;
  }

  /** Forgets history up to now: watches from any older resourceVersion get 410 Gone. */
  compact(): void {
    this.compactedRv = this.rv;
    this.history = [];
  }

  /** Sends a BOOKMARK with the current resourceVersion to every watcher that allowed them. */
  bookmark(): number {
    let n = 0;
    for (const w of this.watchers) {
      if (!w.bookmarks) continue;
      const m = META[w.resource];
      send(w.res, {
        type: "BOOKMARK",
        object: { apiVersion: m.apiVersion, kind: m.kind, metadata: { resourceVersion: String(this.rv) } },
      });
      n++;
    }
    return n;
  }

  activeWatches(resource?: Resource): number {
    return [...this.watchers].filter((w) => resource === undefined || w.resource === resource).length;
  }

  resourceVersion(): string {
    return String(this.rv);
  }

  // ---- object store -----------------------------------------------------------------

  get(resource: Resource, name: string, namespace?: string): KObject | undefined {
    const o = this.objects.get(resource)!.get(key(resource, name, namespace));
    return o && structuredClone(o);
  }

  /** Creates or replaces an object (ADDED or MODIFIED), bumping its resourceVersion. */
  apply(resource: Resource, obj: KObject): KObject {
    const m = META[resource];
    const k = key(resource, obj.metadata.name, obj.metadata.namespace);
    const store = this.objects.get(resource)!;
    const prev = store.get(k);
    const next: KObject = structuredClone(obj);
    next.apiVersion = m.apiVersion;
    next.kind = m.kind;
    if (!m.namespaced) delete next.metadata.namespace;
    next.metadata.uid = prev?.metadata.uid ?? `uid-${++this.uidSeq}`;
    next.metadata.resourceVersion = String(++this.rv);
    next.metadata.creationTimestamp = prev?.metadata.creationTimestamp ?? new Date().toISOString();
    store.set(k, next);
    this.record(resource, prev ? "MODIFIED" : "ADDED", next);
    return structuredClone(next);
  }

  /** Applies a change to an existing object's copy (e.g. set or remove an annotation). */
  modify(resource: Resource, name: string, namespace: string | undefined, f: (o: KObject) => void): KObject {
    const o = this.get(resource, name, namespace);
    if (!o) throw new Error(`${resource} ${namespace ?? ""}/${name} does not exist`);
    f(o);
    return this.apply(resource, o);
  }

  delete(resource: Resource, name: string, namespace?: string): boolean {
    const store = this.objects.get(resource)!;
    const k = key(resource, name, namespace);
    const prev = store.get(k);
    if (!prev) return false;
    store.delete(k);
    const gone = structuredClone(prev);
    gone.metadata.resourceVersion = String(++this.rv);
    this.record(resource, "DELETED", gone);
    return true;
  }

  private record(resource: Resource, type: EventType, obj: KObject): void {
    this.history.push({ rv: this.rv, resource, type, obj: structuredClone(obj) });
    if (this.history.length > 10_000) this.history.shift();
    for (const w of this.watchers) {
      if (w.resource === resource && w.filter(obj)) send(w.res, { type, object: obj });
    }
  }

  // ---- HTTP ---------------------------------------------------------------------------

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const u = new URL(req.url ?? "/", "http://x");
    const query = Object.fromEntries(u.searchParams);
    const watch = query.watch === "true" || query.watch === "1";
    const entry: LoggedRequest = {
      method: req.method ?? "",
      path: u.pathname,
      query,
      watch,
      status: 200,
      at: Date.now(),
    };
    this.requests.push(entry);
    const fail = (code: number, reason: string, message: string) => {
      entry.status = code;
      res.writeHead(code, { "Content-Type": "application/json" });
      res.end(JSON.stringify(status(code, reason, message)));
    };
    const faulted = this.fault?.({ path: u.pathname, watch });
    if (faulted !== undefined) {
      fail(faulted, "InternalError", "injected fault");
      return;
    }
    if (req.method !== "GET") {
      fail(405, "MethodNotAllowed", `${req.method} is not supported`);
      return;
    }
    const route = parsePath(u.pathname);
    if (!route) {
      fail(404, "NotFound", `the server could not find the requested resource (${u.pathname})`);
      return;
    }
    const { resource, namespace, name } = route;
    const m = META[resource];

    if (name !== undefined) {
      const o = this.objects.get(resource)!.get(key(resource, name, namespace));
      if (!o) {
        fail(404, "NotFound", `${resource} "${name}" not found`);
        return;
      }
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify(o));
      return;
    }

    let filter: (o: KObject) => boolean;
    try {
      filter = selectorFilter(namespace, query.fieldSelector, query.labelSelector);
    } catch (e) {
      fail(400, "BadRequest", (e as Error).message);
      return;
    }

    if (!watch) {
      const items = [...this.objects.get(resource)!.values()].filter(filter).map((o) => {
        const c = structuredClone(o);
        // kube-apiserver leaves kind/apiVersion off items of built-in lists.
        if (m.core) {
          delete c.kind;
          delete c.apiVersion;
        }
        return c;
      });
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(
        JSON.stringify({
          apiVersion: m.apiVersion,
          kind: `${m.kind}List`,
          metadata: { resourceVersion: String(this.rv) },
          items,
        }),
      );
      return;
    }

    // watch
    const from = query.resourceVersion;
    const fromN = from === undefined || from === "" || from === "0" ? undefined : Number(from);
    if (fromN !== undefined && (!Number.isInteger(fromN) || fromN < 0)) {
      fail(400, "BadRequest", `invalid resourceVersion ${from}`);
      return;
    }
    const tooOld = fromN !== undefined && fromN < this.compactedRv;
    if (tooOld && this.opts.goneAs === "http") {
      fail(410, "Expired", `too old resource version: ${fromN} (${this.compactedRv})`);
      return;
    }
    res.writeHead(200, { "Content-Type": "application/json", "Transfer-Encoding": "chunked" });
    if (tooOld) {
      entry.status = 410;
      send(res, {
        type: "ERROR",
        object: status(410, "Expired", `too old resource version: ${fromN} (${this.compactedRv})`),
      });
      res.end();
      return;
    }
    if (fromN === undefined) {
      for (const o of this.objects.get(resource)!.values())
        if (filter(o)) send(res, { type: "ADDED", object: o });
    } else {
      for (const ev of this.history) {
        if (ev.resource === resource && ev.rv > fromN && filter(ev.obj))
          send(res, { type: ev.type, object: ev.obj });
      }
    }
    const w: Watcher = { resource, namespace, filter, bookmarks: query.allowWatchBookmarks === "true", res };
    this.watchers.add(w);
    const done = () => this.watchers.delete(w);
    res.on("close", done);
    const timeout = Number(query.timeoutSeconds);
    if (Number.isFinite(timeout) && timeout > 0) {
      const t = setTimeout(() => res.end(), timeout * 1000);
      t.unref();
      res.on("close", () => clearTimeout(t));
    }
  }
}

export function kubeConfigFor(url: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "fake", server: url, skipTLSVerify: true }],
    users: [{ name: "tollgate" }],
    contexts: [{ name: "fake", cluster: "fake", user: "tollgate" }],
    currentContext: "fake",
  });
  return kc;
}

function key(resource: Resource, name: string, namespace: string | undefined): string {
  return META[resource].namespaced ? `${namespace ?? "default"}/${name}` : name;
}

function send(res: http.ServerResponse, ev: unknown): void {
  if (!res.destroyed && !res.writableEnded) res.write(`${JSON.stringify(ev)}\n`);
}

function status(code: number, reason: string, message: string) {
  return { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code };
}

function parsePath(p: string): { resource: Resource; namespace?: string; name?: string } | undefined {
  const s = p.split("/").filter(Boolean).map(decodeURIComponent);
  if (s[0] === "api" && s[1] === "v1") {
    const rest = s.slice(2);
    if (rest[0] === "namespaces") {
      if (rest.length === 1) return { resource: "namespaces" };
      if (rest.length === 2) return { resource: "namespaces", name: rest[1]! };
      const r = rest[2];
      if ((r === "secrets" || r === "configmaps") && rest.length <= 4) {
        return rest.length === 4
          ? { resource: r, namespace: rest[1]!, name: rest[3]! }
          : { resource: r, namespace: rest[1]! };
      }
      return undefined;
    }
    if ((rest[0] === "secrets" || rest[0] === "configmaps") && rest.length === 1)
      return { resource: rest[0] };
    return undefined;
  }
  if (s[0] === "apis" && s[1] === "tollgate.dev" && s[2] === "v1alpha1" && s[3] === "imagepolicies") {
    if (s.length === 4) return { resource: "imagepolicies" };
    if (s.length === 5) return { resource: "imagepolicies", name: s[4]! };
  }
  return undefined;
}

/** metadata.name / metadata.namespace field selectors and equality/existence label selectors. */
function selectorFilter(
  namespace: string | undefined,
  fieldSelector: string | undefined,
  labelSelector: string | undefined,
): (o: KObject) => boolean {
  const checks: ((o: KObject) => boolean)[] = [];
  if (namespace !== undefined) checks.push((o) => o.metadata.namespace === namespace);
  for (const term of (fieldSelector ?? "").split(",").filter(Boolean)) {
    const m = /^(metadata\.name|metadata\.namespace)(==?|!=)(.*)$/.exec(term);
    if (!m) throw new Error(`unsupported field selector "${term}"`);
    const [, field, op, value] = m;
    const get = (o: KObject) => (field === "metadata.name" ? o.metadata.name : o.metadata.namespace);
    checks.push(op === "!=" ? (o) => get(o) !== value : (o) => get(o) === value);
  }
  for (const term of (labelSelector ?? "").split(",").filter(Boolean)) {
    const m = /^([^=!]+?)\s*(?:(==?|!=)\s*(.*))?$/.exec(term.trim());
    if (!m) throw new Error(`unsupported label selector "${term}"`);
    const [, k, op, v] = m;
    if (op === undefined) checks.push((o) => Object.hasOwn(o.metadata.labels ?? {}, k!));
    else if (op === "!=") checks.push((o) => o.metadata.labels?.[k!] !== v);
    else checks.push((o) => o.metadata.labels?.[k!] === v);
  }
  return (o) => checks.every((c) => c(o));
}
