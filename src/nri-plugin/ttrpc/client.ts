// ttrpc client: unary calls on odd stream ids (1, 3, 5, …), replies matched by id in any order.

import type { Duplex } from "node:stream";
import { type KeyValue, Request, Response } from "../../gen/ttrpc.js";
import { Channel } from "./channel.js";
import { MessageType, oversizedMessage } from "./frame.js";
import { Code, closedError, TtrpcStatusError } from "./status.js";
import type { MessageCodec, MethodDefinition, ServiceDefinition } from "./types.js";

export interface CallOptions {
  /** Per-call timeout; sent to the server as timeout_nano. */
  timeoutMs?: number;
  /** Outgoing metadata (ttrpc KeyValue pairs). */
  metadata?: Record<string, string>;
  /** Abandon the call early (rejects with CANCELLED). */
  signal?: AbortSignal;
}

export interface ClientOptions {
  /** Called once when the connection closes; `err` is undefined for a clean close. */
  onClose?: (err: Error | undefined) => void;
  /** Default per-call timeout when a call gives none (0 = none). */
  defaultTimeoutMs?: number;
}

interface Pending {
  resolve(payload: Buffer): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

const MAX_STREAM_ID = 0xffffffff;

export class TtrpcClient {
  private readonly channel: Channel;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(
    stream: Duplex,
    private readonly opts: ClientOptions = {},
  ) {
    this.channel = new Channel(stream, {
      frame: (id, type, _flags, payload) => this.onFrame(id, type, payload),
      oversized: (id, _type, _flags, length) =>
        this.settle(id, new TtrpcStatusError(Code.RESOURCE_EXHAUSTED, oversizedMessage(length))),
      closed: (err) => this.onClosed(err),
    });
  }

  get isClosed(): boolean {
    return this.channel.isClosed;
  }

  /** Number of calls waiting for a reply. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Raw unary call: `payload` is the encoded request message; resolves with the encoded reply. */
  call(service: string, method: string, payload: Uint8Array, opts: CallOptions = {}): Promise<Buffer> {
    if (this.channel.isClosed) return Promise.reject(closedError(this.channel.error));
    if (opts.signal?.aborted) return Promise.reject(new TtrpcStatusError(Code.CANCELLED, "context canceled"));
    if (this.nextId > MAX_STREAM_ID) {
      return Promise.reject(new TtrpcStatusError(Code.RESOURCE_EXHAUSTED, "ttrpc: stream ids exhausted"));
    }
    const id = this.nextId;
    this.nextId += 2;
    const timeoutMs = opts.timeoutMs ?? this.opts.defaultTimeoutMs ?? 0;
    const metadata: KeyValue[] = [];
    if (opts.metadata)
      for (const [key, value] of Object.entries(opts.metadata)) metadata.push({ key, value });
    const body = Request.encode({
      service,
      method,
      payload: payload as Buffer,
      timeoutNano: timeoutMs > 0 ? Math.round(timeoutMs * 1e6) : 0,
      metadata,
    }).finish();

    return new Promise<Buffer>((resolve, reject) => {
      const p: Pending = { resolve, reject, timer: undefined, signal: opts.signal, onAbort: undefined };
      if (timeoutMs > 0) {
        p.timer = setTimeout(
          () => this.settle(id, new TtrpcStatusError(Code.DEADLINE_EXCEEDED, "context deadline exceeded")),
          timeoutMs,
        );
      }
      if (opts.signal) {
        p.onAbort = () => this.settle(id, new TtrpcStatusError(Code.CANCELLED, "context canceled"));
        opts.signal.addEventListener("abort", p.onAbort, { once: true });
      }
      this.pending.set(id, p);
      try {
        this.channel.send(id, MessageType.REQUEST, 0, body);
      } catch (err) {
        this.settle(id, err as Error);
      }
    });
  }

  /** Typed unary call through a generated method definition. */
  async unary<Req, Res>(
    service: string,
    method: MethodDefinition<Req, Res>,
    request: Req,
    opts?: CallOptions,
  ): Promise<Res> {
    const reply = await this.call(service, method.name, method.requestType.encode(request).finish(), opts);
    return decodeReply(method.responseType, reply);
  }

  close(): void {
    this.channel.close();
  }

  private onFrame(id: number, type: number, payload: Buffer): void {
    // Frames for ids we are not waiting on (late replies after a timeout, data on unknown
    // streams, requests — a client serves nothing) are dropped, as the Go client does.
    if (type !== MessageType.RESPONSE || !this.pending.has(id)) return;
    let res: Response;
    try {
      res = Response.decode(payload);
    } catch (err) {
      this.settle(
        id,
        new TtrpcStatusError(Code.INTERNAL, `ttrpc: failed to unmarshal response: ${msg(err)}`),
      );
      return;
    }
    const st = res.status;
    if (st && st.code !== Code.OK) {
      this.settle(
        id,
        new TtrpcStatusError(
          st.code,
          st.message,
          st.details.map((d) => ({ typeUrl: d.typeUrl, value: d.value })),
        ),
      );
    } else {
      this.settle(id, undefined, res.payload);
    }
  }

  private settle(id: number, err: Error | undefined, payload?: Buffer): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if (p.timer) clearTimeout(p.timer);
    if (p.onAbort) p.signal?.removeEventListener("abort", p.onAbort);
    if (err) p.reject(err);
    else p.resolve(payload!);
  }

  private onClosed(err: Error | undefined): void {
    const e = closedError(err);
    for (const id of [...this.pending.keys()]) this.settle(id, e);
    this.opts.onClose?.(err);
  }
}

function decodeReply<Res>(codec: MessageCodec<Res>, payload: Buffer): Res {
  try {
    return codec.decode(payload);
  } catch (err) {
    throw new TtrpcStatusError(Code.INTERNAL, `ttrpc: error unmarshalling payload: ${msg(err)}`);
  }
}

function msg(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** `{ registerPlugin(req, opts?) → Promise<Empty>, … }` for a generated service definition. */
export type TypedClient<D extends ServiceDefinition> = {
  [K in keyof D["methods"]]: D["methods"][K] extends MethodDefinition<infer Req, infer Res>
    ? (request: Req, opts?: CallOptions) => Promise<Res>
    : never;
};

export function createClient<D extends ServiceDefinition>(def: D, client: TtrpcClient): TypedClient<D> {
  const out: Record<string, unknown> = {};
  for (const [key, method] of Object.entries(def.methods)) {
    out[key] = (request: unknown, opts?: CallOptions) => client.unary(def.fullName, method, request, opts);
  }
  return out as TypedClient<D>;
}
