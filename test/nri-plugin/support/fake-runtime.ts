// An in-test "containerd side" of NRI, built from our own ttrpc client/server and mux, that
// behaves like containerd 2.1.9's adaptation (protocols.md §2): it serves Runtime on conn 2,
// calls Plugin on conn 1, sends Configure BEFORE replying to RegisterPlugin (the ordering a
// plugin must survive), pages Synchronize and enforces the split-sync rule.

import net from "node:net";
import type { Duplex } from "node:stream";
import {
  type Container,
  type ContainerUpdate,
  CreateContainerResponse,
  PluginDefinition,
  type PodSandbox,
  RuntimeDefinition,
  type UpdateContainersRequest,
} from "../../../src/gen/nri.js";
import { Mux, PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN } from "../../../src/nri-plugin/mux.js";
import { createClient, TtrpcClient, type TypedClient } from "../../../src/nri-plugin/ttrpc/client.js";
import { TtrpcServer } from "../../../src/nri-plugin/ttrpc/server.js";
import { Code, TtrpcStatusError } from "../../../src/nri-plugin/ttrpc/status.js";

export interface FakeRuntimeOptions {
  pods?: PodSandbox[];
  containers?: Container[];
  /** Objects per Synchronize page (containerd splits only above 4 MiB; tests page smaller). */
  syncPageSize?: number;
  config?: string;
  requestTimeoutMs?: number;
  registrationTimeoutMs?: number;
  /** Reply to RegisterPlugin only after Configure + Synchronize were answered (default true). */
  configureBeforeRegisterReply?: boolean;
}

export class FakePluginConn {
  readonly log: string[] = [];
  name = "";
  idx = "";
  events = -1;
  syncReplies: { more: boolean; update: ContainerUpdate[] }[] = [];
  syncUpdates: ContainerUpdate[] = [];
  readonly updateRequests: UpdateContainersRequest[] = [];
  readonly plugin: TypedClient<typeof PluginDefinition>;
  private readonly pluginClient: TtrpcClient;
  readonly mux: Mux;
  readonly ready: Promise<void>;
  readonly closed: Promise<Error | undefined>;
  private setupDone!: (err?: Error) => void;

  constructor(
    socket: Duplex,
    private readonly opts: FakeRuntimeOptions,
  ) {
    let onClose!: (e: Error | undefined) => void;
    this.closed = new Promise((r) => {
      onClose = r;
    });
    this.ready = new Promise((resolve, reject) => {
      this.setupDone = (err) => (err ? reject(err) : resolve());
    });
    this.ready.catch(() => {});
    this.mux = new Mux(socket, {
      onClose: (e) => {
        this.log.push("closed");
        this.setupDone(e ?? new Error("closed before setup"));
        onClose(e);
      },
    });
    new TtrpcServer()
      .register(RuntimeDefinition, {
        registerPlugin: async (req) => {
          this.log.push("register-request");
          if (!req.pluginName) throw new Error("invalid (empty) plugin name");
          if (!/^[0-9]{2}$/.test(req.pluginIdx)) throw new Error(`invalid plugin index "${req.pluginIdx}"`);
          this.name = req.pluginName;
          this.idx = req.pluginIdx;
          if (opts.configureBeforeRegisterReply ?? true) await this.setup();
          else setImmediate(() => void this.setup());
          this.log.push("register-reply");
          return {};
        },
        updateContainers: (req) => {
          this.updateRequests.push(req);
          return { failed: req.update.filter((u) => u.containerId.startsWith("fail-")) };
        },
      })
      .serve(this.mux.open(RUNTIME_SERVICE_CONN));
    this.pluginClient = new TtrpcClient(this.mux.open(PLUGIN_SERVICE_CONN));
    this.plugin = createClient(PluginDefinition, this.pluginClient);
  }

  get requestTimeoutMs(): number {
    return this.opts.requestTimeoutMs ?? 2000;
  }

