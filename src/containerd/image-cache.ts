// A bounded name → image-record cache in front of containerd's Images.Get, kept correct by
// containerd's own image events (protocols.md §5). It takes the ~1–2 ms gRPC round trip
// off the create-time gate's path when the same image name is created again.
//
// Correctness rules (security first, speed second):
// - Only while the event stream is *proven* live is the cache used. containerd sends no
//   response headers on Subscribe until the first event, so "live" means: we published a
//   sentinel event with a fresh nonce on a private topic and received it back on this
//   stream. Everything published after that point reaches us, in order. Until then, and
//   from the moment the stream errors, ends or misses a heartbeat, the cache is cleared and
//   bypassed (every get goes to containerd) and we reconnect with back-off.
// - Every /images/create|update|delete event for our namespace drops that name; an event
//   we cannot decode clears everything. Events carry no digest, so we never update from
//   them, only forget.
// - A Get that was in flight while any invalidation (or disconnect) happened is not
//   stored: its answer may predate the change (an "epoch" counter, bumped on each).
// - NOT_FOUND and errors are never cached. Entries also expire after a TTL (defence in
//   depth, not the mechanism).
//
// Remaining ordering assumption: containerd publishes the image event after committing the
// record and before the pull/tag/delete call returns, and the event reaches our socket
// before a CreateContainer that depends on the change reaches us (kubelet first waits for
// PullImage to return, then calls CreateContainer, which travels containerd → NRI → us).
// For a create that ordering is checked, not assumed: CRI prepares the container's rootfs
// snapshot before asking NRI, and containerd delivers the /snapshot/prepare event on this
// same stream, in publish order. Once that event for the container being created has
// arrived, every image event published before the create began has arrived too and has
// been applied, so the hit is served at once. Without it (the event is still on its way;
// lookups that serve no create), a hit first yields to I/O already waiting (two event-loop
// turns), so an event in the same loop turn or already in the socket buffer wins; without
// that, e2e/image-cache.test.ts saw `ctr image rm` followed at once by a lookup answered
// stale. Only on that path, if the event were delayed past the create (a wedged event
// queue in containerd), could the gate judge the previous target for that name until the
// event, the heartbeat's failure or the TTL clears it. Writers that bypass containerd's
// images service (direct bolt edits) publish no event and are not seen at all. See
// docs/security.md, "Residual race on tag moves".
import { randomBytes } from "node:crypto";
import { type ClientReadableStream, credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { LRUCache } from "lru-cache";
import { EventsClient } from "../gen/containerd/events.js";
import { type Image, ImageCreate, ImageDelete, ImageUpdate } from "../gen/containerd/images.js";
import type { Envelope } from "../gen/containerd/types/event.js";
import type { ImageRecords } from "./images.js";
import { decodeSnapshotEvent, PreparedSnapshots, SNAPSHOT_PREPARE_TOPIC } from "./snapshot-events.js";

/** Private topic of our own liveness sentinel (outside /images/: CRI's subscriber ignores it). */
export const SYNC_TOPIC = "/tollgate/image-cache/sync";
export const SYNC_TYPE_URL = "tollgate.containerd.v1.ImageCacheSync";
/** The image topics containerd publishes; the cache forgets a name on each. */
const IMAGE_TOPICS = ["/images/create", "/images/update", "/images/delete"] as const;
const TYPE_CREATE = "containerd.services.images.v1.ImageCreate";
const TYPE_UPDATE = "containerd.services.images.v1.ImageUpdate";
const TYPE_DELETE = "containerd.services.images.v1.ImageDelete";
/** Longest image name we accept from an event (containerd refs are far shorter). */
const MAX_NAME = 4096;

export type ImageEventsState = "connecting" | "connected" | "closed";

export interface ImageCacheLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface ImageCacheOptions {
  /** containerd socket: a path or a unix:// URL. */
  address: string;
  namespace?: string;
  /** The uncached lookup (ContainerdImages). */
  images: ImageRecords;
  /** Most names kept (default 2048). */
  maxEntries?: number;
  /** Entry lifetime in ms (default 5 min). */
  ttlMs?: number;
  /** How long one connection attempt may take to see its sentinel (default 10 s). */
  handshakeTimeoutMs?: number;
  /** Liveness check of an established stream (default 30 s; its echo must arrive within handshakeTimeoutMs). */
  heartbeatMs?: number;
  /** Reconnect back-off (defaults 100 ms doubling to 5 s). */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  log?: ImageCacheLogger;
}

export interface ImageCacheStats {
  state: ImageEventsState;
  entries: number;
  hits: number;
  misses: number;
  /** Hits served at once because the create's own /snapshot/prepare event had arrived (part of hits). */
  orderedHits: number;
  /** Lookups that went straight to containerd because the stream was not live. */
  bypassed: number;
  /** Names dropped on events (+1 per full clear). */
  invalidations: number;
  /** Times the stream became live. */
  connects: number;
}

const noopLog: ImageCacheLogger = { info() {}, warn() {} };

/** Drop-in for ContainerdImages.get (what ContainerdImageResolver needs), cached by name. */
export class CachedContainerdImages implements ImageRecords {
  private readonly target: string;
  private readonly namespace: string;
  private readonly cache: LRUCache<string, Image>;
  private readonly log: ImageCacheLogger;
  private readonly handshakeTimeoutMs: number;
  private readonly heartbeatMs: number;
  private readonly backoffInitialMs: number;
  private readonly backoffMaxMs: number;
  private stateValue: ImageEventsState = "connecting";
  private started = false;
  /** Bumped on every invalidation and disconnect: gets in flight across a bump are not stored. */
  private epoch = 0;
  /** Identifies the current connection; handlers of older ones are ignored. */
  private conn = 0;
  private client: EventsClient | undefined;
  private stream: ClientReadableStream<Envelope> | undefined;
  private pendingNonce: string | undefined;
  private timers = new Set<NodeJS.Timeout>();
  private heartbeat: NodeJS.Timeout | undefined;
  private backoffMs: number;
  private readonly counters = {
    hits: 0,
    orderedHits: 0,
    misses: 0,
    bypassed: 0,
    invalidations: 0,
    connects: 0,
  };
  /** Snapshots containerd prepared, from the same proven-live stream (snapshot-events.ts). */
  private readonly snapshots = new PreparedSnapshots();

  constructor(private readonly o: ImageCacheOptions) {
    this.target = o.address.startsWith("unix:") ? o.address : `unix://${o.address}`;
    this.namespace = o.namespace ?? "k8s.io";
    // ttlResolution 0: the clock is read on each access instead of a cached reading reset by a
    // timer, which cost a setTimeout on nearly every CreateContainer.
    this.cache = new LRUCache<string, Image>({
      max: o.maxEntries ?? 2048,
      ttl: o.ttlMs ?? 5 * 60_000,
      ttlResolution: 0,
    });
    this.log = o.log ?? noopLog;
    this.handshakeTimeoutMs = o.handshakeTimeoutMs ?? 10_000;
    this.heartbeatMs = o.heartbeatMs ?? 30_000;
    this.backoffInitialMs = o.backoffInitialMs ?? 100;
    this.backoffMaxMs = o.backoffMaxMs ?? 5_000;
    this.backoffMs = this.backoffInitialMs;
  }

  get state(): ImageEventsState {
    return this.stateValue;
  }

  stats(): ImageCacheStats {
    return { state: this.stateValue, entries: this.cache.size, ...this.counters };
  }

  /** Starts the event subscription (in the background; the cache is bypassed until it is live). */
  start(): void {
    if (this.started || this.stateValue === "closed") return;
    this.started = true;
    this.connect();
  }

  /** Resolves once the stream is live (tests, readiness); rejects after timeoutMs. */
  async waitConnected(timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (this.stateValue !== "connected") {
      if (this.stateValue === "closed") throw new Error("image cache closed");
      if (Date.now() > until) throw new Error(`image event stream not live after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /**
   * The parent of snapshot `key` in `snapshotter` as containerd's /snapshot/prepare event
   * told it; undefined unless that event arrived on the live stream (then ask containerd).
   */
  preparedParent(snapshotter: string, key: string): string | undefined {
    return this.stateValue === "connected" ? this.snapshots.parent(snapshotter, key) : undefined;
  }

  /**
   * `forContainer`: the id of the container whose create this lookup serves, when there is
   * one. If containerd's /snapshot/prepare event for it has arrived, the hit needs no wait.
   */
  async get(name: string, deadline: number, forContainer?: string): Promise<Image | undefined> {
    if (this.stateValue !== "connected") {
      this.counters.bypassed++;
      return this.o.images.get(name, deadline);
    }
    if (this.cache.has(name)) {
      const now = forContainer ? this.peek(name, forContainer) : undefined;
      if (now) return now;
      // Otherwise let I/O that is already waiting run first: an image event sitting in our
      // socket buffer (or arriving in the same loop turn as this request) must win over the hit.
      await yieldToIo();
      const hit = this.stateValue === "connected" ? this.cache.get(name) : undefined;
      if (hit) {
        this.counters.hits++;
        return hit;
      }
      if (this.stateValue !== "connected") {
        this.counters.bypassed++;
        return this.o.images.get(name, deadline);
      }
    }
    this.counters.misses++;
    const epoch = this.epoch;
    const img = await this.o.images.get(name, deadline);
    // Store only a found record whose lookup no invalidation or disconnect overlapped.
    if (img?.target?.digest && this.stateValue === "connected" && this.epoch === epoch) {
      this.cache.set(name, img);
    }
    return img;
  }

  /**
   * A hit served at once for the create of `forContainer`, when its own /snapshot/prepare
   * event has arrived: that event came after every image event published before the create
   * (one stream, in publish order, each applied as it arrives), so nothing older can still
   * be waiting. Undefined otherwise (then get() decides).
   */
  peek(name: string, forContainer: string): Image | undefined {
    if (this.stateValue !== "connected" || !this.snapshots.seen(forContainer)) return undefined;
    const hit = this.cache.get(name);
    if (!hit) return undefined;
    this.counters.hits++;
    this.counters.orderedHits++;
    return hit;
  }

  close(): void {
    if (this.stateValue === "closed") return;
    this.stateValue = "closed";
    this.dropAll();
    this.teardown();
  }

  // --- connection ---------------------------------------------------------------------

  private metadata(): Metadata {
    const md = new Metadata();
    md.set("containerd-namespace", this.namespace);
    return md;
  }

  private connect(): void {
    if (this.stateValue === "closed") return;
    this.teardown();
    this.stateValue = "connecting";
    this.dropAll();
    const conn = ++this.conn;
    // A fresh channel per attempt: no waiting out grpc-js's own reconnect back-off after a
    // containerd restart.
    this.client = new EventsClient(this.target, credentials.createInsecure(), {
      "grpc.max_receive_message_length": 1024 * 1024,
      "grpc.enable_retries": 0,
    });
    const stream = this.client.subscribe({ filters: subscriptionFilters(this.namespace) }, this.metadata());
    this.stream = stream;
    stream.on("data", (env: Envelope) => {
      if (conn === this.conn) this.onEnvelope(env);
    });
    stream.on("error", (err: ServiceError) => {
      if (conn === this.conn) this.lost(`event stream error: ${err.details || err.message}`);
    });
    stream.on("end", () => {
      if (conn === this.conn) this.lost("event stream ended");
    });
    this.sync(conn, "handshake");
  }

  /**
   * Publishes a sentinel with a fresh nonce until it comes back on this stream (or the
   * timeout passes, which drops the connection). Re-publishing covers the window before
   * containerd has registered the subscription, which the client cannot observe.
   */
  private sync(conn: number, why: "handshake" | "heartbeat"): void {
    const nonce = randomBytes(16).toString("hex");
    this.pendingNonce = nonce;
    const started = Date.now();
    this.timer(() => {
      if (conn === this.conn && this.pendingNonce === nonce)
        this.lost(`no ${why} echo from containerd within ${this.handshakeTimeoutMs} ms`);
    }, this.handshakeTimeoutMs);
    let interval = 50;
    const publish = () => {
      if (conn !== this.conn || this.pendingNonce !== nonce || !this.client) return;
      this.client.publish(
        {
          topic: SYNC_TOPIC,
          event: { typeUrl: SYNC_TYPE_URL, value: Buffer.from(nonce, "utf8") },
        },
        this.metadata(),
        { deadline: new Date(started + this.handshakeTimeoutMs) },
        () => {
          // Errors show up as a missing echo; the stream's own error reconnects sooner.
        },
      );
      interval = Math.min(interval * 2, 1000);
      if (why === "handshake") this.timer(publish, interval);
    };
    publish();
  }

  private onEnvelope(env: Envelope): void {
    if (env.namespace !== "" && env.namespace !== this.namespace) return;
    if (env.topic === SYNC_TOPIC) {
      const nonce = env.event?.typeUrl === SYNC_TYPE_URL ? Buffer.from(env.event.value).toString("utf8") : "";
      if (nonce !== "" && nonce === this.pendingNonce) this.synced();
      return;
    }
    if (env.topic === SNAPSHOT_PREPARE_TOPIC) {
      const e = decodeSnapshotEvent(env);
      // One we cannot read may be about any container: forget them all (Stat answers instead).
      if (e) this.snapshots.apply(e);
      else this.snapshots.clear();
      return;
    }
    if (!env.topic.startsWith("/images/")) return;
    const name = decodeImageEventName(env);
    if (name === undefined) {
      // Unknown or malformed: we cannot tell which name changed, so forget all of them.
      this.log.warn(
        { topic: env.topic, type: env.event?.typeUrl },
        "undecodable image event; image cache cleared",
      );
      this.dropAll();
      return;
    }
    this.epoch++;
    this.counters.invalidations++;
    this.cache.delete(name);
  }

  private synced(): void {
    this.pendingNonce = undefined;
    this.clearTimers();
    if (this.stateValue !== "connected") {
      this.stateValue = "connected";
      this.counters.connects++;
      this.backoffMs = this.backoffInitialMs;
      this.log.info({ namespace: this.namespace }, "image event stream live; image cache enabled");
    }
    this.scheduleHeartbeat();
  }

  private scheduleHeartbeat(): void {
    if (this.heartbeat) clearTimeout(this.heartbeat);
    const conn = this.conn;
    this.heartbeat = setTimeout(() => {
      this.heartbeat = undefined;
      if (conn === this.conn && this.stateValue === "connected") this.sync(conn, "heartbeat");
    }, this.heartbeatMs);
    this.heartbeat.unref();
  }

  /** The stream is gone or unproven: clear, bypass, reconnect after back-off. */
  private lost(why: string): void {
    if (this.stateValue === "closed") return;
    const wasConnected = this.stateValue === "connected";
    this.stateValue = "connecting";
    this.dropAll();
    this.teardown();
    const delay = Math.round(this.backoffMs * (0.5 + Math.random() * 0.5));
    this.backoffMs = Math.min(this.backoffMs * 2, this.backoffMaxMs);
    (wasConnected ? this.log.warn : this.log.info).call(
      this.log,
      { reason: why, retryInMs: delay },
      "image event stream not live; image cache bypassed",
    );
    this.timer(() => this.connect(), delay);
  }

  private dropAll(): void {
    this.epoch++;
    this.snapshots.clear();
    if (this.cache.size > 0) this.counters.invalidations++;
    this.cache.clear();
  }

  private teardown(): void {
    this.conn++;
    this.pendingNonce = undefined;
    this.clearTimers();
    if (this.heartbeat) clearTimeout(this.heartbeat);
    this.heartbeat = undefined;
    const stream = this.stream;
    this.stream = undefined;
    if (stream) {
      stream.removeAllListeners("data");
      stream.removeAllListeners("end");
      // Keep an error listener: cancel() emits CANCELLED, which must not become unhandled.
      stream.removeAllListeners("error");
      stream.on("error", () => {});
      stream.cancel();
    }
    this.client?.close();
    this.client = undefined;
  }

  private timer(fn: () => void, ms: number): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    t.unref();
    this.timers.add(t);
    return t;
  }

  private clearTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}

/**
 * What the stream asks containerd for: every topic by equality, none by `~=`. containerd
 * (2.1, pkg/filters) compiles a `~=` pattern again on every match, i.e. for every event of
 * the namespace on the node (several per container created), in the broadcaster goroutine
 * each publisher waits on; an equality is a string compare. containerd publishes no image
 * topics but these three (core/metadata/images.go).
 */
export function subscriptionFilters(namespace: string): string[] {
  const ns = JSON.stringify(namespace);
  // The most frequent first: containerd tries the alternatives in order.
  return [SNAPSHOT_PREPARE_TOPIC, ...IMAGE_TOPICS, SYNC_TOPIC].map(
    (topic) => `namespace==${ns},topic==${JSON.stringify(topic)}`,
  );
}

/**
 * Two turns of the event loop: the first setImmediate runs after every I/O callback of the
 * current poll phase, the second after one more (zero-timeout) poll, so bytes already in a
 * socket buffer when we got here are read and dispatched before we answer.
 */
function yieldToIo(): Promise<void> {
  return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
}

/** The image name an /images/* envelope is about; undefined when it cannot be decoded. */
export function decodeImageEventName(env: Envelope): string | undefined {
  const ev = env.event;
  if (!ev) return undefined;
  // containerd sends type URLs without a prefix; accept the canonical prefixed form too.
  const type = ev.typeUrl.startsWith("type.googleapis.com/") ? ev.typeUrl.slice(20) : ev.typeUrl;
  let name: string;
  try {
    if (type === TYPE_CREATE && env.topic === "/images/create") name = ImageCreate.decode(ev.value).name;
    else if (type === TYPE_UPDATE && env.topic === "/images/update") name = ImageUpdate.decode(ev.value).name;
    else if (type === TYPE_DELETE && env.topic === "/images/delete") name = ImageDelete.decode(ev.value).name;
    else return undefined;
  } catch {
    return undefined;
  }
  if (name === "" || name.length > MAX_NAME) return undefined;
  return name;
}
