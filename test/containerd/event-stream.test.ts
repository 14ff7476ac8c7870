// The lean Events.Subscribe reader against a raw HTTP/2 server on a unix socket that speaks
// gRPC framing byte by byte, so that what containerd (or a broken peer) could send — split
// and packed frames, compressed or oversized messages, garbage, error statuses, a dropped
// connection — can be sent exactly. The happy path against a real grpc-js server is covered
// by image-cache.test.ts (fake containerd).
import { mkdtempSync, rmSync } from "node:fs";
import http2 from "node:http2";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EventStreamError, subscribeEvents } from "../../src/containerd/event-stream.js";
import { SubscribeRequest } from "../../src/gen/containerd/events.js";
import { Envelope } from "../../src/gen/containerd/types/event.js";
import { waitFor } from "../support/procs.js";

type Respond = (stream: http2.ServerHttp2Stream, request: SubscribeRequest) => void;

const frame = (msg: Uint8Array, flag = 0): Buffer => {
  const p = Buffer.alloc(5);
  p[0] = flag;
  p.writeUInt32BE(msg.length, 1);
  return Buffer.concat([p, Buffer.from(msg)]);
};
const env = (topic: string) =>
  Envelope.encode({
    namespace: "k8s.io",
    topic,
    event: { typeUrl: "t", value: Buffer.from(topic) },
  }).finish();

describe("subscribeEvents", () => {
  let dir: string;
  let socket: string;
  let server: http2.Http2Server;
  let respond: Respond;
  const seen: { headers?: http2.IncomingHttpHeaders; request?: SubscribeRequest } = {};

  beforeEach(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-evstream-"));
    socket = path.join(dir, "containerd.sock");
    server = http2.createServer();
    server.on("stream", (stream, headers) => {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        const body = Buffer.concat(chunks);
        const request = SubscribeRequest.decode(body.subarray(5, 5 + body.readUInt32BE(1)));
        seen.headers = headers;
        seen.request = request;
        respond(stream, request);
      });
      stream.on("error", () => {});
    });
    await new Promise<void>((r) => server.listen(socket, r));
  });
  afterEach(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  const open = (maxMessageBytes = 1024) => {
    const got: Envelope[] = [];
    const closed: Array<Error | undefined> = [];
    const s = subscribeEvents(
      { address: `unix://${socket}`, namespace: "k8s.io", filters: ['topic=="/a"'], maxMessageBytes },
      { envelope: (e) => got.push(e), closed: (e) => closed.push(e) },
    );
    return { s, got, closed };
  };

  it("sends a gRPC Subscribe request and reads messages split across and packed into DATA frames", async () => {
    respond = (stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      const all = Buffer.concat([frame(env("/a")), frame(env("/b")), frame(env("/c"))]);
      stream.write(all.subarray(0, 3)); // not even a whole prefix
      stream.write(all.subarray(3, 20));
      stream.write(all.subarray(20)); // the rest of the first, and two more at once
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      setTimeout(() => stream.end(), 50);
    };
    const t = open();
    await waitFor("closed", () => t.closed.length > 0);
    expect(seen.headers?.[":path"]).toBe("/containerd.services.events.v1.Events/Subscribe");
    expect(seen.headers?.["content-type"]).toBe("application/grpc");
    expect(seen.headers?.["containerd-namespace"]).toBe("k8s.io");
    expect(seen.request?.filters).toEqual(['topic=="/a"']);
    expect(t.got.map((e) => e.topic)).toEqual(["/a", "/b", "/c"]);
    expect(t.closed).toEqual([undefined]); // a clean end, reported once
  });

  it("reports an error status from a trailers-only answer, with its decoded message", async () => {
    respond = (stream) =>
      stream.respond(
        {
          ":status": 200,
          "content-type": "application/grpc",
          "grpc-status": "3",
          "grpc-message": "failed%20parsing%20subscription%20filters",
        },
        { endStream: true },
      );
    const t = open();
    await waitFor("closed", () => t.closed.length > 0);
    expect(t.closed[0]).toBeInstanceOf(EventStreamError);
    expect((t.closed[0] as EventStreamError).grpcStatus).toBe(3);
    expect(t.closed[0]?.message).toContain("failed parsing subscription filters");
  });

  for (const [name, send, want] of [
    ["a compressed message", (s: http2.ServerHttp2Stream) => s.write(frame(env("/a"), 1)), /compressed/],
    [
      "a message over the limit",
      (s: http2.ServerHttp2Stream) => s.write(frame(Buffer.alloc(4096))),
      /4096 bytes, more than the 1024/,
    ],
    [
      "an undecodable envelope",
      (s: http2.ServerHttp2Stream) => s.write(frame(Buffer.from([0x0a, 0xff, 0xff]))),
      /undecodable envelope/,
    ],
  ] as const) {
    it(`ends with a clear error on ${name}, after delivering what came before`, async () => {
      respond = (stream) => {
        stream.respond({ ":status": 200, "content-type": "application/grpc" });
        stream.write(frame(env("/ok")));
        send(stream);
      };
      const t = open();
      await waitFor("closed", () => t.closed.length > 0);
      expect(t.got.map((e) => e.topic)).toEqual(["/ok"]);
      expect(t.closed).toHaveLength(1);
      expect(t.closed[0]?.message).toMatch(want);
    });
  }

  it("an HTTP error, a body without trailers and a dropped connection are each an error", async () => {
    respond = (stream) => stream.respond({ ":status": 503 }, { endStream: true });
    let t = open();
    await waitFor("closed", () => t.closed.length > 0);
    expect(t.closed[0]?.message).toContain("HTTP status 503");

    respond = (stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      stream.end(frame(env("/a")));
    };
    t = open();
    await waitFor("closed", () => t.closed.length > 0);
    expect(t.got).toHaveLength(1);
    expect(t.closed[0]?.message).toContain("ended the event stream");

    respond = (stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      stream.session?.destroy();
    };
    t = open();
    await waitFor("closed", () => t.closed.length > 0);
    expect(t.closed[0]).toBeInstanceOf(EventStreamError);
  });

  it("nothing listening is an error, not a throw", async () => {
    const closedErr: Array<Error | undefined> = [];
    const t = subscribeEvents(
      { address: path.join(dir, "nobody.sock"), namespace: "k8s.io", filters: [], maxMessageBytes: 1024 },
      { envelope: () => {}, closed: (e) => closedErr.push(e) },
    );
    await waitFor("closed", () => closedErr.length > 0);
    expect(closedErr[0]?.message).toContain("ENOENT");
    t.cancel();
  });

  it("after cancel() no handler runs", async () => {
    let later: (() => void) | undefined;
    respond = (stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      stream.write(frame(env("/first")));
      later = () => {
        if (!stream.destroyed) stream.write(frame(env("/second")));
      };
    };
    const t = open();
    await waitFor("first", () => t.got.length === 1);
    t.s.cancel();
    later?.();
    await new Promise((r) => setTimeout(r, 100));
    expect(t.got).toHaveLength(1);
    expect(t.closed).toEqual([]);
  });
});
