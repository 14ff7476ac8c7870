// Where the agent's log lines go, audit records included: standard output, written on the
// main thread as each line is produced.
//
// pino's default destination writes asynchronously on libuv's thread pool: every line wakes
// a pool thread, which wakes the event loop again once written. With one audit record per
// CreateContainer that hop was about 0.14 ms of the agent's CPU per create on a 2-core VM
// (bench/create-container.ts, a third of what the agent spent over a no-op plugin). Node's
// own stdout stream writes at once instead, in the way fd 1 allows:
// - a pipe or a socket (a container's stdout: the FIFO containerd's shim reads): the
//   descriptor is non-blocking and each write is tried at once; only while the reader lags
//   are lines queued in memory, and written as the pipe drains, so a slow log reader never
//   holds up an NRI answer;
// - a file, a terminal or /dev/null: a synchronous write, which waits for no reader.
// A stop waits, bounded, for queued lines (drain). A process that ends while its pipe is
// full loses what is still queued, as the thread-pool destination lost what it held.
import type { Writable } from "node:stream";

export interface LogOutput {
  readonly stream: Writable;
  /** Resolves true once every line written so far is out, false after `timeoutMs`. */
  drain(timeoutMs: number): Promise<boolean>;
}

export function stdoutLog(): LogOutput {
  const out = process.stdout;
  // A write error (the reader is gone: EPIPE) leaves the lines nowhere to go. It must not
  // end the agent, and it is said once, on stderr.
  let failed = false;
  out.on("error", (e: NodeJS.ErrnoException) => {
    if (failed) return;
    failed = true;
    process.stderr.write(
      `tollgate agent: standard output failed (${e.code ?? e.message}); log lines are dropped from now on\n`,
    );
  });
  return {
    stream: out,
    drain(timeoutMs) {
      if (failed || out.destroyed || out.writableLength === 0) return Promise.resolve(true);
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), timeoutMs);
        timer.unref();
        // Callbacks run in write order, so this one runs after every earlier line is written.
        out.write("", () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
    },
  };
}
