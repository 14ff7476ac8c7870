// An in-process stand-in for containerd's gRPC images + events services on a unix socket,
// speaking the real protocol through the generated service definitions (protocols.md §5):
// Images.Get (NOT_FOUND for absent names), Events.Subscribe (no response headers before the
// first event, like containerd) and Events.Publish (broadcast to matching subscribers).
// Knobs let a test delay subscription registration, swallow our sync echoes, or kill the
// server and start it again on the same socket.
import { rmSync } from "node:fs";
import {
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
  status,
} from "@grpc/grpc-js";
import {
  EventsService,
  type PublishRequest,
  type SubscribeRequest,
} from "../../src/gen/containerd/events.js";
import {
  type GetImageRequest,
  type GetImageResponse,
  type Image,
  ImageCreate,
  ImageDelete,
  ImagesService,
  ImageUpdate,
} from "../../src/gen/containerd/images.js";
import type { Envelope } from "../../src/gen/containerd/types/event.js";

export interface FakeContainerd {
  socket: string;
  images: Map<string, Image>;
  /** Live Subscribe streams (registered ones). */
  subscribers(): number;
  /** Milliseconds between a Subscribe arriving and its registration (default 0). */
  registerDelayMs: number;
  /** When true, events on our sync topic are not delivered (a wedged stream). */
  swallowSync: boolean;
  getCalls: number;
  /** Sets/removes a record and publishes the matching event, like containerd's images service. */
  put(name: string, digest: string): void;
  remove(name: string): void;
  publishRaw(env: Omit<Envelope, "timestamp">): void;
  stop(): Promise<void>;
  start(): Promise<void>;
}

const TYPE = "containerd.services.images.v1.";

export function image(name: string, digest: string): Image {
  return {
    name,
    labels: {},
    target: { mediaType: "application/vnd.oci.image.index.v1+json", digest, size: 512, annotations: {} },
    createdAt: undefined,
    updatedAt: undefined,
  };
}

export async function startFakeContainerd(socket: string): Promise<FakeContainerd> {
  let server: Server | undefined;
  const streams = new Set<{
    ns: string;
    filters: string[];
    call: ServerWritableStream<SubscribeRequest, Envelope>;
  }>();

  const matches = (sub: { ns: string; filters: string[] }, env: Omit<Envelope, "timestamp">): boolean => {
    if (sub.ns !== "" && sub.ns !== env.namespace) return false;
    if (env.topic === "/tollgate/image-cache/sync" && fake.swallowSync) return false;
    // containerd's filter semantics for what the agent sends: filters are alternatives, the
    // comma-separated conditions of one must all hold; `==` equals, `~=` is a regexp.
    return sub.filters.some((f) =>
      f.split(",").every((cond) => {
        const m = /^(namespace|topic)(==|~=)(.*)$/.exec(cond.trim());
        if (!m) throw new Error(`fake containerd: unsupported filter condition ${cond}`);
        const raw = m[3]!;
        const value = raw.startsWith('"') ? (JSON.parse(raw) as string) : raw;
        const field = m[1] === "namespace" ? env.namespace : env.topic;
        return m[2] === "==" ? field === value : new RegExp(value).test(field);
      }),
    );
  };
  const broadcast = (env: Omit<Envelope, "timestamp">) => {
    for (const s of streams) if (matches(s, env)) s.call.write({ ...env, timestamp: undefined });
  };
  const nsOf = (md: { get(k: string): unknown[] }) => String(md.get("containerd-namespace")[0] ?? "");

  const fake: FakeContainerd = {
    socket,
    images: new Map(),
    subscribers: () => streams.size,
    registerDelayMs: 0,
    swallowSync: false,
    getCalls: 0,
    put(name, digest) {
      const existed = fake.images.has(name);
      fake.images.set(name, image(name, digest));
      const value = existed
        ? Buffer.from(ImageUpdate.encode({ name, labels: {} }).finish())
        : Buffer.from(ImageCreate.encode({ name, labels: {} }).finish());
      broadcast({
        namespace: "k8s.io",
        topic: existed ? "/images/update" : "/images/create",
        event: { typeUrl: TYPE + (existed ? "ImageUpdate" : "ImageCreate"), value },
      });
    },
    remove(name) {
      fake.images.delete(name);
      broadcast({
        namespace: "k8s.io",
        topic: "/images/delete",
        event: { typeUrl: `${TYPE}ImageDelete`, value: Buffer.from(ImageDelete.encode({ name }).finish()) },
      });
    },
    publishRaw: broadcast,
    async start() {
      rmSync(socket, { force: true });
      const s = new Server();
      s.addService(ImagesService, {
        get(call: ServerUnaryCall<GetImageRequest, GetImageResponse>, cb: sendUnaryData<GetImageResponse>) {
          fake.getCalls++;
          const img = fake.images.get(call.request.name);
          if (!img) return cb({ code: status.NOT_FOUND, details: `image "${call.request.name}": not found` });
          cb(null, { image: img });
        },
        list: (_c: unknown, cb: sendUnaryData<unknown>) => cb({ code: status.UNIMPLEMENTED }),
        create: (_c: unknown, cb: sendUnaryData<unknown>) => cb({ code: status.UNIMPLEMENTED }),
        update: (_c: unknown, cb: sendUnaryData<unknown>) => cb({ code: status.UNIMPLEMENTED }),
        delete: (_c: unknown, cb: sendUnaryData<unknown>) => cb({ code: status.UNIMPLEMENTED }),
      });
      s.addService(EventsService, {
        subscribe(call: ServerWritableStream<SubscribeRequest, Envelope>) {
          const sub = { ns: nsOf(call.metadata), filters: call.request.filters, call };
          const register = () => {
            if (call.cancelled) return;
            streams.add(sub);
          };
          call.on("cancelled", () => streams.delete(sub));
          call.on("close", () => streams.delete(sub));
          if (fake.registerDelayMs > 0) setTimeout(register, fake.registerDelayMs);
          else register();
        },
        publish(call: ServerUnaryCall<PublishRequest, unknown>, cb: sendUnaryData<unknown>) {
          const ns = nsOf(call.metadata);
          if (ns === "") return cb({ code: status.FAILED_PRECONDITION, details: "namespace is required" });
          broadcast({ namespace: ns, topic: call.request.topic, event: call.request.event });
          cb(null, {});
        },
        forward: (_c: unknown, cb: sendUnaryData<unknown>) => cb({ code: status.UNIMPLEMENTED }),
      });
      await new Promise<void>((resolve, reject) =>
        s.bindAsync(`unix://${socket}`, ServerCredentials.createInsecure(), (e) =>
          e ? reject(e) : resolve(),
        ),
      );
      server = s;
    },
    async stop() {
      const s = server;
      server = undefined;
      if (!s) return;
      streams.clear();
      s.forceShutdown();
    },
  };
  await fake.start();
  return fake;
}
