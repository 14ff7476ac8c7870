// NRI plugin lifecycle, in the shape of containerd/nri pkg/stub: connect (or adopt the fd
// containerd pre-launched us with), multiplex, serve the Plugin service on conn 1 BEFORE
// registering on conn 2 (Configure may arrive before the RegisterPlugin reply), answer
// Configure/Synchronize/events, and reconnect with back-off when the socket goes away.

import net from "node:net";
import {
  type Container,
  type ContainerEviction,
  type ContainerUpdate,
  CreateContainerResponse,
  type DeepPartial,
  PluginDefinition,
  type PodSandbox,
  RuntimeDefinition,
} from "../gen/nri.js";
import { EVENT_NUMBER, eventFromNumber, eventMask, type NriEvent } from "./events.js";
import { Mux, PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN } from "./mux.js";
import { createClient, TtrpcClient, type TypedClient } from "./ttrpc/client.js";
import { type ServerCallContext, TtrpcServer } from "./ttrpc/server.js";
import { Code, TtrpcStatusError } from "./ttrpc/status.js";

export const DEFAULT_SOCKET_PATH = "/var/run/nri/nri.sock";

export interface ConfigureInfo {
  config: string;
  runtimeName: string;
  runtimeVersion: string;
  registrationTimeoutMs: number;
  requestTimeoutMs: number;
}

export interface RequestContext {
  /** Epoch ms: from the request's timeout_nano, or now + requestTimeoutMs. */
  deadline: number;
  /** Aborts at the deadline or when the connection closes. */
  signal: AbortSignal;
  metadata: Record<string, string>;
}

/** What a createContainer handler may return: any subset of CreateContainerResponse. */
export type CreateContainerAnswer = DeepPartial<CreateContainerResponse>;

export type PluginState = "idle" | "connecting" | "registered" | "disconnected" | "stopped";

export interface NriHandlers {
  configure?(info: ConfigureInfo): void | Promise<void>;
  /** Called once per connection with all Synchronize pages merged. */
  synchronize?(pods: PodSandbox[], containers: Container[]): ContainerUpdate[] | Promise<ContainerUpdate[]>;
  /**
   * Return nothing (allow as is) or a (partial) response with adjustments; throw
   * `new TtrpcStatusError(Code.PERMISSION_DENIED, msg)` to deny. Must answer before ctx.deadline:
   * containerd drops a plugin that misses it and creates the container anyway.
   */
  createContainer?(
    pod: PodSandbox,
    container: Container,
    ctx: RequestContext,
    // biome-ignore lint/suspicious/noConfusingVoidType: "return nothing" = allow without adjustments
  ): CreateContainerAnswer | void | Promise<CreateContainerAnswer | void>;
  /** Subscribed lifecycle events other than CreateContainer. Errors are logged, never returned. */
  stateChange?(event: NriEvent, pod?: PodSandbox, container?: Container): void | Promise<void>;
  onStateChange?(state: "connecting" | "registered" | "disconnected", detail?: string): void;
}

export interface NriLogger {
  info(o: object, msg?: string): void;
  warn(o: object, msg?: string): void;
  error(o: object, msg?: string): void;
  debug(o: object, msg?: string): void;
}

export interface NriPluginOptions {
  name: string;
  /** Two digits, e.g. "10": containerd orders plugins by this string. */
  index: string;
  socketPath?: string;
  events: NriEvent[];
  /** fd of a pre-launched plugin's socket; defaults to $NRI_PLUGIN_SOCKET when set. */
  preLaunchedFd?: number;
  reconnect?: { initialMs?: number; maxMs?: number };
  logger?: NriLogger;
  /** Bound on RegisterPlugin + Configure + Synchronize per connection (default 30 s). */
  setupTimeoutMs?: number;
  /** Environment consulted for NRI_PLUGIN_{SOCKET,NAME,IDX} (default process.env). */
  env?: Record<string, string | undefined>;
  /** Cap on pods + containers collected over Synchronize pages (default 500 000). */
  maxSyncObjects?: number;
}

const NOOP_LOGGER: NriLogger = { info() {}, warn() {}, error() {}, debug() {} };
const EMPTY_CREATE_RESPONSE: CreateContainerResponse = Object.freeze({
  update: Object.freeze([]) as unknown as ContainerUpdate[],
  evict: Object.freeze([]) as unknown as ContainerEviction[],
});

export class NriPlugin {
  private readonly name: string;
  private readonly index: string;
  private readonly fd: number | undefined;
  private readonly mask: number;
  private readonly subscribed: ReadonlySet<NriEvent>;
  private readonly log: NriLogger;
  private _state: PluginState = "idle";
  private _configureInfo: ConfigureInfo | undefined;
  private session: Session | undefined;
  private stopping = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private readonly ready: Deferred<void> = deferred();

