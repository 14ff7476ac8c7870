// ttrpc server: a service/method registry built from generated definitions, serving any number
// of connections. Handlers run concurrently; each reply goes out on the request's stream id.
// Error texts follow containerd/ttrpc v1.2.7 (server.go, services.go) so peers see familiar status.

import type { Duplex } from "node:stream";
import { type Request, Request as RequestCodec, Response } from "../../gen/ttrpc.js";
import { Channel } from "./channel.js";
import { MessageType, oversizedMessage } from "./frame.js";
import { Code, TtrpcStatusError, toStatusError } from "./status.js";
import type { MethodDefinition, ServiceDefinition } from "./types.js";

export interface ServerCallContext {
  readonly service: string;
  readonly method: string;
  readonly streamId: number;
  /** Request metadata; keys lower-cased (Go looks them up case-insensitively). */
  readonly metadata: Record<string, string>;
  /** Epoch ms from the request's timeout_nano, or undefined when the client set none. */
  readonly deadline: number | undefined;
  /** Aborted when the deadline passes or the connection closes. */
  readonly signal: AbortSignal;
}

export type RawHandler = (payload: Buffer, ctx: ServerCallContext) => Uint8Array | Promise<Uint8Array>;

/** Implementation object for a generated definition: `{ configure(req, ctx) → res, … }`, any subset. */
export type ServiceImplementation<D extends ServiceDefinition> = {
  [K in keyof D["methods"]]?: D["methods"][K] extends MethodDefinition<infer Req, infer Res>
    ? (request: Req, ctx: ServerCallContext) => Res | Promise<Res>
    : never;
};

export interface ServerOptions {
  /** Cap on concurrently running handlers per connection; more get RESOURCE_EXHAUSTED. */
  maxConcurrent?: number;
  /** Called when a connection closes (err undefined = clean close). */
  onConnectionClose?: (conn: ServerConnection, err: Error | undefined) => void;
}

export class TtrpcServer {
  private readonly services = new Map<string, Map<string, RawHandler>>();
  private readonly connections = new Set<ServerConnection>();

  constructor(readonly opts: ServerOptions = {}) {}

  register<D extends ServiceDefinition>(def: D, impl: ServiceImplementation<D>): this {
    const methods = this.services.get(def.fullName) ?? new Map<string, RawHandler>();
    for (const [key, m] of Object.entries(def.methods)) {
      const fn = (impl as Record<string, ((req: unknown, ctx: ServerCallContext) => unknown) | undefined>)[
        key
      ];
      if (typeof fn !== "function") continue; // unimplemented → "method X" UNIMPLEMENTED
      if (m.requestStream || m.responseStream) continue; // streaming is not used by NRI
      methods.set(m.name, async (payload, ctx) => {
        let req: unknown;
        try {
          req = m.requestType.decode(payload);
        } catch (err) {
          throw new TtrpcStatusError(
            Code.INTERNAL,
            `ttrpc: error unmarshalling payload: ${err instanceof Error ? err.message : String(err)}`,
          );
        }
        const res = await fn.call(impl, req, ctx);
        return m.responseType.encode(res).finish();
      });
    }
    this.services.set(def.fullName, methods);
    return this;
  }

  registerRaw(service: string, method: string, handler: RawHandler): this {
    const methods = this.services.get(service) ?? new Map<string, RawHandler>();
    methods.set(method, handler);
    this.services.set(service, methods);
    return this;
  }

  /** @internal */
  lookup(service: string, method: string): RawHandler | TtrpcStatusError {
    const methods = this.services.get(service);
    if (!methods) return new TtrpcStatusError(Code.UNIMPLEMENTED, `service ${service}`);
    return methods.get(method) ?? new TtrpcStatusError(Code.UNIMPLEMENTED, `method ${method}`);
  }

  /** Serve one connection (a socket, or an NRI mux connection). */
  serve(stream: Duplex): ServerConnection {
    const conn = new ServerConnection(this, stream, this.opts.maxConcurrent ?? 512, (c, err) => {
      this.connections.delete(c);
      this.opts.onConnectionClose?.(c, err);
    });
    if (!conn.isClosed) this.connections.add(conn);
    return conn;
  }

  /** Close every connection; running handlers see their signal abort. */
  close(): void {
    for (const c of [...this.connections]) c.close();
  }
}

// Per call: no AbortController and no timer unless needed. The controller is made when a
// handler first reads ctx.signal (most never do); deadlines share one timer per connection,
// armed for the earliest one (sequential calls finish long before it fires).
class Call implements ServerCallContext {
  done = false;
  private ctrl: AbortController | undefined;
  private reason: unknown;

  constructor(
    readonly service: string,
    readonly method: string,
    readonly streamId: number,
    readonly metadata: Record<string, string>,
    /** Epoch ms, for handlers that pass it on (gRPC deadlines are wall-clock). */
    readonly deadline: number | undefined,
    /** The same deadline on the monotonic clock: what the connection's timer enforces. */
    readonly expiresAt: number | undefined,
  ) {}

  get signal(): AbortSignal {
    if (!this.ctrl) {
      this.ctrl = new AbortController();
      if (this.reason !== undefined) this.ctrl.abort(this.reason);
    }
    return this.ctrl.signal;
  }

  abort(reason: unknown): void {
    if (this.reason !== undefined) return;
    this.reason = reason;
    this.ctrl?.abort(reason);
  }
}

// setTimeout caps at 2^31-1 ms; a longer deadline is effectively none.
const MAX_TIMER_MS = 0x7fffffff;

export class ServerConnection {
  private readonly channel: Channel;
  private readonly calls = new Map<number, Call>();
  private lastStreamId = 0;
  /** The one deadline timer of this connection and the deadline it is armed for. */
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;

