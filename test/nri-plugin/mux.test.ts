import type net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { MAX_IN_FRAME_PAYLOAD, MAX_OUT_FRAME_PAYLOAD, Mux, type MuxConn } from "../../src/nri-plugin/mux.js";
import { TtrpcClient } from "../../src/nri-plugin/ttrpc/client.js";
import { TtrpcServer } from "../../src/nri-plugin/ttrpc/server.js";
import { Code, TtrpcProtocolError, TtrpcStatusError } from "../../src/nri-plugin/ttrpc/status.js";
import { type Pair, socketPair } from "./support/net.js";

const pairs: Pair[] = [];
afterEach(() => {
  for (const p of pairs.splice(0)) p.close();
});
async function pair(): Promise<Pair> {
  const p = await socketPair();
  pairs.push(p);
  return p;
}

function muxFrame(id: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32BE(id, 0);
  h.writeUInt32BE(payload.length, 4);
  return Buffer.concat([h, payload]);
}

/** Parses the mux frames a socket receives, independently of the code under test. */
function frameSizes(sock: net.Socket): { sizes: number[]; ids: Set<number> } {
  const out = { sizes: [] as number[], ids: new Set<number>() };
  let buf = Buffer.alloc(0);
  sock.prependListener("data", (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    while (buf.length >= 8) {
      const len = buf.readUInt32BE(4);
      if (buf.length < 8 + len) break;
      out.ids.add(buf.readUInt32BE(0));
      out.sizes.push(len);
      buf = buf.subarray(8 + len);
    }
  });
  return out;
}

function readAll(conn: MuxConn, n: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let got = 0;
  return new Promise((resolve) => {
    conn.on("data", (c: Buffer) => {
      parts.push(Buffer.from(c));
      got += c.length;
      if (got >= n) resolve(Buffer.concat(parts));
    });
  });
}