  /** Configure, then paged Synchronize, as adaptation/plugin.go does. Closes the plugin on error. */
  private async setup(): Promise<void> {
    try {
      const t = { timeoutMs: this.requestTimeoutMs };
      this.log.push("configure");
      const cfg = await this.plugin.configure(
        {
          config: this.opts.config ?? "",
          runtimeName: "containerd",
          runtimeVersion: "2.1.9+unknown",
          registrationTimeout: this.opts.registrationTimeoutMs ?? 5000,
          requestTimeout: this.requestTimeoutMs,
        },
        t,
      );
      this.events = cfg.events;
      if (cfg.events & ~0x7ff) throw new Error("invalid plugin events");
      const objs: ({ pod: PodSandbox } | { container: Container })[] = [
        ...(this.opts.pods ?? []).map((pod) => ({ pod })),
        ...(this.opts.containers ?? []).map((container) => ({ container })),
      ];
      const size = this.opts.syncPageSize ?? Number.MAX_SAFE_INTEGER;
      for (let off = 0; ; off += size) {
        const page = objs.slice(off, off + size);
        const more = off + size < objs.length;
        this.log.push(`synchronize more=${more}`);
        const res = await this.plugin.synchronize(
          {
            pods: page.flatMap((o) => ("pod" in o ? [o.pod] : [])),
            containers: page.flatMap((o) => ("container" in o ? [o.container] : [])),
            more,
          },
          t,
        );
        this.syncReplies.push(res);
        if (more && (!res.more || res.update.length > 0))
          throw new Error("plugin does not handle split sync requests");
        if (!more) {
          this.syncUpdates = res.update;
          break;
        }
      }
      this.setupDone();
    } catch (err) {
      this.setupDone(err as Error);
      this.mux.close(err as Error);
    }
  }

  /** containerd's CreateContainer call, with its metadata and the request timeout. */
  createContainer(pod: PodSandbox, container: Container) {
    return this.plugin.createContainer(
      { pod, container },
      { timeoutMs: this.requestTimeoutMs, metadata: { "containerd-namespace-ttrpc": "k8s.io" } },
    );
  }

  /**
   * CreateContainer with a request encoded once by the caller: benchmarks send the same request
   * many times, and encoding it is containerd's cost, not the plugin's.
   */
  async createContainerEncoded(request: Uint8Array): Promise<CreateContainerResponse> {
    const reply = await this.pluginClient.call(PluginDefinition.fullName, "CreateContainer", request, {
      timeoutMs: this.requestTimeoutMs,
      metadata: { "containerd-namespace-ttrpc": "k8s.io" },
    });
    return CreateContainerResponse.decode(reply);
  }

  disconnect(): void {
    this.mux.close();
  }
}

/** Listens on a unix socket like containerd's NRI socket and handles each plugin connection. */
export class FakeRuntime {
  readonly conns: FakePluginConn[] = [];
  private waiters: ((c: FakePluginConn) => void)[] = [];
  private constructor(
    private readonly server: net.Server,
    readonly opts: FakeRuntimeOptions,
  ) {}

  static async listen(path: string, opts: FakeRuntimeOptions = {}): Promise<FakeRuntime> {
    const server = net.createServer();
    const rt = new FakeRuntime(server, opts);
    server.on("connection", (s) => rt.adopt(s));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, resolve);
    });
    return rt;
  }

  /** Handle a plugin on an already connected socket (the pre-launched case). */
  adopt(socket: Duplex): FakePluginConn {
    const c = new FakePluginConn(socket, this.opts);
    this.conns.push(c);
    const w = this.waiters.shift();
    if (w) w(c);
    return c;
  }

  /** The n-th plugin connection (0-based), once it exists. */
  connection(n: number): Promise<FakePluginConn> {
    const c = this.conns[n];
    if (c) return Promise.resolve(c);
    return new Promise((resolve) => {
      const check = (x: FakePluginConn) => {
        if (this.conns.indexOf(x) === n) resolve(x);
        else this.waiters.push(check);
      };
      this.waiters.push(check);
    });
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.disconnect();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

export function denied(msg: string): TtrpcStatusError {
  return new TtrpcStatusError(Code.PERMISSION_DENIED, msg);
}