  constructor(
    private readonly opts: NriPluginOptions,
    readonly handlers: NriHandlers,
  ) {
    const env = opts.env ?? process.env;
    const envFd = env.NRI_PLUGIN_SOCKET;
    this.fd = opts.preLaunchedFd ?? (envFd ? Number(envFd) : undefined);
    if (this.fd !== undefined && !(Number.isInteger(this.fd) && this.fd >= 0)) {
      throw new TypeError(
        `nri: invalid pre-launched socket fd ${JSON.stringify(envFd ?? opts.preLaunchedFd)}`,
      );
    }
    // A pre-launched plugin's identity is containerd's (env); it ignores what we register.
    this.name = (this.fd !== undefined && env.NRI_PLUGIN_NAME) || opts.name;
    this.index = (this.fd !== undefined && env.NRI_PLUGIN_IDX) || opts.index;
    if (!this.name) throw new TypeError("nri: plugin name must not be empty");
    if (!/^[0-9]{2}$/.test(this.index))
      throw new TypeError(`nri: plugin index must be two digits, got "${this.index}"`);
    // containerd reads mask 0 as "every event"; an empty list is a mistake, not a wish.
    if (opts.events.length === 0) throw new TypeError("nri: subscribe to at least one event");
    this.mask = eventMask(opts.events);
    this.subscribed = new Set(opts.events);
    this.log = opts.logger ?? NOOP_LOGGER;
    this.ready.promise.catch(() => {}); // observed via start()
  }

  get state(): PluginState {
    return this._state;
  }

  /** What containerd announced in the last Configure (timeouts in ms). */
  get configureInfo(): ConfigureInfo | undefined {
    return this._configureInfo;
  }

  /** The per-request deadline containerd enforces (Configure's request_timeout; 2 s until known). */
  get requestTimeoutMs(): number {
    return this._configureInfo?.requestTimeoutMs || 2000;
  }

  get preLaunched(): boolean {
    return this.fd !== undefined;
  }

  /** Resolves when the plugin has stopped for good (stop(), or a pre-launched plugin lost its socket). */
  wait(): Promise<void> {
    return this.loop ?? Promise.resolve();
  }

  /** Resolves once registered (RegisterPlugin + Configure + Synchronize done) the first time. */
  start(): Promise<void> {
    if (this.stopping) return Promise.reject(new Error("nri: plugin stopped"));
    this.loop ??= this.run();
    return this.ready.promise;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    this.session?.close();
    this.ready.reject(new Error("nri: plugin stopped before it registered"));
    await this.loop;
    this.setState("stopped");
  }

  /** Unsolicited container updates through containerd's Runtime service; returns the failed ones. */
  async updateContainers(
    updates: ContainerUpdate[],
    evictions: ContainerEviction[],
  ): Promise<ContainerUpdate[]> {
    const s = this.session;
    if (!s || this._state !== "registered")
      throw new TtrpcStatusError(Code.UNAVAILABLE, "nri: plugin not registered");
    const res = await s.runtime.updateContainers(
      { update: updates, evict: evictions },
      { timeoutMs: this.requestTimeoutMs },
    );
    return res.failed;
  }

  private setState(state: PluginState, detail?: string): void {
    this._state = state;
    if (state === "connecting" || state === "registered" || state === "disconnected") {
      try {
        this.handlers.onStateChange?.(state, detail);
      } catch (err) {
        this.log.warn({ err }, "nri: onStateChange handler threw");
      }
    }
  }

  private async run(): Promise<void> {
    const initial = this.opts.reconnect?.initialMs ?? 1000;
    const max = this.opts.reconnect?.maxMs ?? 30_000;
    let backoff = initial;
    while (!this.stopping) {
      this.setState("connecting");
      const reason = await this.connectOnce().then(
        (r) => r,
        (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
      );
      if (reason === "registered") backoff = initial;
      const why = reason === "registered" ? "connection closed" : reason.message;
      this.setState("disconnected", why);
      if (this.stopping) break;
      if (this.preLaunched) {
        // containerd never restarts a pre-launched plugin; reconnecting is impossible.
        this.log.error({ reason: why }, "nri: pre-launched plugin lost its connection; stopping");
        this.ready.reject(new Error(`nri: pre-launched plugin connection failed: ${why}`));
        this.stopping = true;
        break;
      }
      this.log.warn({ reason: why, retryInMs: backoff }, "nri: disconnected; reconnecting");
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, backoff);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = undefined;
      backoff = Math.min(backoff * 2, max);
    }
  }