describe("NRI mux", () => {
  it("round-trips multi-hundred-KB ttrpc messages intact with every frame ≤ 4096 payload bytes", async () => {
    const { a, b } = await pair();
    const toB = frameSizes(b);
    const toA = frameSizes(a);
    const plugin = new Mux(a);
    const runtime = new Mux(b);
    // conn 1: plugin serves, runtime calls; conn 2: the other way round — both at once.
    new TtrpcServer()
      .registerRaw("t.S", "Echo", (p) => Buffer.concat([p, p.subarray(0, 1000)]))
      .serve(plugin.open(1));
    new TtrpcServer().registerRaw("t.S", "Echo", (p) => p).serve(runtime.open(2));
    const c1 = new TtrpcClient(runtime.open(1));
    const c2 = new TtrpcClient(plugin.open(2));
    const big = Buffer.alloc(700 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >> 9)) & 0xff;
    const [r1, r2, r3] = await Promise.all([
      c1.call("t.S", "Echo", big),
      c2.call("t.S", "Echo", big.subarray(1)),
      c1.call("t.S", "Echo", Buffer.from("small")),
    ]);
    expect(r1.equals(Buffer.concat([big, big.subarray(0, 1000)]))).toBe(true);
    expect(r2.equals(big.subarray(1))).toBe(true);
    expect(String(r3)).toBe("smallsmall");
    for (const s of [toA, toB]) {
      expect(s.sizes.length).toBeGreaterThan(170);
      expect(Math.max(...s.sizes)).toBeLessThanOrEqual(MAX_OUT_FRAME_PAYLOAD);
      expect([...s.ids].sort()).toEqual([1, 2]);
    }
    expect(toB.sizes.filter((n) => n === MAX_OUT_FRAME_PAYLOAD).length).toBeGreaterThan(340);
  });

  it("reassembles streams from large, split and interleaved incoming frames", async () => {
    const { a, b } = await pair();
    const mux = new Mux(b);
    const one = mux.open(1);
    const two = mux.open(2);
    const payload1 = Buffer.alloc(1 << 20, 1).fill(9, 500_000);
    const payload2 = Buffer.from("second stream");
    const got1 = readAll(one, payload1.length + 3);
    const got2 = readAll(two, payload2.length);
    // one 1 MiB frame (containerd may send frames far above 4096), split into odd reads
    const f = Buffer.concat([
      muxFrame(1, payload1),
      muxFrame(2, payload2.subarray(0, 6)),
      muxFrame(1, Buffer.from("end")),
      muxFrame(2, Buffer.alloc(0)),
      muxFrame(2, payload2.subarray(6)),
    ]);
    for (let off = 0; off < f.length; off += 7777) a.write(f.subarray(off, off + 7777));
    expect((await got1).equals(Buffer.concat([payload1, Buffer.from("end")]))).toBe(true);
    expect((await got2).equals(payload2)).toBe(true);
  });

  it("drops frames for connection ids nobody opened (including 0)", async () => {
    const { a, b } = await pair();
    const mux = new Mux(b);
    const one = mux.open(1);
    const got = readAll(one, 6);
    a.write(
      Buffer.concat([
        muxFrame(0, Buffer.from("zero")),
        muxFrame(1, Buffer.from("abc")),
        muxFrame(7, Buffer.alloc(100_000, 7)),
        muxFrame(0xffffffff, Buffer.from("max")),
        muxFrame(1, Buffer.from("def")),
      ]),
    );
    expect(String(await got)).toBe("abcdef");
    expect(mux.isClosed).toBe(false);
  });

  it("closing the trunk ends every connection; calls in flight fail with UNAVAILABLE", async () => {
    const { a, b } = await pair();
    let muxClosed: Error | undefined | null = null;
    const mux = new Mux(a, { onClose: (e) => (muxClosed = e) });
    const c = new TtrpcClient(mux.open(2));
    const closedConn1 = new Promise((r) => mux.open(1).on("close", r));
    const pending = c.call("x.Y", "Z", Buffer.alloc(0));
    b.end();
    const err = await pending.catch((e) => e);
    expect(err).toBeInstanceOf(TtrpcStatusError);
    expect(err.code).toBe(Code.UNAVAILABLE);
    await closedConn1;
    expect(muxClosed).toBeUndefined();
    expect(mux.isClosed).toBe(true);
    // a conn opened after close is born destroyed
    expect(mux.open(3).destroyed).toBe(true);
  });

  it("Mux.close() closes the socket so the peer sees it", async () => {
    const { a, b } = await pair();
    const mux = new Mux(a);
    mux.open(1);
    const ended = new Promise((r) => b.on("close", r));
    mux.close();
    await ended;
    expect(a.destroyed).toBe(true);
  });

  it("destroying one logical connection leaves the trunk and the other connection working", async () => {
    const { a, b } = await pair();
    const mux = new Mux(b);
    const one = mux.open(1);
    const two = mux.open(2);
    one.destroy();
    const got = readAll(two, 2);
    a.write(Buffer.concat([muxFrame(1, Buffer.from("dropped")), muxFrame(2, Buffer.from("ok"))]));
    expect(String(await got)).toBe("ok");
    expect(mux.isClosed).toBe(false);
  });

  it("an incoming frame over the cap closes the trunk with a typed error", async () => {
    const { a, b } = await pair();
    const closed = new Promise<Error | undefined>((resolve) => new Mux(b, { onClose: resolve }));
    const h = Buffer.alloc(8);
    h.writeUInt32BE(1, 0);
    h.writeUInt32BE(MAX_IN_FRAME_PAYLOAD + 1, 4);
    a.write(h);
    const err = await closed;
    expect(err).toBeInstanceOf(TtrpcProtocolError);
    expect(err?.message).toMatch(/exceeds/);
  });

  it("a peer closing mid-frame closes every connection with a typed error", async () => {
    const { a, b } = await pair();
    const mux = new Mux(b);
    let connErr: Error | undefined;
    const client = new TtrpcClient(mux.open(2), { onClose: (e) => (connErr = e) });
    const pending = client.call("x.Y", "Z", Buffer.alloc(0)).catch((e) => e);
    const closed = new Promise<Error | undefined>((r) => mux.trunk.once("close", () => r(mux.error)));
    a.end(muxFrame(2, Buffer.from("partial-payload")).subarray(0, 12));
    expect(await closed).toBeInstanceOf(TtrpcProtocolError);
    expect((await pending).code).toBe(Code.UNAVAILABLE);
    expect(connErr).toBeInstanceOf(TtrpcProtocolError);
  });
});
