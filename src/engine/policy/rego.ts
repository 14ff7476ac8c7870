// Rego policies compiled to WebAssembly, evaluated with @open-policy-agent/opa-wasm.
//
// Contract (docs: ImagePolicy spec.rego): the entrypoint gets RegoInput (model.ts) as `input`
// and spec.rego.data as `data`; it returns a boolean, or { allow: boolean, reasons?: string[] }.
// An empty result set (rule undefined) denies. Anything else is a broken policy: an
// EngineError("INVALID_POLICY") that the engine turns into a `failed` verdict.
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import { EngineError } from "../errors.js";
import type { CompiledRego, RegoDecision, RegoInput } from "./model.js";

/** Memory bound for a policy instance: 64 KiB pages, 1024 = 64 MiB. */
const MAX_PAGES = 1024;
const MAX_REASONS = 16;
const MAX_REASON_CHARS = 512;

function message(e: unknown): string {
  if (typeof e === "string") return e;
  if (e instanceof Error) return e.message;
  if (typeof e === "object" && e !== null && "message" in e)
    return String((e as { message: unknown }).message);
  return String(e);
}

export interface LoadedRego extends CompiledRego {
  /** Entrypoint names the module exports. */
  entrypoints: string[];
}

/**
 * Instantiates the module and checks the entrypoint exists. Throws
 * EngineError("INVALID_POLICY") with a sentence; compile.ts attaches the spec path.
 */
export async function loadRego(wasm: Uint8Array, entrypoint: string, data?: unknown): Promise<LoadedRego> {
  let policy: Awaited<ReturnType<typeof loadPolicy>>;
  try {
    // Copy into a fresh ArrayBuffer: the SDK only accepts exact BufferSource views.
    const bytes = new Uint8Array(wasm.byteLength);
    bytes.set(wasm);
    policy = await loadPolicy(bytes.buffer, { initial: 5, maximum: MAX_PAGES });
  } catch (e) {
    throw new EngineError("INVALID_POLICY", `not a loadable OPA WebAssembly module: ${message(e)}`, {
      cause: e,
    });
  }
  const entrypoints = Object.keys((policy.entrypoints ?? {}) as Record<string, number>);
  if (!entrypoints.includes(entrypoint)) {
    throw new EngineError(
      "INVALID_POLICY",
      `entrypoint "${entrypoint}" is not in the module (it has: ${entrypoints.join(", ") || "none"})`,
    );
  }
  if (data !== undefined) {
    try {
      policy.setData(data as object);
    } catch (e) {
      throw new EngineError("INVALID_POLICY", `the module rejected spec.rego.data: ${message(e)}`, {
        cause: e,
      });
    }
  }
  return {
    entrypoint,
    entrypoints,
    evaluate(input: RegoInput): RegoDecision {
      let rs: unknown;
      try {
        rs = policy.evaluate(input, entrypoint);
      } catch (e) {
        throw new EngineError("INVALID_POLICY", `rego entrypoint ${entrypoint} failed: ${message(e)}`, {
          cause: e,
        });
      }
      return interpret(entrypoint, rs);
    },
  };
}

/** Turns an OPA result set into a decision. Exported for tests. */
export function interpret(entrypoint: string, rs: unknown): RegoDecision {
  if (!Array.isArray(rs)) {
    throw new EngineError("INVALID_POLICY", `rego entrypoint ${entrypoint} returned no result set`);
  }
  if (rs.length === 0) return { allow: false, reasons: [`rego ${entrypoint} is undefined for this input`] };
  if (rs.length > 1) {
    throw new EngineError(
      "INVALID_POLICY",
      `rego entrypoint ${entrypoint} returned ${rs.length} results, expected one`,
    );
  }
  const first = rs[0] as { result?: unknown } | undefined;
  const result = first?.result;
  if (typeof result === "boolean") {
    return { allow: result, reasons: [result ? `rego ${entrypoint} allowed` : `rego ${entrypoint} denied`] };
  }
  if (
    typeof result === "object" &&
    result !== null &&
    typeof (result as { allow?: unknown }).allow === "boolean"
  ) {
    const r = result as { allow: boolean; reasons?: unknown };
    const reasons = Array.isArray(r.reasons)
      ? r.reasons
          .filter((x): x is string => typeof x === "string")
          .slice(0, MAX_REASONS)
          .map((s) => s.slice(0, MAX_REASON_CHARS))
      : [];
    if (reasons.length === 0)
      reasons.push(r.allow ? `rego ${entrypoint} allowed` : `rego ${entrypoint} denied`);
    return { allow: r.allow, reasons };
  }
  throw new EngineError(
    "INVALID_POLICY",
    `rego entrypoint ${entrypoint} returned ${JSON.stringify(result)?.slice(0, 200)}, expected a boolean or {allow, reasons}`,
  );
}
