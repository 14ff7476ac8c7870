// A ttrpc channel: frames over one byte stream (a net.Socket or an NRI mux connection).
// Owns the stream; reports frames, oversized frames and the one close event to its owner.

import type { Duplex } from "node:stream";
import {
  encodeFrame,
  FrameDecoder,
  type FrameSink,
  HEADER_LENGTH,
  MAX_PAYLOAD,
  writeHeader,
} from "./frame.js";
import { Code, closedError, TtrpcStatusError } from "./status.js";

export interface ChannelOwner extends FrameSink {
  /** Called exactly once. `err` is undefined for a clean close by either side. */
  closed(err: Error | undefined): void;
}

export class Channel {
  private readonly decoder: FrameDecoder;
  private done = false;
  private closeError: Error | undefined;

  constructor(
    readonly stream: Duplex,
    private readonly owner: ChannelOwner,
  ) {
    this.decoder = new FrameDecoder(owner);
    stream.on("data", (chunk: Buffer) => {
      if (this.done) return;
      try {
        this.decoder.push(chunk);
      } catch (err) {
        // The owner's frame handling must not throw; if it does, the connection is unusable.
        this.close(err instanceof Error ? err : new Error(String(err)));
      }
    });
    stream.on("end", () => this.close(this.decoder.end()));
    stream.on("error", (err: Error) => this.close(err));
    stream.on("close", () => this.close(this.decoder.end()));
    // A stream that is already gone emits no further events: report it closed right away.
    if (stream.destroyed) queueMicrotask(() => this.close(new Error("stream already destroyed")));
  }

  get isClosed(): boolean {
    return this.done;
  }

  /** Why the channel closed (undefined for a clean close or while open). */
  get error(): Error | undefined {
    return this.closeError;
  }

  /** Send one frame. Throws RESOURCE_EXHAUSTED for an oversized payload, UNAVAILABLE when closed. */
  send(streamId: number, type: number, flags: number, payload: Uint8Array): void {
    if (this.done) throw closedError(this.closeError);
    this.stream.write(encodeFrame(streamId, type, flags, payload));
  }

  /**
   * Send a frame whose payload is a protobuf message with a single length-delimited field
   * (`tag`) holding `inner` — the OK ttrpc Response {payload=2} — without an intermediate copy.
   */
  sendWrapped(streamId: number, type: number, flags: number, tag: number, inner: Uint8Array): void {
    if (this.done) throw closedError(this.closeError);
    const lenBytes = varintSize(inner.length);
    const length = inner.length === 0 ? 0 : 1 + lenBytes + inner.length;
    if (length > MAX_PAYLOAD) {
      throw new TtrpcStatusError(
        Code.RESOURCE_EXHAUSTED,
        `message length ${length} exceed maximum message size of ${MAX_PAYLOAD}`,
      );
    }
    const out = Buffer.allocUnsafe(HEADER_LENGTH + length);
    writeHeader(out, 0, length, streamId, type, flags);
    if (length > 0) {
      let at = HEADER_LENGTH;
      out[at++] = tag;
      let v = inner.length;
      while (v > 0x7f) {
        out[at++] = (v & 0x7f) | 0x80;
        v >>>= 7;
      }
      out[at++] = v;
      out.set(inner, at);
    }
    this.stream.write(out);
  }

  close(err?: Error): void {
    if (this.done) return;
    this.done = true;
    this.closeError = err;
    this.decoder.stop();
    this.stream.destroy();
    this.owner.closed(err);
  }
}

function varintSize(v: number): number {
  let n = 1;
  while (v > 0x7f) {
    v >>>= 7;
    n++;
  }
  return n;
}
