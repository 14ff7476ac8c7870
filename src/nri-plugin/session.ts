// One NRI connection: the mux, our Plugin service on conn 1 (served before we register, since
// containerd may send Configure before the RegisterPlugin reply), the Runtime client on conn 2.

import type net from "node:net";
import {
  type Container,
  type ContainerEviction,
  type ContainerUpdate,
  CreateContainerResponse,
  PluginDefinition,
  type PodSandbox,
  RuntimeDefinition,
} from "../gen/nri.js";
import type { ConfigureInfo, NriHandlers, NriLogger, RequestContext } from "./api.js";
import { type ContainerIdentity, CreateContainerIdentityCodec, type PodIdentity } from "./create-request.js";
import { EVENT_NUMBER, eventFromNumber, type NriEvent } from "./events.js";
import { Mux, PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN } from "./mux.js";
import { createClient, TtrpcClient, type TypedClient } from "./ttrpc/client.js";
import { type ServerCallContext, TtrpcServer } from "./ttrpc/server.js";
import { Code, TtrpcStatusError } from "./ttrpc/status.js";

/** How long before containerd's deadline an event answer goes out regardless of its handler. */
const NOTIFY_MARGIN_MS = 100;

// Plugin service as generated, except that CreateContainer requests are decoded for identity
// only (create-request.ts): the hot path of every container start.
const PLUGIN_SERVICE = {
  ...PluginDefinition,
  methods: {
    ...PluginDefinition.methods,
    createContainer: {
      ...PluginDefinition.methods.createContainer,
      requestType: CreateContainerIdentityCodec,
    },
  },
} as const;

/** What a session needs from the plugin that owns it. */
export interface SessionHost {
  readonly handlers: NriHandlers;
  configured(info: ConfigureInfo): void;
}

const EMPTY_CREATE_RESPONSE: CreateContainerResponse = Object.freeze({
  update: Object.freeze([]) as unknown as ContainerUpdate[],
  evict: Object.freeze([]) as unknown as ContainerEviction[],
});

/** One connection: the mux, our Plugin server on conn 1, the Runtime client on conn 2. */
export class Session {
  readonly mux: Mux;
  readonly runtime: TypedClient<typeof RuntimeDefinition>;
  readonly configured: Deferred<void> = deferred();
  readonly synchronized: Deferred<void> = deferred();
  readonly closed: Promise<Error | undefined>;
  private syncPods: PodSandbox[] = [];
  private syncContainers: Container[] = [];
  private requestTimeoutMs = 2000;

  constructor(
    private readonly plugin: SessionHost,
    socket: net.Socket,
    private readonly mask: number,
    private readonly subscribed: ReadonlySet<NriEvent>,
    private readonly log: NriLogger,
    private readonly maxSyncObjects: number,
  ) {
    let onClosed!: (err: Error | undefined) => void;
    this.closed = new Promise((r) => {
      onClosed = r;
    });
    this.configured.promise.catch(() => {});
    this.synchronized.promise.catch(() => {});
    this.mux = new Mux(socket, { onClose: (err) => onClosed(err) });
    const server = new TtrpcServer({
      // A broken ttrpc stream on either conn makes the whole NRI connection useless.
      onConnectionClose: (_c, err) => this.close(err),
    }).register(PLUGIN_SERVICE, {
      configure: (req) => this.configure(req),
      synchronize: (req) => this.synchronize(req.pods, req.containers, req.more),
      shutdown: () => {
        this.log.info({}, "nri: Shutdown requested by the runtime");
        return {};
      },
      createContainer: (req, ctx) => this.createContainer(req.pod, req.container, ctx),
      updateContainer: async (req, ctx) => {
        await this.notify(ctx, "UpdateContainer", req.pod, req.container);
        return { update: [], evict: [] };
      },
      stopContainer: async (req, ctx) => {
        await this.notify(ctx, "StopContainer", req.pod, req.container);
        return { update: [] };
      },
      stateChange: async (req, ctx) => {
        const ev = eventFromNumber(req.event);
        if (ev) await this.notify(ctx, ev, req.pod, req.container);
        return {};
      },
    });
    server.serve(this.mux.open(PLUGIN_SERVICE_CONN));
    const client = new TtrpcClient(this.mux.open(RUNTIME_SERVICE_CONN), {
      onClose: (err) => this.close(err),
    });
    this.runtime = createClient(RuntimeDefinition, client);
  }

  close(err?: Error): void {
    this.configured.reject(err ?? new Error("connection closed"));
    this.synchronized.reject(err ?? new Error("connection closed"));
    this.mux.close(err);
  }

