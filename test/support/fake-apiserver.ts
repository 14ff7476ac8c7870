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
// Writes, as kube-apiserver answers them (for Leases, Events and the ImagePolicy status
// subresource; tests seed objects through apply()):
//   create POST <collection>            → 201; 409 AlreadyExists; metadata.generateName honoured
//   update PUT  <item>                  → 200; 409 Conflict when metadata.resourceVersion is
//          set and is not the stored one (an empty one is an unconditional update); 404
//   patch  PATCH <item>                 → merge-patch+json (strategic-merge-patch+json for
//          core kinds, same semantics for the flat fields used here); a resourceVersion in
//          the patch is a precondition (409); other patch types 415
//   status subresource (imagepolicies)  → <item>/status writes change only .status; writes to
//          the main resource never change .status and bump metadata.generation only when
//          .spec changes
//   Lease spec.acquireTime/renewTime must be RFC 3339 with microseconds (MicroTime), as the
//   real server parses them; an Event's involvedObject.namespace must be its own namespace.
// Faults on demand: drop every open connection, refuse requests with a status, stop and
// restart on the same port. Every request is logged for assertions.
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";

export type Resource = "namespaces" | "imagepolicies" | "secrets" | "configmaps" | "leases" | "events";

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

/** What a fault predicate sees of a request (`auth`: the Authorization header). */
export interface FaultRequest {
  method: string;
  path: string;
  watch: boolean;
  auth: string;
}

export interface LoggedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  watch: boolean;
  status: number;
  at: number;
  /** The Authorization header ("" without). */
  auth: string;
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
  leases: { apiVersion: "coordination.k8s.io/v1", kind: "Lease", namespaced: true, core: false },
  events: { apiVersion: "v1", kind: "Event", namespaced: true, core: true },
};

