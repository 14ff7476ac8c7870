// fast-check generators of ttrpc byte streams shared by the transport's own fuzz tests and
// the reliability suite: plausible frames that reach deep code paths, and plain noise.
import fc from "fast-check";
import { Request } from "../../../src/gen/ttrpc.js";
import { encodeFrame, HEADER_LENGTH, MAX_PAYLOAD } from "../../../src/nri-plugin/ttrpc/frame.js";

export interface FrameArbOptions {
  services: string[];
  methods: string[];
  /** Largest random payload inside a frame. */
  maxPayload: number;
  /** Largest run of plain noise bytes. */
  maxNoise: number;
  /** Odd (client) stream ids are drawn from 1 … 2·oddIds+1. */
  oddIds: number;
  /** Frame types to draw for well-formed requests (1 REQUEST weighted by repetition). */
  types: number[];
  timeoutsNano: number[];
  metadata: { key: string; value: string }[];
}

/** A ttrpc frame that is plausible enough to reach deep code paths, or just noise. */
export function ttrpcFrameArb(o: FrameArbOptions): fc.Arbitrary<Buffer> {
  return fc.oneof(
    // a well-formed Request envelope to a (maybe) real service/method, random inner payload
    fc
      .record({
        id: fc.oneof(
          fc.integer({ min: 0, max: o.oddIds }).map((n) => n * 2 + 1),
          fc.integer({ min: 0, max: o.oddIds }),
          fc.integer({ min: 0, max: 0xffffffff }),
        ),
        type: fc.constantFrom(...o.types),
        flags: fc.integer({ min: 0, max: 255 }),
        service: fc.constantFrom(...o.services),
        method: fc.constantFrom(...o.methods),
        payload: fc.uint8Array({ maxLength: o.maxPayload }),
        timeoutNano: fc.constantFrom(...o.timeoutsNano),
      })
      .map((r) =>
        encodeFrame(
          r.id >>> 0,
          r.type,
          r.flags,
          Request.encode({
            service: r.service,
            method: r.method,
            payload: Buffer.from(r.payload),
            timeoutNano: r.timeoutNano,
            metadata: o.metadata,
          }).finish(),
        ),
      ),
    // a frame around random bytes
    fc
      .record({
        id: fc.nat(),
        type: fc.nat(255),
        flags: fc.nat(255),
        payload: fc.uint8Array({ maxLength: o.maxPayload }),
      })
      .map((r) => encodeFrame(r.id >>> 0, r.type, r.flags, r.payload)),
    // a header announcing a length that may exceed the cap or the data that follows
    fc
      .record({
        len: fc.oneof(fc.nat(64), fc.constant(MAX_PAYLOAD + 1), fc.constant(0xffffffff)),
        id: fc.nat(),
      })
      .map((r) => {
        const h = Buffer.alloc(HEADER_LENGTH);
        h.writeUInt32BE(r.len, 0);
        h.writeUInt32BE(r.id >>> 0, 4);
        h[8] = 1;
        return h;
      }),
    fc.uint8Array({ maxLength: o.maxNoise }).map((u) => Buffer.from(u)),
  );
}

/** Up to `maxFrames` frames from `frame`, concatenated into one byte stream. */
export function ttrpcStreamArb(frame: fc.Arbitrary<Buffer>, maxFrames: number): fc.Arbitrary<Buffer> {
  return fc.array(frame, { maxLength: maxFrames }).map((fs) => Buffer.concat(fs));
}

/** Cuts `buf` at the given offsets (mod its length + 1): the same bytes, read in pieces. */
export function splits(buf: Buffer, cuts: number[]): Buffer[] {
  const pts = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of pts) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}
