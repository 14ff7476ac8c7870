// Global and per-registry bounds on verification work, so a hostile registry (or many pods
// pointing at one) cannot take the agent's memory or all of its verification capacity.
//
// - Concurrency: at most `maxConcurrent` verifications run at once, at most
//   `maxConcurrentPerRegistry` of them for one registry host. Others wait in one FIFO
//   queue (a registry at its own limit does not block others behind it).
// - Queue: at most `maxQueued` waiting, each for at most `queueTimeoutMs`. Work refused or
//   timed out in the queue fails with CAPACITY (transient: the caller's failure policy
//   answers) and is never cached — it says nothing about the image.
// - Bytes in flight: every response body byte a verification reads is charged to it (from
//   the registry client, through an async-context account) and held until the verification
//   ends; a charge that would pass `maxBytes` overall or `maxBytesPerRegistry` for the host
//   fails that fetch with CAPACITY. So the agent's worst case is bounded by maxBytes, not
//   by (verifications × signatures × manifest cap).
import { AsyncLocalStorage } from "node:async_hooks";
import { EngineError } from "./errors.js";

export interface LimitsOptions {
  maxConcurrent: number;
  maxConcurrentPerRegistry: number;
  maxBytes: number;
  maxBytesPerRegistry: number;
  maxQueued: number;
  queueTimeoutMs: number;
}

export const LIMIT_DEFAULTS: LimitsOptions = {
  maxConcurrent: 16,
  maxConcurrentPerRegistry: 4,
  maxBytes: 64 * 1024 * 1024,
  maxBytesPerRegistry: 32 * 1024 * 1024,
  maxQueued: 512,
  queueTimeoutMs: 30_000,
};

export interface LimitsStats {
  running: number;
  queued: number;
  bytes: number;
  refused: number;
}

interface Account {
  registry: string;
  held: number;
  owner: VerificationLimits;
}

const current = new AsyncLocalStorage<Account>();

/** The byte account of the verification running in this async context, if any. */
export function byteAccount(): { charge(n: number, what: string): void } | undefined {
  const a = current.getStore();
  return a ? { charge: (n, what) => a.owner.charge(a, n, what) } : undefined;
}

interface Waiter {
  registry: string;
  start: () => void;
  timer: NodeJS.Timeout;
}

export class VerificationLimits {
  readonly o: LimitsOptions;
  private running = 0;
  private readonly runningBy = new Map<string, number>();
  private bytes = 0;
  private readonly bytesBy = new Map<string, number>();
  private readonly queue: Waiter[] = [];
  private refused = 0;

  constructor(opts: Partial<LimitsOptions> = {}) {
    this.o = { ...LIMIT_DEFAULTS, ...opts };
  }

  stats(): LimitsStats {
    return { running: this.running, queued: this.queue.length, bytes: this.bytes, refused: this.refused };
  }

  /** Runs `fn` within the bounds; rejects with CAPACITY when it cannot get a slot. */
  async run<T>(registry: string, fn: () => Promise<T>): Promise<T> {
    if (this.hasRoom(registry)) this.take(registry);
    else await this.wait(registry); // pump() takes the slot on the waiter's behalf
    const acct: Account = { registry, held: 0, owner: this };
    try {
      return await current.run(acct, fn);
    } finally {
      this.bytes -= acct.held;
      this.add(this.bytesBy, registry, -acct.held);
      acct.held = 0;
      this.running--;
      this.add(this.runningBy, registry, -1);
      this.pump();
    }
  }

  charge(a: Account, n: number, what: string): void {
    if (this.bytes + n > this.o.maxBytes)
      throw this.capacity(
        `${what}: the agent already holds ${this.bytes} bytes of registry responses (limit ${this.o.maxBytes})`,
      );
    const per = this.bytesBy.get(a.registry) ?? 0;
    if (per + n > this.o.maxBytesPerRegistry)
      throw this.capacity(
        `${what}: verifications against ${a.registry} already hold ${per} bytes (limit ${this.o.maxBytesPerRegistry} per registry)`,
      );
    this.bytes += n;
    this.add(this.bytesBy, a.registry, n);
    a.held += n;
  }

  private capacity(msg: string): EngineError {
    this.refused++;
    return new EngineError("CAPACITY", msg);
  }

  private hasRoom(registry: string): boolean {
    return (
      this.running < this.o.maxConcurrent &&
      (this.runningBy.get(registry) ?? 0) < this.o.maxConcurrentPerRegistry
    );
  }

  private take(registry: string): void {
    this.running++;
    this.add(this.runningBy, registry, 1);
  }

  private wait(registry: string): Promise<void> {
    if (this.queue.length >= this.o.maxQueued)
      return Promise.reject(
        this.capacity(`verification queue is full (${this.o.maxQueued} waiting); try again later`),
      );
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = {
        registry,
        start: () => {
          clearTimeout(w.timer);
          resolve();
        },
        timer: setTimeout(() => {
          const i = this.queue.indexOf(w);
          if (i >= 0) this.queue.splice(i, 1);
          reject(
            this.capacity(
              `waited ${this.o.queueTimeoutMs} ms for a verification slot (${this.o.maxConcurrent} overall, ${this.o.maxConcurrentPerRegistry} per registry, all busy)`,
            ),
          );
        }, this.o.queueTimeoutMs),
      };
      w.timer.unref?.();
      this.queue.push(w);
    });
  }

  /** Starts the oldest waiters that fit; a registry at its own limit does not block the others. */
  private pump(): void {
    for (let i = 0; i < this.queue.length && this.running < this.o.maxConcurrent; ) {
      const w = this.queue[i]!;
      if (this.hasRoom(w.registry)) {
        this.queue.splice(i, 1);
        this.take(w.registry);
        w.start();
      } else i++;
    }
  }

  private add(m: Map<string, number>, k: string, d: number): void {
    const v = (m.get(k) ?? 0) + d;
    if (v <= 0) m.delete(k);
    else m.set(k, v);
  }
}