  private async configure(req: {
    config: string;
    runtimeName: string;
    runtimeVersion: string;
    registrationTimeout: number;
    requestTimeout: number;
  }) {
    const info: ConfigureInfo = {
      config: req.config,
      runtimeName: req.runtimeName,
      runtimeVersion: req.runtimeVersion,
      registrationTimeoutMs: req.registrationTimeout,
      requestTimeoutMs: req.requestTimeout,
    };
    if (info.requestTimeoutMs > 0) this.requestTimeoutMs = info.requestTimeoutMs;
    this.plugin.configured(info);
    this.log.info(
      {
        runtime: `${info.runtimeName}/${info.runtimeVersion}`,
        configBytes: info.config.length, // the content may be sensitive: not logged
        registrationTimeoutMs: info.registrationTimeoutMs,
        requestTimeoutMs: info.requestTimeoutMs,
      },
      "nri: configured",
    );
    try {
      await this.plugin.handlers.configure?.(info);
    } catch (err) {
      this.configured.reject(err);
      throw err;
    }
    this.configured.resolve();
    return { events: this.mask };
  }

  private async synchronize(pods: PodSandbox[], containers: Container[], more: boolean) {
    const total = this.syncPods.length + this.syncContainers.length + pods.length + containers.length;
    if (total > this.maxSyncObjects) {
      throw new TtrpcStatusError(
        Code.RESOURCE_EXHAUSTED,
        `synchronize: more than ${this.maxSyncObjects} objects`,
      );
    }
    for (const p of pods) this.syncPods.push(p);
    for (const c of containers) this.syncContainers.push(c);
    // containerd requires more=true and no updates for every page but the last.
    if (more) return { update: [], more: true };
    const allPods = this.syncPods;
    const allContainers = this.syncContainers;
    this.syncPods = [];
    this.syncContainers = [];
    const update = (await this.plugin.handlers.synchronize?.(allPods, allContainers)) ?? [];
    this.synchronized.resolve();
    return { update, more: false };
  }

  private async createContainer(
    pod: PodIdentity | undefined,
    container: ContainerIdentity | undefined,
    ctx: ServerCallContext,
  ): Promise<CreateContainerResponse> {
    const handler = this.plugin.handlers.createContainer;
    if (!handler) return EMPTY_CREATE_RESPONSE;
    if (!pod || !container) {
      throw new TtrpcStatusError(Code.INVALID_ARGUMENT, "CreateContainer request without pod or container");
    }
    let rc: RequestContext;
    if (ctx.deadline === undefined) {
      const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(this.requestTimeoutMs)]);
      rc = { deadline: Date.now() + this.requestTimeoutMs, signal, metadata: ctx.metadata };
    } else {
      // The signal is built only if the handler reads it (ttrpc/server.ts).
      rc = {
        deadline: ctx.deadline,
        get signal() {
          return ctx.signal;
        },
        metadata: ctx.metadata,
      };
    }
    const res = await handler(pod, container, rc);
    if (!res) return EMPTY_CREATE_RESPONSE;
    // The common "allow, no changes" answer costs no copy; anything else is normalised so that
    // encoding never throws on a missing field (a throw here would deny the container).
    if (res.adjust === undefined && !res.update?.length && !res.evict?.length) return EMPTY_CREATE_RESPONSE;
    return CreateContainerResponse.fromPartial(res);
  }

  /**
   * Deliver a subscribed event. Never fail the RPC for it, and answer before containerd's
   * deadline even if the handler is still busy: a missed deadline would drop the plugin and
   * with it the CreateContainer gate.
   */
  private async notify(
    ctx: ServerCallContext,
    event: NriEvent,
    pod?: PodSandbox,
    container?: Container,
  ): Promise<void> {
    const h = this.plugin.handlers.stateChange;
    if (!h || !this.subscribed.has(event) || EVENT_NUMBER[event] === undefined) return;
    const run = (async () => h(event, pod, container))().then(
      () => true,
      (err: unknown) => {
        this.log.warn({ err, event }, "nri: stateChange handler failed");
        return true;
      },
    );
    const budget = (ctx.deadline ?? Date.now() + this.requestTimeoutMs) - Date.now() - NOTIFY_MARGIN_MS;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((r) => {
      timer = setTimeout(() => r(false), Math.max(0, budget));
    });
    const done = await Promise.race([run, late]);
    clearTimeout(timer);
    if (!done)
      this.log.warn({ event }, "nri: stateChange handler still running at the deadline; answered OK");
  }
}

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: unknown): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
