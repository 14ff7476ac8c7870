// containerd's Events.Subscribe read as what it is on the wire: one HTTP/2 request whose
// response body is a sequence of gRPC messages (a 5-byte prefix — compressed flag, big-endian
// length — then an Envelope), ended by trailers carrying grpc-status.
//
// Why not grpc-js, as for every other containerd call: the agent holds this stream for the
// image-name cache and the rootfs binding, and containerd sends one event on it for every
// container created on the node. Through grpc-js each message passes a resolving call, load
// balancer, subchannel call, filters with a promise, a deserializer and an object-mode
// stream; in bench/ that took about as much of the agent's CPU per create as the NRI request
// itself. Here a message is a frame parse and a decode.
import http2 from "node:http2";
import net from "node:net";
import { SubscribeRequest } from "../gen/containerd/events.js";
import { Envelope } from "../gen/containerd/types/event.js";

const SUBSCRIBE_PATH = "/containerd.services.events.v1.Events/Subscribe";
/** gRPC status codes that matter here (grpc/doc/statuscodes.md). */
const GRPC_OK = 0;

export interface EventStreamOptions {
  /** containerd socket: a path or a unix:// URL. */
  address: string;
  namespace: string;
  /** containerd filter strings; an event matching any of them is delivered. */
  filters: string[];
  /** Largest message accepted; a larger one ends the stream with an error. */
  maxMessageBytes: number;
}

export interface EventStreamHandlers {
  envelope(env: Envelope): void;
  /** The stream is over: `err` says why, undefined for a clean end (containerd shut it). */
  closed(err: Error | undefined): void;
}

export interface EventStream {
  /** Ends the subscription; no handler is called after this. */
  cancel(): void;
}

export class EventStreamError extends Error {
  constructor(
    message: string,
    /** The gRPC status containerd answered with, when it did. */
    readonly grpcStatus?: number,
  ) {
    super(message);
  }
}

/** Opens the subscription; events are delivered in containerd's publish order. */
export function subscribeEvents(o: EventStreamOptions, h: EventStreamHandlers): EventStream {
  const path = o.address.startsWith("unix://") ? o.address.slice(7) : o.address.replace(/^unix:/, "");
  let done = false;
  const session = http2.connect("http://localhost", { createConnection: () => net.connect({ path }) });
  const finish = (err: Error | undefined) => {
    if (done) return;
    done = true;
    session.destroy();
    h.closed(err);
  };
  session.on("error", (e) => finish(new EventStreamError(`containerd event stream: ${e.message}`)));
  session.on("goaway", () => finish(new EventStreamError("containerd event stream: connection going away")));
  session.on("close", () => finish(new EventStreamError("containerd event stream: connection closed")));

  const req = session.request({
    ":method": "POST",
    ":path": SUBSCRIBE_PATH,
    "content-type": "application/grpc",
    te: "trailers",
    "containerd-namespace": o.namespace,
  });
  const body = SubscribeRequest.encode({ filters: o.filters }).finish();
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(body.length, 1);
  req.end(Buffer.concat([prefix, body]));

  // A status in the response headers is a trailers-only answer: the call failed at once.
  const status = (headers: http2.IncomingHttpHeaders): Error | undefined => {
    const code = headers["grpc-status"];
    if (code === undefined || Number(code) === GRPC_OK) return undefined;
    const msg = decodeGrpcMessage(headers["grpc-message"]);
    return new EventStreamError(`containerd Events.Subscribe: ${msg || `gRPC status ${code}`}`, Number(code));
  };
  req.on("response", (headers) => {
    const httpStatus = headers[":status"];
    if (httpStatus !== 200) {
      finish(new EventStreamError(`containerd Events.Subscribe: HTTP status ${httpStatus}`));
      return;
    }
    const err = status(headers);
    if (err) finish(err);
  });
  // Trailers end the call: with status OK a clean end, else its error. A body that ends
  // without them is a broken answer.
  req.on("trailers", (trailers) => finish(status(trailers)));
  req.on("end", () => finish(new EventStreamError("containerd ended the event stream without a status")));
  req.on("error", (e) => finish(new EventStreamError(`containerd event stream: ${e.message}`)));

  // Messages may be split across DATA frames and several may share one.
  let pending: Buffer = Buffer.alloc(0);
  req.on("data", (chunk: Buffer) => {
    if (done) return;
    let buf = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (buf.length >= 5) {
      if (buf[0] !== 0) {
        finish(
          new EventStreamError("containerd event stream: a compressed message, which was not asked for"),
        );
        return;
      }
      const len = buf.readUInt32BE(1);
      if (len > o.maxMessageBytes) {
        finish(
          new EventStreamError(
            `containerd event stream: a message of ${len} bytes, more than the ${o.maxMessageBytes} accepted`,
          ),
        );
        return;
      }
      if (buf.length < 5 + len) break;
      let env: Envelope;
      try {
        env = Envelope.decode(buf.subarray(5, 5 + len));
      } catch (e) {
        finish(
          new EventStreamError(`containerd event stream: undecodable envelope (${(e as Error).message})`),
        );
        return;
      }
      buf = buf.subarray(5 + len);
      h.envelope(env);
      if (done) return;
    }
    // Keep only the unread part, copied so that a large chunk is not retained for a small tail.
    pending = buf.length === 0 ? Buffer.alloc(0) : Buffer.from(buf);
  });

  return {
    cancel(): void {
      if (done) return;
      done = true;
      req.close(http2.constants.NGHTTP2_CANCEL);
      session.destroy();
    },
  };
}

/** grpc-message is percent-encoded (gRPC over HTTP/2 spec). */
function decodeGrpcMessage(v: string | string[] | undefined): string {
  const s = Array.isArray(v) ? v.join(",") : (v ?? "");
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
