// Loopback plumbing for the NRI transport tests: connected unix socket pairs in a private
// temp dir, and a raw frame reader for asserting on exact wire bytes.

import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FrameDecoder } from "../../../src/nri-plugin/ttrpc/frame.js";

export interface Pair {
  a: net.Socket;
  b: net.Socket;
  close(): void;
}

export interface TempSocket {
  path: string;
  dir: string;
  cleanup(): void;
}

export function tempSocketPath(): TempSocket {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-nri-"));
  return { dir, path: join(dir, "s.sock"), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Two connected unix stream sockets (a = client end, b = accepted end). */
export async function socketPair(): Promise<Pair> {
  const t = tempSocketPath();
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(t.path, r));
  const accepted = new Promise<net.Socket>((r) => server.once("connection", r));
  const a = net.createConnection(t.path);
  await new Promise<void>((r, j) => {
    a.once("connect", r);
    a.once("error", j);
  });
  const b = await accepted;
  server.close();
  t.cleanup();
  return {
    a,
    b,
    close() {
      a.destroy();
      b.destroy();
    },
  };
}

export interface RawFrame {
  streamId: number;
  type: number;
  flags: number;
  payload: Buffer;
}

/** Collects every ttrpc frame arriving on a socket; `next()` waits for the next one. */
export class FrameReader {
  readonly frames: RawFrame[] = [];
  private waiters: ((f: RawFrame) => void)[] = [];
  private readonly dec = new FrameDecoder({
    frame: (streamId, type, flags, payload) => {
      const f = { streamId, type, flags, payload: Buffer.from(payload) };
      const w = this.waiters.shift();
      if (w) w(f);
      else this.frames.push(f);
    },
    oversized: () => {
      throw new Error("unexpected oversized frame");
    },
  });

  constructor(sock: net.Socket | import("node:stream").Duplex) {
    sock.on("data", (c: Buffer) => this.dec.push(c));
  }

  next(): Promise<RawFrame> {
    const f = this.frames.shift();
    if (f) return Promise.resolve(f);
    return new Promise((r) => this.waiters.push(r));
  }
}

export function once<T = void>(emitter: NodeJS.EventEmitter, event: string): Promise<T> {
  return new Promise((r) => emitter.once(event, r as (v: unknown) => void));
}
