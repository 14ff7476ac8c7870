// NRI plugin lifecycle, in the shape of containerd/nri pkg/stub: connect (or adopt the fd
// containerd pre-launched us with), register, stay registered, and reconnect with back-off
// when the socket goes away. One connection's protocol work lives in session.ts.

import net from "node:net";
import type { ContainerEviction, ContainerUpdate } from "../gen/nri.js";
import {
  type ConfigureInfo,
  DEFAULT_SOCKET_PATH,
  type NriHandlers,
  type NriLogger,
  type NriPluginOptions,
  type PluginState,
} from "./api.js";
import { eventMask, type NriEvent } from "./events.js";
import { type Deferred, deferred, Session } from "./session.js";
import { Code, TtrpcStatusError } from "./ttrpc/status.js";

const NOOP_LOGGER: NriLogger = { info() {}, warn() {}, error() {}, debug() {} };

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
