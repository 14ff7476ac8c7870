// Errors that escape every handler are logged and counted; the process keeps running.
import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { installProcessHandlers, type ProcessLike } from "../../src/agent/process.js";

describe("process-level handlers", () => {
  it("log an unhandled rejection and an uncaught exception, count them, and can be removed", () => {
    const proc = new EventEmitter();
    const logged: Array<{ o: Record<string, unknown>; msg: string }> = [];
    const counted: string[] = [];
    const off = installProcessHandlers(
      { error: ((o: Record<string, unknown>, msg: string) => logged.push({ o, msg })) as never },
      (k) => counted.push(k),
      proc as unknown as ProcessLike,
    );
    proc.emit("unhandledRejection", new Error("stray rejection"));
    proc.emit("uncaughtException", new TypeError("stray throw"), "uncaughtException");
    proc.emit("unhandledRejection", "not an error");
    expect(counted).toEqual(["unhandledRejection", "uncaughtException", "unhandledRejection"]);
    expect(logged.map((l) => l.o.err)).toEqual(["stray rejection", "stray throw", "not an error"]);
    expect(logged[1]!.msg).toMatch(/keeps serving/);
    off();
    expect(proc.listenerCount("unhandledRejection") + proc.listenerCount("uncaughtException")).toBe(0);
  });
});
