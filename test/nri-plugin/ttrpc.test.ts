import type net from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Empty, type RegisterPluginRequest, RuntimeDefinition } from "../../src/gen/nri.js";
import { Request, Response } from "../../src/gen/ttrpc.js";
import { createClient, TtrpcClient } from "../../src/nri-plugin/ttrpc/client.js";
import { encodeFrame, MAX_PAYLOAD, MessageType } from "../../src/nri-plugin/ttrpc/frame.js";
import { type ServerCallContext, TtrpcServer } from "../../src/nri-plugin/ttrpc/server.js";
import { Code, TtrpcProtocolError, TtrpcStatusError } from "../../src/nri-plugin/ttrpc/status.js";
import { FrameReader, type Pair, socketPair } from "./support/net.js";

const SVC = "test.Echo";
const pairs: Pair[] = [];
afterEach(() => {
  for (const p of pairs.splice(0)) p.close();
});

async function pair(): Promise<Pair> {
  const p = await socketPair();
  pairs.push(p);
  return p;
}

function rawRequest(
  id: number,
  service: string,
  method: string,
  payload = Buffer.alloc(0),
  extra: Partial<Request> = {},
) {
  const body = Request.encode({ service, method, payload, timeoutNano: 0, metadata: [], ...extra }).finish();
  return encodeFrame(id, MessageType.REQUEST, 0, body);
}

function statusOf(payload: Buffer): { code: number; message: string; payload: Buffer } {
  const r = Response.decode(payload);
  return { code: r.status?.code ?? 0, message: r.status?.message ?? "", payload: r.payload };
}

async function rejection(p: Promise<unknown>): Promise<TtrpcStatusError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(TtrpcStatusError);
    return e as TtrpcStatusError;
  }
  throw new Error("expected a rejection");
}

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

function echoServer() {
  return new TtrpcServer().registerRaw(SVC, "Echo", (p) => p);
}

