// One informer (client-node's ListWatch) kept alive: ListWatch relists by itself on 410
// Gone and re-watches from its resourceVersion when a stream ends cleanly, but on any other
// error (API server unreachable, connection reset, list failure) it reports ERROR and stops.
// The reflector restarts it with exponential back-off, and reports when the initial list
// has been applied to the cache ("synced").

import {
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  ListWatch,
  Watch,
} from "@kubernetes/client-node";

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** A run that lasted this long resets the back-off to initialMs. */
  resetAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 250, maxMs: 30_000, resetAfterMs: 10_000 };

export interface ReflectorHandlers<T extends KubernetesObject> {
  add(obj: T): void;
  update(obj: T): void;
  delete(obj: T): void;
  /** Initial list applied (first time only). */
  synced(): void;
  /** Error from list or watch; the reflector retries after `retryInMs`. */
  error(err: unknown, retryInMs: number): void;
  /** A watch (re)started after an error. */
  recovered(): void;
}

/** Watch that asks for bookmarks (ListWatch does not) and tells us when a watch begins. */
class HookedWatch extends Watch {
  constructor(
    kc: KubeConfig,
    private readonly onWatchStart: () => void,
  ) {
    super(kc);
  }

  override watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    // ListWatch calls watch() only after a list has been applied to its cache.
    this.onWatchStart();
    return super.watch(path, { ...queryParams, allowWatchBookmarks: true }, callback, done);
  }
}

export class Reflector<T extends KubernetesObject> {
  private readonly informer: ListWatch<T>;
  private stopped = true;
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private runStartedAt = 0;
  private hasSynced = false;
  private failing = false;

  constructor(
    kc: KubeConfig,
    readonly path: string,
    list: () => Promise<KubernetesListObject<T>>,
    private readonly h: ReflectorHandlers<T>,
    private readonly backoff: BackoffOptions = DEFAULT_BACKOFF,
    fieldSelector?: string,
  ) {
    const watch = new HookedWatch(kc, () => this.onWatchStart());
    this.informer = new ListWatch<T>(path, watch, list, false, undefined, fieldSelector);
    this.informer.on("add", (o) => this.stopped || h.add(o));
    this.informer.on("update", (o) => this.stopped || h.update(o));
    this.informer.on("delete", (o) => this.stopped || h.delete(o));
    this.informer.on("error", (e) => this.onError(e));
  }

  get synced(): boolean {
    return this.hasSynced;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.informer.stop();
  }

  get(name: string, namespace?: string): T | undefined {
    return this.informer.get(name, namespace);
  }

  /** The resourceVersion the informer would resume from (advanced by events and bookmarks). */
  resourceVersion(): string {
    return this.informer.latestResourceVersion();
  }

  list(): ReadonlyArray<T> {
    return this.informer.list();
  }

  private run(): void {
    this.runStartedAt = Date.now();
    // start() resolves after the first watch request was issued; failures arrive via "error".
    this.informer.start().catch((e) => this.onError(e));
  }

  private onWatchStart(): void {
    if (this.stopped) return;
    if (!this.hasSynced) {
      this.hasSynced = true;
      this.h.synced();
    }
    if (this.failing) {
      this.failing = false;
      this.h.recovered();
    }
  }

  private onError(err: unknown): void {
    // Aborts caused by our own stop() surface as errors too.
    if (this.stopped) return;
    if (this.timer) return; // already scheduled
    if (Date.now() - this.runStartedAt >= this.backoff.resetAfterMs) this.attempt = 0;
    const base = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** this.attempt);
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.attempt = Math.min(this.attempt + 1, 30);
    this.failing = true;
    this.h.error(err, delay);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.stopped) this.run();
    }, delay);
    this.timer.unref();
  }
}
