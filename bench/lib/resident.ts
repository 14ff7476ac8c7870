// A component a benchmark child keeps in one long-lived process while taking it out of
// containerd's path between blocks: SIGUSR2 stops it, SIGUSR2 again starts a new one; SIGTERM
// stops it and exits. One process throughout, so what V8 optimized stays optimized, as in a
// node's plugin that runs for days. Signals are handled one after another, never overlapping.
export interface Resident<T extends { stop(): Promise<unknown> }> {
  /** The running component. */
  first: T;
  start(): Promise<T> | T;
  /** After each stop and each start, for the benchmark to wait on (a log line, a printout). */
  stopped(): void;
  started?(): void;
  /** Before the SIGTERM exit, once the component has stopped. */
  beforeExit?(): Promise<unknown>;
  fail(e: unknown): void;
}

export function keepResident<T extends { stop(): Promise<unknown> }>(r: Resident<T>): void {
  let current: T | undefined = r.first;
  // Stopped, the component holds no handle that keeps the process alive: this does.
  setInterval(() => {}, 1 << 30);
  let busy = Promise.resolve();
  process.on("SIGUSR2", () => {
    busy = busy.then(async () => {
      if (current) {
        await current.stop();
        current = undefined;
        r.stopped();
      } else {
        current = await r.start();
        r.started?.();
      }
    }, r.fail);
  });
  process.on("SIGTERM", () => {
    busy
      .then(() => current?.stop())
      .then(() => r.beforeExit?.())
      .then(() => process.exit(0), r.fail);
  });
}
