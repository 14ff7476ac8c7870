import { describe, expect, it } from "vitest";
import { EngineError, toEngineError } from "../../src/engine/errors.js";

describe("EngineError", () => {
  it("carries a code, a sentence and whether the failure policy applies", () => {
    const e = new EngineError("REGISTRY_TIMEOUT", "registry 127.0.0.1:5000 did not answer within 2000 ms");
    expect(e.code).toBe("REGISTRY_TIMEOUT");
    expect(e.transient).toBe(true);
    expect(new EngineError("DIGEST_MISMATCH", "x").transient).toBe(false);
    expect(JSON.parse(JSON.stringify(e))).toEqual({ code: "REGISTRY_TIMEOUT", message: e.message });
  });

  it("wraps foreign errors without losing them", () => {
    const cause = new TypeError("boom");
    const e = toEngineError(cause, "MALFORMED");
    expect(e.code).toBe("MALFORMED");
    expect(e.cause).toBe(cause);
    expect(toEngineError(e)).toBe(e);
  });
});
