// The NRI connection multiplexer (containerd/nri pkg/net/multiplex): several byte streams over
// one socket. Trunk frame = connID u32 BE | length u32 BE | `length` bytes of that stream.
// No open/close signalling: frames for ids nobody opened are dropped, closing = closing the socket.

import type { Socket } from "node:net";
import { Duplex } from "node:stream";
import { TtrpcProtocolError } from "./ttrpc/status.js";

/** containerd = ttrpc client, plugin = server (nri.pkg.api.v1alpha1.Plugin). */
export const PLUGIN_SERVICE_CONN = 1;
/** plugin = ttrpc client, containerd = server (nri.pkg.api.v1alpha1.Runtime). */
export const RUNTIME_SERVICE_CONN = 2;

export const MUX_HEADER_LENGTH = 8;
/**
 * Largest payload we put in one outgoing frame. containerd copies each frame into the 4096-byte
 * read buffer its ttrpc channel offers; a larger frame kills the connection (protocols.md §2.2).
 */
export const MAX_OUT_FRAME_PAYLOAD = 4096;
/**
 * Largest incoming frame we accept. containerd's side writes a ttrpc frame (≤ 4 MiB + header)
 * through a 4 KiB bufio.Writer, so its frames stay under 4 MiB + 4 KiB; anything far beyond is
 * not NRI and would otherwise be an unbounded read.
 */
export const MAX_IN_FRAME_PAYLOAD = (4 << 20) + 64 * 1024;

export interface MuxOptions {
  /** Called once when the trunk closes; err undefined for a clean end. */
  onClose?: (err: Error | undefined) => void;
}

export class Mux {
  private readonly conns = new Map<number, MuxConn>();
  private readonly header = Buffer.alloc(MUX_HEADER_LENGTH);
  private headerFill = 0;
  private connId = 0;
  private remaining = 0;
  private inFrame = false;
  private done = false;
  private closeError: Error | undefined;
  private readonly blocked = new Set<MuxConn>();

  constructor(
    readonly trunk: Socket | Duplex,
    private readonly opts: MuxOptions = {},
  ) {
    trunk.on("data", (chunk: Buffer) => this.onData(chunk));
    trunk.on("end", () => this.close(this.midFrameError()));
    trunk.on("error", (err: Error) => this.close(err));
    trunk.on("close", () => this.close(this.midFrameError()));
  }

  get isClosed(): boolean {
    return this.done;
  }

  get error(): Error | undefined {
    return this.closeError;
  }

  /** Open (or return the already open) logical connection `id` (1..2^32-1). */
  open(id: number): MuxConn {
    if (!Number.isInteger(id) || id < 1 || id > 0xffffffff)
      throw new RangeError(`mux: invalid conn id ${id}`);
    let c = this.conns.get(id);
    if (!c) {
      c = new MuxConn(this, id);
      if (this.done) c.destroy(this.closeError);
      else this.conns.set(id, c);
    }
    return c;
  }

  /** Close the trunk and every logical connection. */
  close(err?: Error): void {
    if (this.done) return;
    this.done = true;
    this.closeError = err;
    this.trunk.destroy();
    for (const c of [...this.conns.values()]) {
      if (err) c.destroy(err);
      else {
        c.push(null);
        c.destroy();
      }
    }
    this.conns.clear();
    this.opts.onClose?.(err);
  }

  /** @internal Send `data` on conn `id` as frames of at most MAX_OUT_FRAME_PAYLOAD bytes. */
  write(id: number, data: Buffer, cb: (err?: Error | null) => void): void {
    if (this.done) {
      cb(new Error("mux: closed"));
      return;
    }
    const n = data.length;
    if (n === 0) {
      cb();
      return;
    }
    const frames = Math.ceil(n / MAX_OUT_FRAME_PAYLOAD);
    // One buffer for all frames: one write per message, one copy.
    const out = Buffer.allocUnsafe(n + frames * MUX_HEADER_LENGTH);
    let at = 0;
    for (let off = 0; off < n; off += MAX_OUT_FRAME_PAYLOAD) {
      const len = Math.min(MAX_OUT_FRAME_PAYLOAD, n - off);
      out.writeUInt32BE(id, at);
      out.writeUInt32BE(len, at + 4);
      data.copy(out, at + MUX_HEADER_LENGTH, off, off + len);
      at += MUX_HEADER_LENGTH + len;
    }
    if (this.trunk.write(out)) cb();
    else this.trunk.once("drain", () => cb());
  }

  /** @internal */
  forget(c: MuxConn): void {
    if (this.conns.get(c.id) === c) this.conns.delete(c.id);
    this.unblock(c);
  }

  /** @internal A conn's reader wants more: resume the trunk once nobody is full. */
  unblock(c: MuxConn): void {
    if (this.blocked.delete(c) && this.blocked.size === 0 && !this.done) this.trunk.resume();
  }

  private onData(chunk: Buffer): void {
    let off = 0;
    const n = chunk.length;
    while (off < n && !this.done) {
      if (!this.inFrame) {
        const k = Math.min(MUX_HEADER_LENGTH - this.headerFill, n - off);
        chunk.copy(this.header, this.headerFill, off, off + k);
        this.headerFill += k;
        off += k;
        if (this.headerFill < MUX_HEADER_LENGTH) return;
        this.headerFill = 0;
        this.connId = this.header.readUInt32BE(0);
        this.remaining = this.header.readUInt32BE(4);
        if (this.remaining > MAX_IN_FRAME_PAYLOAD) {
          this.close(
            new TtrpcProtocolError(
              `mux: frame of ${this.remaining} bytes for conn ${this.connId} exceeds ${MAX_IN_FRAME_PAYLOAD}`,
            ),
          );
          return;
        }
        this.inFrame = this.remaining > 0;
        continue;
      }
      // Payload bytes go straight to the logical stream (zero-copy slices); no need to buffer
      // whole frames because each conn is a byte stream.
      const k = Math.min(this.remaining, n - off);
      const c = this.conns.get(this.connId);
      if (c && !c.destroyed) {
        if (!c.push(chunk.subarray(off, off + k)) && !this.blocked.has(c)) {
          this.blocked.add(c);
          this.trunk.pause();
        }
      }
      off += k;
      this.remaining -= k;
      if (this.remaining === 0) this.inFrame = false;
    }
  }

  private midFrameError(): Error | undefined {
    if (this.inFrame || this.headerFill > 0) {
      return new TtrpcProtocolError(`mux: connection closed mid-frame (conn ${this.connId})`);
    }
    return undefined;
  }
}

/** One logical byte stream of a Mux. Destroying it does not close the trunk (as in Go). */
export class MuxConn extends Duplex {
  constructor(
    private readonly mux: Mux,
    readonly id: number,
  ) {
    super({ allowHalfOpen: false });
  }

  override _read(): void {
    this.mux.unblock(this);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.mux.write(this.id, chunk, cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.mux.forget(this);
    cb(err);
  }
}