  /** One connection from dial to close. Resolves "registered" if it got that far, else rejects. */
  private async connectOnce(): Promise<"registered"> {
    const socket =
      this.fd !== undefined ? adoptFd(this.fd) : await dial(this.opts.socketPath ?? DEFAULT_SOCKET_PATH);
    const s = new Session(
      this,
      socket,
      this.mask,
      this.subscribed,
      this.log,
      this.opts.maxSyncObjects ?? 500_000,
    );
    this.session = s;
    if (this.stopping) s.close();
    const setupMs = this.opts.setupTimeoutMs ?? 30_000;
    const timer = setTimeout(
      () => s.close(new Error(`registration not completed within ${setupMs} ms`)),
      setupMs,
    );
    try {
      // Conn 1 is already served (Session constructor); only now ask to register.
      await Promise.race([
        Promise.all([
          s.runtime.registerPlugin({ pluginName: this.name, pluginIdx: this.index }, { timeoutMs: setupMs }),
          s.configured.promise,
          s.synchronized.promise,
        ]),
        s.closed.then((err) => Promise.reject(err ?? new Error("connection closed during registration"))),
      ]);
    } catch (err) {
      s.close(err instanceof Error ? err : undefined);
      await s.closed;
      throw err;
    } finally {
      clearTimeout(timer);
    }
    this.log.info({ name: this.name, index: this.index }, "nri: plugin registered");
    this.setState("registered");
    this.ready.resolve();
    const err = await s.closed;
    if (err) this.log.warn({ err: err.message }, "nri: connection failed");
    return "registered";
  }

  /** @internal Called by the session on Configure. */
  configured(info: ConfigureInfo): void {
    this._configureInfo = info;
  }
}

/** One connection: the mux, our Plugin server on conn 1, the Runtime client on conn 2. */
class Session {
  readonly mux: Mux;
  readonly runtime: TypedClient<typeof RuntimeDefinition>;
  readonly configured: Deferred<void> = deferred();
  readonly synchronized: Deferred<void> = deferred();
  readonly closed: Promise<Error | undefined>;
  private syncPods: PodSandbox[] = [];
  private syncContainers: Container[] = [];
  private requestTimeoutMs = 2000;

  constructor(
    private readonly plugin: NriPlugin,
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
    }).register(PluginDefinition, {
      configure: (req) => this.configure(req),
      synchronize: (req) => this.synchronize(req.pods, req.containers, req.more),
      shutdown: () => {
        this.log.info({}, "nri: Shutdown requested by the runtime");
        return {};
      },
      createContainer: (req, ctx) => this.createContainer(req.pod, req.container, ctx),
      updateContainer: async (req) => {
        await this.notify("UpdateContainer", req.pod, req.container);
        return { update: [], evict: [] };
      },
      stopContainer: async (req) => {
        await this.notify("StopContainer", req.pod, req.container);
        return { update: [] };
      },
      stateChange: async (req) => {
        const ev = eventFromNumber(req.event);
        if (ev) await this.notify(ev, req.pod, req.container);
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
    this.log.info({ runtime: `${info.runtimeName}/${info.runtimeVersion}`, ...info }, "nri: configured");
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
    pod: PodSandbox | undefined,
    container: Container | undefined,
    ctx: ServerCallContext,
  ): Promise<CreateContainerResponse> {
    const handler = this.plugin.handlers.createContainer;
    if (!handler) return EMPTY_CREATE_RESPONSE;
    if (!pod || !container) {
      throw new TtrpcStatusError(Code.INVALID_ARGUMENT, "CreateContainer request without pod or container");
    }
    let deadline = ctx.deadline;
    let signal = ctx.signal;
    if (deadline === undefined) {
      deadline = Date.now() + this.requestTimeoutMs;
      signal = AbortSignal.any([signal, AbortSignal.timeout(this.requestTimeoutMs)]);
    }
    const res = await handler(pod, container, { deadline, signal, metadata: ctx.metadata });
    if (!res) return EMPTY_CREATE_RESPONSE;
    // The common "allow, no changes" answer costs no copy; anything else is normalised so that
    // encoding never throws on a missing field (a throw here would deny the container).
    if (res.adjust === undefined && !res.update?.length && !res.evict?.length) return EMPTY_CREATE_RESPONSE;
    return CreateContainerResponse.fromPartial(res);
  }

  /** Deliver a subscribed event; never fail the RPC for it (an error status would block the runtime). */
  private async notify(event: NriEvent, pod?: PodSandbox, container?: Container): Promise<void> {
    const h = this.plugin.handlers.stateChange;
    if (!h || !this.subscribed.has(event) || EVENT_NUMBER[event] === undefined) return;
    try {
      await h(event, pod, container);
    } catch (err) {
      this.log.warn({ err, event }, "nri: stateChange handler failed");
    }
  }
}

function dial(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection(path);
    const onError = (err: Error) => {
      sock.destroy();
      reject(err);
    };
    sock.once("error", onError);
    sock.once("connect", () => {
      sock.off("error", onError);
      resolve(sock);
    });
  });
}

function adoptFd(fd: number): net.Socket {
  return new net.Socket({ fd, readable: true, writable: true });
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