/** Resources whose .status is a subresource (CRD `subresources.status`). */
const STATUS_SUBRESOURCE = new Set<Resource>(["imagepolicies"]);
/** Where each resource lives: core (/api/v1) or a group (/apis/<group>/<version>). */
const GROUP_PATH: Partial<Record<Resource, string>> = {
  imagepolicies: "tollgate.dev/v1alpha1",
  leases: "coordination.k8s.io/v1",
};
const PLURAL_GROUP: Record<Resource, string> = {
  namespaces: "namespaces",
  secrets: "secrets",
  configmaps: "configmaps",
  events: "events",
  imagepolicies: "imagepolicies.tollgate.dev",
  leases: "leases.coordination.k8s.io",
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
  private fault: ((r: FaultRequest) => number | undefined) | undefined;
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
  kubeConfig(token?: string): KubeConfig {
    return kubeConfigFor(this.url, token);
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
  setFault(f: ((r: FaultRequest) => number | undefined) | undefined): void {
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

  /** Writes of API clients (POST, PUT, PATCH, DELETE), optionally for one resource. */
  writes(resource?: Resource): LoggedRequest[] {
    return this.requests.filter(
      (r) => r.method !== "GET" && (resource === undefined || parsePath(r.path)?.resource === resource),
    );
  }

  list(resource: Resource, namespace?: string): KObject[] {
    return [...this.objects.get(resource)!.values()]
      .filter((o) => namespace === undefined || o.metadata.namespace === namespace)
      .map((o) => structuredClone(o));
  }

  /**
   * Creates or replaces an object (ADDED or MODIFIED), bumping its resourceVersion. A write
   * to the main resource: where .status is a subresource, the stored status is kept.
   */
  apply(resource: Resource, obj: KObject, opts: { subresource?: "status" } = {}): KObject {
    const m = META[resource];
    const k = key(resource, obj.metadata.name, obj.metadata.namespace);
    const store = this.objects.get(resource)!;
    const prev = store.get(k);
    let next: KObject = structuredClone(obj);
    if (STATUS_SUBRESOURCE.has(resource)) {
      if (opts.subresource === "status") {
        // Only .status changes through the subresource.
        if (!prev) throw new Error(`${resource} ${obj.metadata.name} does not exist`);
        next = { ...structuredClone(prev), status: next.status };
      } else {
        if (prev?.status !== undefined) next.status = structuredClone(prev.status);
        else delete next.status;
        const prevGen = Number(prev?.metadata.generation ?? 0);
        const specChanged = JSON.stringify(prev?.spec) !== JSON.stringify(next.spec);
        next.metadata.generation = prev && !specChanged ? prevGen : prevGen + 1;
      }
    }
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
      auth: req.headers.authorization ?? "",
    };
    this.requests.push(entry);
    const fail = (code: number, reason: string, message: string) => {
      entry.status = code;
      res.writeHead(code, { "Content-Type": "application/json" });
      res.end(JSON.stringify(status(code, reason, message)));
    };
    const faulted = this.fault?.({ method: entry.method, path: u.pathname, watch, auth: entry.auth });
    if (faulted !== undefined) {
      fail(faulted, "InternalError", "injected fault");
      return;
    }
    const route = parsePath(u.pathname);
    if (!route) {
      fail(404, "NotFound", `the server could not find the requested resource (${u.pathname})`);
      return;
    }
    if (req.method !== "GET") {
      readBody(req).then(
        (body) => {
          const r = this.write(entry.method, route, req.headers["content-type"] ?? "", body);
          entry.status = r.code;
          res.writeHead(r.code, { "Content-Type": "application/json" });
          res.end(JSON.stringify(r.body));
        },
        (e: Error) => fail(400, "BadRequest", e.message),
      );
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

  // ---- writes -------------------------------------------------------------------------

  private write(
    method: string,
    route: Route,
    contentType: string,
    raw: string,
  ): { code: number; body: unknown } {
    const { resource, namespace, name, subresource } = route;
    const m = META[resource];
    const err = (code: number, reason: string, message: string) => ({
      code,
      body: status(code, reason, message),
    });
    const what = `${PLURAL_GROUP[resource]} "${name ?? ""}"`;
    if (subresource !== undefined && !(subresource === "status" && STATUS_SUBRESOURCE.has(resource)))
      return err(404, "NotFound", `the server could not find the requested resource`);
    if (m.namespaced && namespace === undefined && method !== "GET")
      return err(405, "MethodNotAllowed", `${method} needs a namespaced path for ${resource}`);
    let body: unknown;
    if (method !== "DELETE") {
      try {
        body = JSON.parse(raw);
      } catch (e) {
        return err(
          400,
          "BadRequest",
          `the body of the request was in an unknown format: ${(e as Error).message}`,
        );
      }
    }
    const store = this.objects.get(resource)!;

    if (method === "POST") {
      if (name !== undefined || subresource !== undefined)
        return err(405, "MethodNotAllowed", "POST is only allowed on a collection");
      if (!isObj(body) || !isObj(body.metadata)) return err(400, "BadRequest", "metadata is required");
      const obj = body as KObject;
      if (obj.metadata.namespace !== undefined && obj.metadata.namespace !== namespace)
        return err(
          400,
          "BadRequest",
          "the namespace of the provided object does not match the namespace sent on the request",
        );
      if (m.namespaced) obj.metadata.namespace = namespace;
      if (!obj.metadata.name && typeof obj.metadata.generateName === "string")
        obj.metadata.name = `${obj.metadata.generateName}${(++this.uidSeq).toString(36).padStart(5, "0")}`;
      if (!obj.metadata.name)
        return err(422, "Invalid", `${m.kind} is invalid: metadata.name: Required value`);
      const invalid = validate(resource, obj);
      if (invalid) return err(422, "Invalid", `${m.kind} "${obj.metadata.name}" is invalid: ${invalid}`);
      if (store.has(key(resource, obj.metadata.name, namespace)))
        return err(409, "AlreadyExists", `${PLURAL_GROUP[resource]} "${obj.metadata.name}" already exists`);
      delete obj.metadata.resourceVersion;
      return { code: 201, body: this.apply(resource, obj) };
    }

    if (name === undefined) return err(405, "MethodNotAllowed", `${method} is not allowed on a collection`);
    const prev = store.get(key(resource, name, namespace));
    if (!prev) return err(404, "NotFound", `${what} not found`);
    const conflict = () =>
      err(
        409,
        "Conflict",
        `Operation cannot be fulfilled on ${what}: the object has been modified; please apply your changes to the latest version and try again`,
      );

    if (method === "DELETE") {
      this.delete(resource, name, namespace);
      return { code: 200, body: { kind: "Status", apiVersion: "v1", metadata: {}, status: "Success" } };
    }

    let next: KObject;
    if (method === "PUT") {
      if (!isObj(body) || !isObj(body.metadata)) return err(400, "BadRequest", "metadata is required");
      next = body as KObject;
      if (next.metadata.name !== name)
        return err(400, "BadRequest", "the name of the object does not match the name on the URL");
      const rv = next.metadata.resourceVersion;
      if (rv !== undefined && rv !== "" && rv !== prev.metadata.resourceVersion) return conflict();
    } else if (method === "PATCH") {
      const type = contentType.split(";")[0]!.trim();
      const merge =
        type === "application/merge-patch+json" ||
        (type === "application/strategic-merge-patch+json" && m.core);
      if (!merge)
        return err(
          415,
          "UnsupportedMediaType",
          `the body of the request was in an unknown format - accepted media types include: application/merge-patch+json${m.core ? ", application/strategic-merge-patch+json" : ""}`,
        );
      if (!isObj(body)) return err(400, "BadRequest", "a merge patch must be a JSON object");
      const rv = isObj(body.metadata) ? body.metadata.resourceVersion : undefined;
      if (rv !== undefined && rv !== prev.metadata.resourceVersion) return conflict();
      next = mergePatch(structuredClone(prev), body) as KObject;
      if (next.metadata?.name !== name) return err(400, "BadRequest", "metadata.name cannot be changed");
    } else {
      return err(405, "MethodNotAllowed", `${method} is not supported`);
    }
    if (m.namespaced) next.metadata.namespace = namespace;
    next.metadata.uid = prev.metadata.uid;
    const invalid = validate(resource, next);
    if (invalid) return err(422, "Invalid", `${m.kind} "${name}" is invalid: ${invalid}`);
    const opts: { subresource?: "status" } = subresource === "status" ? { subresource: "status" } : {};
    return { code: 200, body: this.apply(resource, next, opts) };
  }
}

const MICRO_TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$/;

/** The checks kube-apiserver makes on the fields of the kinds written here. */
function validate(resource: Resource, o: KObject): string | undefined {
  if (resource === "leases") {
    const spec = (o.spec ?? {}) as Record<string, unknown>;
    for (const f of ["acquireTime", "renewTime"]) {
      const v = spec[f];
      if (v !== undefined && v !== null && (typeof v !== "string" || !MICRO_TIME_RE.test(v)))
        return `spec.${f}: Invalid value: ${JSON.stringify(v)}: must be RFC 3339 with microseconds (MicroTime)`;
    }
    const d = spec.leaseDurationSeconds;
    if (d !== undefined && d !== null && (!Number.isInteger(d) || (d as number) <= 0))
      return "spec.leaseDurationSeconds: Invalid value: must be greater than 0";
  }
  if (resource === "events") {
    const inv = (o.involvedObject ?? {}) as Record<string, unknown>;
    if (inv.namespace !== undefined && inv.namespace !== o.metadata.namespace)
      return "involvedObject.namespace: Invalid value: does not match event.namespace";
    if (typeof o.reason !== "string" || o.reason === "") return "reason: Required value";
  }
  if (resource === "imagepolicies" && o.status !== undefined && !isObj(o.status))
    return "status: Invalid value: must be an object";
  return undefined;
}

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return structuredClone(patch);
  const out: Record<string, unknown> = isObj(target) ? target : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > 3 * 1024 * 1024) {
        reject(new Error("request entity too large"));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

/** `token` sets a bearer token: faults can then tell clients apart (setFault's `auth`). */
export function kubeConfigFor(url: string, token?: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "fake", server: url, skipTLSVerify: true }],
    users: [token ? { name: "tollgate", token } : { name: "tollgate" }],
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

interface Route {
  resource: Resource;
  namespace?: string;
  name?: string;
  subresource?: string;
}

const NAMESPACED_CORE = new Set<Resource>(["secrets", "configmaps", "events"]);

function parsePath(p: string): Route | undefined {
  const s = p.split("/").filter(Boolean).map(decodeURIComponent);
  const item = (resource: Resource, rest: string[], namespace?: string): Route | undefined => {
    if (rest.length > 3) return undefined;
    const r: Route = { resource };
    if (namespace !== undefined) r.namespace = namespace;
    if (rest[1] !== undefined) r.name = rest[1];
    if (rest[2] !== undefined) r.subresource = rest[2];
    return r;
  };
  let rest: string[];
  let group: string | undefined;
  if (s[0] === "api" && s[1] === "v1") rest = s.slice(2);
  else if (s[0] === "apis" && s.length >= 3) {
    group = `${s[1]}/${s[2]}`;
    rest = s.slice(3);
  } else return undefined;
  const inGroup = (r: Resource) => (GROUP_PATH[r] ?? undefined) === group;
  if (group === undefined && rest[0] === "namespaces" && rest.length <= 2) return item("namespaces", rest);
  if (rest[0] === "namespaces" && rest.length >= 3) {
    const r = rest[2] as Resource;
    if (!(r in META) || !META[r].namespaced || !inGroup(r)) return undefined;
    if (group === undefined && !NAMESPACED_CORE.has(r)) return undefined;
    return item(r, rest.slice(2), rest[1]!);
  }
  const r = rest[0] as Resource;
  if (!(r in META) || !inGroup(r)) return undefined;
  // Namespaced kinds are listed across namespaces at the bare collection; cluster-scoped
  // kinds have items there.
  if (META[r].namespaced) return rest.length === 1 ? { resource: r } : undefined;
  return item(r, rest);
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
