// ttrpc frame codec: 10-byte big-endian header (length u32, stream id u32, type u8, flags u8)
// followed by `length` payload bytes (containerd/ttrpc channel.go).

import { Code, TtrpcProtocolError, TtrpcStatusError } from "./status.js";

export const HEADER_LENGTH = 10;
/** ttrpc's messageLengthMax: 4 MiB. */
export const MAX_PAYLOAD = 4 << 20;

export const MessageType = { REQUEST: 1, RESPONSE: 2, DATA: 3 } as const;
export const Flags = { REMOTE_CLOSED: 0x01, REMOTE_OPEN: 0x02, NO_DATA: 0x04 } as const;

export function oversizedMessage(length: number): string {
  return `message length ${length} exceed maximum message size of ${MAX_PAYLOAD}`;
}

export function writeHeader(
  out: Buffer,
  at: number,
  length: number,
  streamId: number,
  type: number,
  flags: number,
) {
  out.writeUInt32BE(length, at);
  out.writeUInt32BE(streamId >>> 0, at + 4);
  out[at + 8] = type;
  out[at + 9] = flags;
}

/** One frame in one freshly allocated buffer; refuses payloads over MAX_PAYLOAD like the Go sender. */
export function encodeFrame(streamId: number, type: number, flags: number, payload: Uint8Array): Buffer {
  if (payload.length > MAX_PAYLOAD) {
    throw new TtrpcStatusError(Code.RESOURCE_EXHAUSTED, oversizedMessage(payload.length));
  }
  const out = Buffer.allocUnsafe(HEADER_LENGTH + payload.length);
  writeHeader(out, 0, payload.length, streamId, type, flags);
  out.set(payload, HEADER_LENGTH);
  return out;
}

/** Receives decoded frames. Payload buffers may alias the pushed chunk; consume them before returning. */
export interface FrameSink {
  frame(streamId: number, type: number, flags: number, payload: Buffer): void;
  /** A frame over MAX_PAYLOAD: its body is skipped, the stream gets RESOURCE_EXHAUSTED. */
  oversized(streamId: number, type: number, flags: number, length: number): void;
}

const EMPTY = Buffer.alloc(0);

/**
 * Incremental decoder. Handles frames split across reads and many frames per read; whole frames
 * inside one chunk are handed out as zero-copy slices, a frame split across reads is assembled
 * in one buffer of exactly its size. Memory held is bounded by MAX_PAYLOAD + HEADER_LENGTH.
 */
export class FrameDecoder {
  private readonly header = Buffer.alloc(HEADER_LENGTH);
  private headerFill = 0;
  private body: Buffer | null = null;
  private bodyFill = 0;
  private skip = 0;
  private streamId = 0;
  private type = 0;
  private flags = 0;
  private stopped = false;

  constructor(private readonly sink: FrameSink) {}

  /** Bytes of a started but unfinished frame (non-zero at EOF means the peer closed mid-frame). */
  get partial(): number {
    return this.headerFill + (this.body ? HEADER_LENGTH + this.bodyFill : 0) + (this.skip > 0 ? 1 : 0);
  }

  /** Stop delivering frames (the sink closed the connection from inside a callback). */
  stop(): void {
    this.stopped = true;
    this.body = null;
  }

  push(chunk: Buffer): void {
    let off = 0;
    const n = chunk.length;
    while (off < n && !this.stopped) {
      if (this.skip > 0) {
        const k = Math.min(this.skip, n - off);
        this.skip -= k;
        off += k;
        continue;
      }
      if (this.body !== null) {
        const k = Math.min(this.body.length - this.bodyFill, n - off);
        chunk.copy(this.body, this.bodyFill, off, off + k);
        this.bodyFill += k;
        off += k;
        if (this.bodyFill === this.body.length) {
          const body = this.body;
          this.body = null;
          this.sink.frame(this.streamId, this.type, this.flags, body);
        }
        continue;
      }
      // Header: read in place when the chunk holds it whole, else collect it byte-wise.
      let src: Buffer;
      let at: number;
      if (this.headerFill === 0 && n - off >= HEADER_LENGTH) {
        src = chunk;
        at = off;
        off += HEADER_LENGTH;
      } else {
        const k = Math.min(HEADER_LENGTH - this.headerFill, n - off);
        chunk.copy(this.header, this.headerFill, off, off + k);
        this.headerFill += k;
        off += k;
        if (this.headerFill < HEADER_LENGTH) return;
        this.headerFill = 0;
        src = this.header;
        at = 0;
      }
      const length = src.readUInt32BE(at);
      this.streamId = src.readUInt32BE(at + 4);
      this.type = src[at + 8]!;
      this.flags = src[at + 9]!;
      if (length > MAX_PAYLOAD) {
        this.skip = length;
        this.sink.oversized(this.streamId, this.type, this.flags, length);
      } else if (length === 0) {
        this.sink.frame(this.streamId, this.type, this.flags, EMPTY);
      } else if (n - off >= length) {
        const payload = chunk.subarray(off, off + length);
        off += length;
        this.sink.frame(this.streamId, this.type, this.flags, payload);
      } else {
        this.body = Buffer.allocUnsafe(length);
        this.bodyFill = 0;
      }
    }
  }

  /** Call at end of stream: a started frame means the peer closed mid-frame. */
  end(): TtrpcProtocolError | undefined {
    if (this.stopped || this.partial === 0) return undefined;
    const have = this.body ? `${this.bodyFill} of ${this.body.length} payload bytes` : "a partial frame";
    this.stop();
    return new TtrpcProtocolError(`ttrpc: connection closed mid-frame (${have})`);
  }
}
