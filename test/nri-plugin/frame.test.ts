import { describe, expect, it } from "vitest";
import {
  encodeFrame,
  FrameDecoder,
  HEADER_LENGTH,
  MAX_PAYLOAD,
  MessageType,
} from "../../src/nri-plugin/ttrpc/frame.js";
import { Code, TtrpcProtocolError, TtrpcStatusError } from "../../src/nri-plugin/ttrpc/status.js";

type Ev =
  | { kind: "frame"; id: number; type: number; flags: number; payload: string }
  | { kind: "oversized"; id: number; length: number };

function collector() {
  const events: Ev[] = [];
  const dec = new FrameDecoder({
    frame: (id, type, flags, payload) =>
      events.push({ kind: "frame", id, type, flags, payload: payload.toString("hex") }),
    oversized: (id, _t, _f, length) => events.push({ kind: "oversized", id, length }),
  });
  return { events, dec };
}

describe("ttrpc frame codec", () => {
  it("encodes the 10-byte big-endian header", () => {
    const f = encodeFrame(0x01020304, MessageType.RESPONSE, 0x05, Buffer.from("abc"));
    expect(f.subarray(0, HEADER_LENGTH).toString("hex")).toBe("00000003" + "01020304" + "02" + "05");
    expect(f.subarray(HEADER_LENGTH).toString()).toBe("abc");
  });

  it("encodes containerd's empty OK reply exactly (00000000 00000001 02 00)", () => {
    expect(encodeFrame(1, MessageType.RESPONSE, 0, Buffer.alloc(0)).toString("hex")).toBe(
      "00000000000000010200",
    );
  });

  it("refuses to send a payload over 4 MiB with RESOURCE_EXHAUSTED", () => {
    const err = (() => {
      try {
        encodeFrame(1, 1, 0, Buffer.alloc(MAX_PAYLOAD + 1));
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(TtrpcStatusError);
    expect((err as TtrpcStatusError).code).toBe(Code.RESOURCE_EXHAUSTED);
    expect((err as Error).message).toBe(
      `message length ${MAX_PAYLOAD + 1} exceed maximum message size of 4194304`,
    );
    expect(encodeFrame(1, 1, 0, Buffer.alloc(MAX_PAYLOAD)).length).toBe(MAX_PAYLOAD + HEADER_LENGTH);
  });

  it("decodes every frame type and flag combination, including empty payloads", () => {
    const { events, dec } = collector();
    const types = [MessageType.REQUEST, MessageType.RESPONSE, MessageType.DATA, 0, 7, 255];
    const flags = [0, 0x01, 0x02, 0x04, 0x05, 0xff];
    const frames: Buffer[] = [];
    let id = 1;
    for (const t of types)
      for (const fl of flags)
        frames.push(encodeFrame(id++, t, fl, Buffer.from(t === 3 && fl === 5 ? "" : `p${id}`)));
    dec.push(Buffer.concat(frames));
    expect(events.length).toBe(types.length * flags.length);
    let i = 0;
    for (const t of types)
      for (const fl of flags) {
        const e = events[i++]!;
        expect(e).toMatchObject({ kind: "frame", type: t, flags: fl, id: i });
      }
    expect(events.find((e) => e.kind === "frame" && e.type === 3 && e.flags === 5)).toMatchObject({
      payload: "",
    });
  });

  it("reassembles frames split at every byte boundary and coalesced in one read", () => {
    const frames = [
      encodeFrame(1, 1, 0, Buffer.from("hello")),
      encodeFrame(3, 1, 0, Buffer.alloc(0)),
      encodeFrame(5, 2, 1, Buffer.alloc(3000, 7)),
    ];
    const all = Buffer.concat(frames);
    const expected = collector();
    expected.dec.push(all);
    expect(expected.events).toHaveLength(3);
    // every split point into two reads
    for (let cut = 0; cut <= all.length; cut++) {
      const { events, dec } = collector();
      dec.push(all.subarray(0, cut));
      dec.push(all.subarray(cut));
      expect(events).toEqual(expected.events);
    }
    // one byte per read
    const { events, dec } = collector();
    for (const b of all) dec.push(Buffer.from([b]));
    expect(events).toEqual(expected.events);
  });

  it("hands out zero-copy slices for whole frames and copies only split ones", () => {
    const chunk = Buffer.concat([
      encodeFrame(1, 1, 0, Buffer.from("abc")),
      encodeFrame(3, 1, 0, Buffer.from("def")),
    ]);
    const seen: Buffer[] = [];
    const dec = new FrameDecoder({ frame: (_i, _t, _f, p) => seen.push(p), oversized: () => {} });
    dec.push(chunk);
    expect(seen.map((b) => b.buffer === chunk.buffer)).toEqual([true, true]);
  });

  it("skips an oversized body, reports it once, and keeps decoding what follows", () => {
    const { events, dec } = collector();
    const big = Buffer.alloc(HEADER_LENGTH);
    big.writeUInt32BE(MAX_PAYLOAD + 5, 0);
    big.writeUInt32BE(9, 4);
    big[8] = 1;
    dec.push(big);
    expect(events).toEqual([{ kind: "oversized", id: 9, length: MAX_PAYLOAD + 5 }]);
    // body arrives in odd-sized pieces, followed in the same read by a normal frame
    const body = Buffer.alloc(MAX_PAYLOAD + 5, 0xaa);
    dec.push(body.subarray(0, 1_000_001));
    dec.push(Buffer.concat([body.subarray(1_000_001), encodeFrame(11, 1, 0, Buffer.from("ok"))]));
    expect(events[1]).toEqual({
      kind: "frame",
      id: 11,
      type: 1,
      flags: 0,
      payload: Buffer.from("ok").toString("hex"),
    });
    expect(dec.end()).toBeUndefined();
  });

  it("reports a peer that stops mid-header or mid-payload as a typed protocol error", () => {
    const a = collector();
    a.dec.push(encodeFrame(1, 1, 0, Buffer.from("abcdef")).subarray(0, 12));
    const e1 = a.dec.end();
    expect(e1).toBeInstanceOf(TtrpcProtocolError);
    expect(e1?.message).toMatch(/closed mid-frame \(2 of 6 payload bytes\)/);
    const b = collector();
    b.dec.push(Buffer.from([0, 0, 0]));
    expect(b.dec.end()).toBeInstanceOf(TtrpcProtocolError);
    const c = collector();
    expect(c.dec.end()).toBeUndefined();
  });
});