  constructor(
    private readonly server: TtrpcServer,
    stream: Duplex,
    private readonly maxConcurrent: number,
    private readonly onClose: (c: ServerConnection, err: Error | undefined) => void,
  ) {
    this.channel = new Channel(stream, {
      frame: (id, type, flags, payload) => this.onFrame(id, type, flags, payload),
      oversized: (id, _type, _flags, length) =>
        this.sendStatus(id, new TtrpcStatusError(Code.RESOURCE_EXHAUSTED, oversizedMessage(length))),
      closed: (err) => this.onClosed(err),
    });
  }

  get isClosed(): boolean {
    return this.channel.isClosed;
  }

  get error(): Error | undefined {
    return this.channel.error;
  }

  /** Handlers still running. */
  get active(): number {
    return this.calls.size;
  }

  close(err?: Error): void {
    this.channel.close(err);
  }

  private onFrame(id: number, type: number, _flags: number, payload: Buffer): void {
    if (id % 2 !== 1) {
      this.sendStatus(id, invalid("StreamID must be odd for client initiated streams"));
      return;
    }
    if (type === MessageType.DATA) {
      // No streaming methods are registered, so no stream is ever open for data.
      this.sendStatus(id, invalid("StreamID is no longer active"));
      return;
    }
    if (type !== MessageType.REQUEST) return; // ignored for forward compatibility, like Go
    if (id <= this.lastStreamId) {
      this.sendStatus(id, invalid("StreamID cannot be re-used and must increment"));
      return;
    }
    this.lastStreamId = id;
    let req: Request;
    try {
      req = RequestCodec.decode(payload);
    } catch (err) {
      this.sendStatus(
        id,
        invalid(`unmarshal request error: ${err instanceof Error ? err.message : String(err)}`),
      );
      return;
    }
    const handler = this.server.lookup(req.service, req.method);
    if (handler instanceof TtrpcStatusError) {
      this.sendStatus(id, handler);
      return;
    }
    if (this.calls.size >= this.maxConcurrent) {
      this.sendStatus(id, new TtrpcStatusError(Code.RESOURCE_EXHAUSTED, "too many concurrent requests"));
      return;
    }
    this.dispatch(id, req, handler);
  }

  private dispatch(id: number, req: Request, handler: RawHandler): void {
    const metadata: Record<string, string> = {};
    for (const kv of req.metadata) metadata[kv.key.toLowerCase()] = kv.value;
    let deadline: number | undefined;
    let expiresAt: number | undefined;
    if (req.timeoutNano > 0) {
      const ms = req.timeoutNano / 1e6;
      deadline = Date.now() + ms;
      // Enforced on the monotonic clock, as containerd measures it: a wall-clock step must
      // neither hold a call past its timeout nor expire it early.
      expiresAt = performance.now() + ms;
      if (ms < MAX_TIMER_MS && expiresAt < this.timerAt) this.armTimer(expiresAt);
    }
    const call = new Call(req.service, req.method, id, metadata, deadline, expiresAt);
    this.calls.set(id, call);
    let result: Uint8Array | Promise<Uint8Array>;
    try {
      result = handler(req.payload, call);
    } catch (err) {
      this.finish(id, call, err);
      return;
    }
    if (result instanceof Uint8Array) this.finish(id, call, undefined, result);
    else
      result.then(
        (payload) => this.finish(id, call, undefined, payload),
        (err) => this.finish(id, call, err),
      );
  }

  /** `at` is on the monotonic clock (performance.now). */
  private armTimer(at: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.expire(), Math.max(1, Math.ceil(at - performance.now())));
    // The socket keeps the process alive while calls are open; the timer need not.
    this.timer.unref();
  }

  /** Answers DEADLINE_EXCEEDED for every call past its deadline; re-arms for the next one. */
  private expire(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const [id, call] of [...this.calls]) {
      const d = call.expiresAt;
      if (d === undefined || d - now >= MAX_TIMER_MS) continue;
      if (d <= now) {
        const err = new TtrpcStatusError(Code.DEADLINE_EXCEEDED, "context deadline exceeded");
        call.abort(err);
        this.finish(id, call, err);
      } else if (d < next) next = d;
    }
    if (next < Infinity && !this.channel.isClosed) this.armTimer(next);
  }

  private finish(id: number, call: Call, err: unknown, payload?: Uint8Array): void {
    if (call.done) return;
    call.done = true;
    this.calls.delete(id);
    if (this.channel.isClosed) return;
    if (err !== undefined) {
      this.sendStatus(id, toStatusError(err));
      return;
    }
    try {
      this.channel.sendWrapped(id, MessageType.RESPONSE, 0, 0x12 /* Response.payload = 2 */, payload!);
    } catch (e) {
      // Reply too large for a frame: tell the client instead of killing the connection.
      this.sendStatus(id, toStatusError(e));
    }
  }

  private sendStatus(id: number, st: TtrpcStatusError): void {
    if (this.channel.isClosed) return;
    const body = Response.encode({
      status: {
        code: st.code,
        message: st.message,
        details: st.details.map((d) => ({ ...d, value: Buffer.from(d.value) })),
      },
      payload: Buffer.alloc(0),
    }).finish();
    try {
      this.channel.send(id, MessageType.RESPONSE, 0, body);
    } catch {
      // Only possible for a status message over 4 MiB; drop it rather than the connection.
    }
  }

  private onClosed(err: Error | undefined): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const call of this.calls.values()) {
      call.done = true;
      call.abort(new TtrpcStatusError(Code.CANCELLED, "ttrpc: connection closed"));
    }
    this.calls.clear();
    this.onClose(this, err);
  }
}

function invalid(message: string): TtrpcStatusError {
  return new TtrpcStatusError(Code.INVALID_ARGUMENT, message);
}