describe("ttrpc client + server", () => {
  it("round-trips typed calls through generated definitions on ids 1, 3, 5", async () => {
    const { a, b } = await pair();
    const seen: RegisterPluginRequest[] = [];
    new TtrpcServer()
      .register(RuntimeDefinition, {
        registerPlugin: (req) => {
          seen.push(req);
          return {};
        },
      })
      .serve(b);
    const ids: number[] = [];
    a.on("data", () => {}); // keep flowing for the client below
    const origWrite = a.write.bind(a);
    a.write = ((chunk: Buffer, ...rest: unknown[]) => {
      ids.push(chunk.readUInt32BE(4));
      return (origWrite as (...x: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof a.write;
    const rt = createClient(RuntimeDefinition, new TtrpcClient(a));
    for (let i = 0; i < 3; i++) {
      expect(await rt.registerPlugin({ pluginName: `p${i}`, pluginIdx: "10" })).toEqual(Empty.create());
    }
    expect(ids).toEqual([1, 3, 5]);
    expect(seen.map((s) => s.pluginName)).toEqual(["p0", "p1", "p2"]);
  });

  it("answers unknown services and methods with UNIMPLEMENTED and ttrpc's wording", async () => {
    const { a, b } = await pair();
    new TtrpcServer().register(RuntimeDefinition, { registerPlugin: () => ({}) }).serve(b);
    const c = new TtrpcClient(a);
    const e1 = await rejection(c.call("no.Such", "Thing", Buffer.alloc(0)));
    expect([e1.code, e1.message]).toEqual([Code.UNIMPLEMENTED, "service no.Such"]);
    const e2 = await rejection(c.call(RuntimeDefinition.fullName, "Nope", Buffer.alloc(0)));
    expect([e2.code, e2.message]).toEqual([Code.UNIMPLEMENTED, "method Nope"]);
    // in the definition but not implemented
    const e3 = await rejection(
      createClient(RuntimeDefinition, c).updateContainers({ update: [], evict: [] }),
    );
    expect([e3.code, e3.message]).toEqual([Code.UNIMPLEMENTED, "method UpdateContainers"]);
    expect(String(e3)).toBe("rpc error: code = UNIMPLEMENTED desc = method UpdateContainers");
  });

  it("maps handler errors: status errors keep their code, anything else is UNKNOWN", async () => {
    const { a, b } = await pair();
    new TtrpcServer()
      .registerRaw(SVC, "Deny", () => {
        throw new TtrpcStatusError(Code.PERMISSION_DENIED, "image not signed");
      })
      .registerRaw(SVC, "Boom", async () => {
        throw new Error("boom");
      })
      .registerRaw(SVC, "Str", async () => {
        throw "a string";
      })
      .serve(b);
    const c = new TtrpcClient(a);
    const deny = await rejection(c.call(SVC, "Deny", Buffer.alloc(0)));
    expect([deny.code, deny.message]).toEqual([7, "image not signed"]);
    const boom = await rejection(c.call(SVC, "Boom", Buffer.alloc(0)));
    expect([boom.code, boom.message]).toEqual([Code.UNKNOWN, "boom"]);
    const str = await rejection(c.call(SVC, "Str", Buffer.alloc(0)));
    expect([str.code, str.message]).toEqual([Code.UNKNOWN, "a string"]);
    // the connection survived all of it
    expect((await c.call(SVC, "Deny", Buffer.alloc(0)).catch((e) => e)).code).toBe(7);
  });

  it("runs handlers concurrently and matches out-of-order replies by stream id", async () => {
    const { a, b } = await pair();
    const gates = Array.from({ length: 40 }, () => deferred());
    let running = 0;
    let maxRunning = 0;
    new TtrpcServer()
      .registerRaw(SVC, "Slow", async (p) => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await gates[p.readUInt8(0)]!.promise;
        running--;
        return Buffer.concat([p, Buffer.from("!")]);
      })
      .serve(b);
    const c = new TtrpcClient(a);
    const order: number[] = [];
    const calls = gates.map((_, i) =>
      c.call(SVC, "Slow", Buffer.from([i])).then((r) => {
        order.push(i);
        return r;
      }),
    );
    while (maxRunning < gates.length) await new Promise((r) => setTimeout(r, 5));
    for (let i = gates.length - 1; i >= 0; i--) gates[i]!.resolve();
    const replies = await Promise.all(calls);
    expect(replies.map((r) => [...r])).toEqual(gates.map((_, i) => [i, 33]));
    expect(order).toEqual([...gates.keys()].reverse());
  });

  it("client matches replies a raw server sends out of order and drops unknown ids", async () => {
    const { a, b } = await pair();
    const c = new TtrpcClient(a);
    const server = new FrameReader(b);
    const p1 = c.call(SVC, "M", Buffer.from("one"));
    const p2 = c.call(SVC, "M", Buffer.from("two"));
    const p3 = c.call(SVC, "M", Buffer.from("three"));
    const reqs = [await server.next(), await server.next(), await server.next()];
    expect(reqs.map((f) => [f.streamId, f.type, f.flags])).toEqual([
      [1, 1, 0],
      [3, 1, 0],
      [5, 1, 0],
    ]);
    const reply = (id: number, s: string) =>
      encodeFrame(id, MessageType.RESPONSE, 0, Response.encode({ payload: Buffer.from(s) }).finish());
    // a reply for an id nobody waits on, a REQUEST and a DATA frame to the client: all dropped
    b.write(Buffer.concat([reply(99, "x"), encodeFrame(7, MessageType.REQUEST, 0, Buffer.alloc(0))]));
    b.write(
      Buffer.concat([reply(5, "C"), reply(1, "A"), encodeFrame(3, MessageType.DATA, 0, Buffer.from("zz"))]),
    );
    b.write(reply(3, "B"));
    expect((await Promise.all([p1, p2, p3])).map(String)).toEqual(["A", "B", "C"]);
    expect(c.inFlight).toBe(0);
    expect(c.isClosed).toBe(false);
  });

  it("times out a call, sends timeout_nano, and ignores the late reply", async () => {
    const { a, b } = await pair();
    const late = deferred();
    let ctxSeen: ServerCallContext | undefined;
    let timeoutNano = 0;
    b.on("data", (chunk: Buffer) => {
      if (!timeoutNano && chunk.length > 10) timeoutNano = Request.decode(chunk.subarray(10)).timeoutNano;
    });
    new TtrpcServer()
      .registerRaw(SVC, "Hang", async (_p, ctx) => {
        ctxSeen = ctx;
        await late.promise;
        return Buffer.from("late");
      })
      .registerRaw(SVC, "Echo", (p) => p)
      .serve(b);
    const c = new TtrpcClient(a);
    const t0 = Date.now();
    const err = await rejection(c.call(SVC, "Hang", Buffer.alloc(0), { timeoutMs: 150 }));
    expect([err.code, err.message]).toEqual([Code.DEADLINE_EXCEEDED, "context deadline exceeded"]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    expect(timeoutNano).toBeGreaterThan(0);
    expect(timeoutNano).toBeLessThanOrEqual(150e6);
    expect(ctxSeen?.deadline).toBeGreaterThan(t0);
    // the server applied the same deadline to the handler
    await new Promise<void>((r) => {
      if (ctxSeen?.signal.aborted) r();
      else ctxSeen?.signal.addEventListener("abort", () => r());
    });
    expect((ctxSeen!.signal.reason as TtrpcStatusError).code).toBe(Code.DEADLINE_EXCEEDED);
    late.resolve();
    expect(String(await c.call(SVC, "Echo", Buffer.from("still fine")))).toBe("still fine");
  });

  it("server answers DEADLINE_EXCEEDED on its own when timeout_nano passes", async () => {
    const { a, b } = await pair();
    new TtrpcServer().registerRaw(SVC, "Hang", () => new Promise<Uint8Array>(() => {})).serve(b);
    const r = new FrameReader(a);
    a.write(rawRequest(1, SVC, "Hang", Buffer.alloc(0), { timeoutNano: 30e6 }));
    const f = await r.next();
    expect(f.streamId).toBe(1);
    expect(statusOf(f.payload)).toMatchObject({
      code: Code.DEADLINE_EXCEEDED,
      message: "context deadline exceeded",
    });
  });

  it("server deadlines follow the monotonic clock: a backward wall-clock step does not hold a call", async () => {
    const { a, b } = await pair();
    const realNow = Date.now.bind(Date);
    let step = 0;
    const spy = vi.spyOn(Date, "now").mockImplementation(() => realNow() + step);
    try {
      new TtrpcServer()
        .registerRaw(SVC, "Hang", () => {
          step = -60_000; // NTP or a VM resume sets the clock back while the call runs
          return new Promise<Uint8Array>(() => {});
        })
        .serve(b);
      const r = new FrameReader(a);
      a.write(rawRequest(1, SVC, "Hang", Buffer.alloc(0), { timeoutNano: 50e6 }));
      const f = await Promise.race([
        r.next(),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error("no answer in 5 s")), 5000)),
      ]);
      expect(statusOf(f.payload).code).toBe(Code.DEADLINE_EXCEEDED);
    } finally {
      spy.mockRestore();
    }
  });

  it("server answers each call at its own deadline, earliest first, whatever the arrival order", async () => {
    const { a, b } = await pair();
    const seen: ServerCallContext[] = [];
    new TtrpcServer()
      .registerRaw(SVC, "Hang", (_p, ctx) => {
        seen.push(ctx);
        return new Promise<Uint8Array>(() => {});
      })
      .registerRaw(SVC, "Echo", (p) => p)
      .serve(b);
    const r = new FrameReader(a);
    // a late deadline first, then an earlier one: the later request must not wait for the first
    a.write(rawRequest(1, SVC, "Hang", Buffer.alloc(0), { timeoutNano: 400e6 }));
    a.write(rawRequest(3, SVC, "Hang", Buffer.alloc(0), { timeoutNano: 40e6 }));
    a.write(rawRequest(5, SVC, "Echo", Buffer.from("x")));
    const f5 = await r.next();
    expect(f5.streamId).toBe(5);
    const f3 = await r.next();
    expect(f3.streamId).toBe(3);
    expect(statusOf(f3.payload).code).toBe(Code.DEADLINE_EXCEEDED);
    const f1 = await r.next();
    expect(f1.streamId).toBe(1);
    expect(statusOf(f1.payload).code).toBe(Code.DEADLINE_EXCEEDED);
    // a signal first read after its call expired is already aborted, with the deadline as reason
    expect(seen).toHaveLength(2);
    for (const ctx of seen) {
      expect(ctx.signal.aborted).toBe(true);
      expect((ctx.signal.reason as TtrpcStatusError).code).toBe(Code.DEADLINE_EXCEEDED);
    }
  });

  it("aborts a signal read before the connection closes, and one read after", async () => {
    const { a, b } = await pair();
    const seen: ServerCallContext[] = [];
    let early: AbortSignal | undefined;
    new TtrpcServer()
      .registerRaw(SVC, "Hang", (_p, ctx) => {
        seen.push(ctx);
        if (seen.length === 1) early = ctx.signal;
        return new Promise<Uint8Array>(() => {});
      })
      .serve(b);
    a.write(rawRequest(1, SVC, "Hang", Buffer.alloc(0)));
    a.write(rawRequest(3, SVC, "Hang", Buffer.alloc(0)));
    while (seen.length < 2) await new Promise((res) => setTimeout(res, 5));
    expect(early?.aborted).toBe(false);
    a.destroy();
    await new Promise<void>((res) => early?.addEventListener("abort", () => res()));
    expect((early!.reason as TtrpcStatusError).code).toBe(Code.CANCELLED);
    expect(seen[1]!.signal.aborted).toBe(true);
    expect((seen[1]!.signal.reason as TtrpcStatusError).code).toBe(Code.CANCELLED);
  });

  it("cancels a call through an AbortSignal", async () => {
    const { a, b } = await pair();
    new TtrpcServer().registerRaw(SVC, "Hang", () => new Promise<Uint8Array>(() => {})).serve(b);
    const c = new TtrpcClient(a);
    const ac = new AbortController();
    const p = c.call(SVC, "Hang", Buffer.alloc(0), { signal: ac.signal });
    ac.abort();
    expect((await rejection(p)).code).toBe(Code.CANCELLED);
    expect(c.inFlight).toBe(0);
  });

  it("passes metadata (keys lower-cased on the server)", async () => {
    const { a, b } = await pair();
    let md: Record<string, string> = {};
    new TtrpcServer()
      .registerRaw(SVC, "Md", (p, ctx) => {
        md = ctx.metadata;
        return p;
      })
      .serve(b);
    await new TtrpcClient(a).call(SVC, "Md", Buffer.alloc(0), {
      metadata: { "Containerd-Namespace-Ttrpc": "k8s.io" },
    });
    expect(md).toEqual({ "containerd-namespace-ttrpc": "k8s.io" });
  });

  it("skips an oversized request body, answers RESOURCE_EXHAUSTED on that stream, and stays up", async () => {
    const { a, b } = await pair();
    const conn = echoServer().serve(b);
    const r = new FrameReader(a);
    const hdr = Buffer.alloc(10);
    hdr.writeUInt32BE(MAX_PAYLOAD + 1, 0);
    hdr.writeUInt32BE(1, 4);
    hdr[8] = MessageType.REQUEST;
    a.write(hdr);
    a.write(Buffer.alloc(MAX_PAYLOAD + 1, 0x41));
    a.write(rawRequest(3, SVC, "Echo", Buffer.from("after")));
    const f1 = await r.next();
    expect(f1.streamId).toBe(1);
    expect(statusOf(f1.payload)).toMatchObject({
      code: Code.RESOURCE_EXHAUSTED,
      message: `message length ${MAX_PAYLOAD + 1} exceed maximum message size of 4194304`,
    });
    const f3 = await r.next();
    expect([f3.streamId, statusOf(f3.payload).code, String(statusOf(f3.payload).payload)]).toEqual([
      3,
      0,
      "after",
    ]);
    expect(conn.isClosed).toBe(false);
  });

  it("client: oversized reply fails only that call; oversized request is refused before sending", async () => {
    const { a, b } = await pair();
    const c = new TtrpcClient(a);
    const server = new FrameReader(b);
    const p1 = c.call(SVC, "M", Buffer.alloc(0));
    const p2 = c.call(SVC, "M", Buffer.alloc(0));
    await server.next();
    await server.next();
    const hdr = Buffer.alloc(10);
    hdr.writeUInt32BE(MAX_PAYLOAD + 10, 0);
    hdr.writeUInt32BE(1, 4);
    hdr[8] = MessageType.RESPONSE;
    b.write(Buffer.concat([hdr, Buffer.alloc(MAX_PAYLOAD + 10)]));
    b.write(
      encodeFrame(3, MessageType.RESPONSE, 0, Response.encode({ payload: Buffer.from("ok") }).finish()),
    );
    expect((await rejection(p1)).code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(String(await p2)).toBe("ok");
    const big = await rejection(c.call(SVC, "M", Buffer.alloc(MAX_PAYLOAD)));
    expect(big.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(c.isClosed).toBe(false);
  });

  it("a reply too large for one frame becomes RESOURCE_EXHAUSTED, not a dead connection", async () => {
    const { a, b } = await pair();
    new TtrpcServer()
      .registerRaw(SVC, "Big", () => Buffer.alloc(MAX_PAYLOAD))
      .registerRaw(SVC, "Echo", (p) => p)
      .serve(b);
    const c = new TtrpcClient(a);
    expect((await rejection(c.call(SVC, "Big", Buffer.alloc(0)))).code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(String(await c.call(SVC, "Echo", Buffer.from("x")))).toBe("x");
  });

  it("enforces odd, increasing stream ids and answers DATA without a stream, like containerd", async () => {
    const { a, b } = await pair();
    echoServer().serve(b);
    const r = new FrameReader(a);
    a.write(rawRequest(2, SVC, "Echo"));
    let f = await r.next();
    expect([f.streamId, statusOf(f.payload).code, statusOf(f.payload).message]).toEqual([
      2,
      3,
      "StreamID must be odd for client initiated streams",
    ]);
    a.write(rawRequest(5, SVC, "Echo", Buffer.from("five")));
    f = await r.next();
    expect([f.streamId, String(statusOf(f.payload).payload)]).toEqual([5, "five"]);
    a.write(rawRequest(3, SVC, "Echo"));
    f = await r.next();
    expect([f.streamId, statusOf(f.payload).message]).toEqual([
      3,
      "StreamID cannot be re-used and must increment",
    ]);
    a.write(encodeFrame(7, MessageType.DATA, 0, Buffer.from("d")));
    f = await r.next();
    expect([f.streamId, statusOf(f.payload).code, statusOf(f.payload).message]).toEqual([
      7,
      3,
      "StreamID is no longer active",
    ]);
    // RESPONSE and unknown types sent to a server are ignored (forward compatibility)
    a.write(encodeFrame(9, MessageType.RESPONSE, 0, Buffer.from("r")));
    a.write(encodeFrame(11, 0x42, 0, Buffer.from("?")));
    a.write(rawRequest(13, SVC, "Echo", Buffer.from("thirteen")));
    f = await r.next();
    expect([f.streamId, String(statusOf(f.payload).payload)]).toEqual([13, "thirteen"]);
  });

  it("answers an undecodable envelope with INVALID_ARGUMENT and an undecodable payload with INTERNAL", async () => {
    const { a, b } = await pair();
    const conn = new TtrpcServer().register(RuntimeDefinition, { registerPlugin: () => ({}) }).serve(b);
    const r = new FrameReader(a);
    a.write(encodeFrame(1, MessageType.REQUEST, 0, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f])));
    let f = await r.next();
    expect(statusOf(f.payload).code).toBe(Code.INVALID_ARGUMENT);
    expect(statusOf(f.payload).message).toMatch(/^unmarshal request error: /);
    a.write(rawRequest(3, RuntimeDefinition.fullName, "RegisterPlugin", Buffer.from([0x0a, 0x05, 0x61])));
    f = await r.next();
    expect(statusOf(f.payload).code).toBe(Code.INTERNAL);
    expect(statusOf(f.payload).message).toMatch(/^ttrpc: error unmarshalling payload: /);
    expect(conn.isClosed).toBe(false);
  });

  it("a server whose peer closes mid-frame closes with a typed error and aborts running handlers", async () => {
    const { a, b } = await pair();
    let signal: AbortSignal | undefined;
    const closed = new Promise<Error | undefined>((resolve) => {
      new TtrpcServer({ onConnectionClose: (_c, err) => resolve(err) })
        .registerRaw(SVC, "Hang", (_p, ctx) => {
          signal = ctx.signal;
          return new Promise<Uint8Array>(() => {});
        })
        .serve(b);
    });
    a.write(rawRequest(1, SVC, "Hang"));
    while (!signal) await new Promise((r) => setTimeout(r, 5));
    a.end(rawRequest(3, SVC, "Hang").subarray(0, 15));
    const err = await closed;
    expect(err).toBeInstanceOf(TtrpcProtocolError);
    expect(err?.message).toMatch(/closed mid-frame/);
    expect(signal.aborted).toBe(true);
  });

  it("a client whose peer closes mid-frame fails pending calls with UNAVAILABLE and reports why", async () => {
    const { a, b } = await pair();
    let closeErr: Error | undefined;
    const c = new TtrpcClient(a, { onClose: (e) => (closeErr = e) });
    const server = new FrameReader(b);
    const p = c.call(SVC, "M", Buffer.alloc(0));
    await server.next();
    b.end(encodeFrame(1, MessageType.RESPONSE, 0, Buffer.from("0123456789")).subarray(0, 14));
    const err = await rejection(p);
    expect(err.code).toBe(Code.UNAVAILABLE);
    expect(closeErr).toBeInstanceOf(TtrpcProtocolError);
    const after = await rejection(c.call(SVC, "M", Buffer.alloc(0)));
    expect([after.code, after.message]).toEqual([Code.UNAVAILABLE, expect.stringMatching(/^ttrpc: closed/)]);
  });

  it("a clean close fails pending calls with 'ttrpc: closed'", async () => {
    const { a, b } = await pair();
    let closed = false;
    const c = new TtrpcClient(a, { onClose: (e) => (closed = e === undefined) });
    const p = c.call(SVC, "M", Buffer.alloc(0));
    (b as net.Socket).end();
    const err = await rejection(p);
    expect([err.code, err.message]).toEqual([Code.UNAVAILABLE, "ttrpc: closed"]);
    expect(closed).toBe(true);
  });

  it("caps concurrent handlers per connection with RESOURCE_EXHAUSTED", async () => {
    const { a, b } = await pair();
    const gate = deferred();
    new TtrpcServer({ maxConcurrent: 2 })
      .registerRaw(SVC, "Wait", async () => {
        await gate.promise;
        return Buffer.from("done");
      })
      .serve(b);
    const c = new TtrpcClient(a);
    const p1 = c.call(SVC, "Wait", Buffer.alloc(0));
    const p2 = c.call(SVC, "Wait", Buffer.alloc(0));
    const e3 = await rejection(c.call(SVC, "Wait", Buffer.alloc(0)));
    expect(e3.code).toBe(Code.RESOURCE_EXHAUSTED);
    gate.resolve();
    expect((await Promise.all([p1, p2])).map(String)).toEqual(["done", "done"]);
  });
});
