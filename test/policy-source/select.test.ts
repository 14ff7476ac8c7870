import { describe, expect, it } from "vitest";
import type { CompiledPolicyLike } from "../../src/policy-source/model.js";
import {
  breakGlassOf,
  isValidNamespaceName,
  NAMESPACE_PATTERN,
  type NamespaceMeta,
  selectPolicy,
} from "../../src/policy-source/select.js";
import type { SelectionConfig } from "../../src/policy-source/types.js";

const pol = (name: string, mode: "Enforce" | "Audit" = "Enforce"): CompiledPolicyLike => ({
  name,
  revision: `sha256:${name.padEnd(64, "0").slice(0, 64)}`,
  mode,
  failurePolicy: "Closed",
});
const policies = new Map([
  ["strict", pol("strict")],
  ["lax", pol("lax", "Audit")],
  ["baseline", pol("baseline")],
]);
const config: SelectionConfig = {
  defaultPolicy: "baseline",
  exemptNamespaces: ["kube-system"],
  maxBreakGlassSeconds: 3600,
};
const now = new Date("2030-01-01T12:00:00Z");
const ns = (name: string, annotations: Record<string, string> = {}): NamespaceMeta => ({ name, annotations });
const sel = (name: string, annotations?: Record<string, string>, cfg: SelectionConfig = config) =>
  selectPolicy({ namespace: name, meta: ns(name, annotations), policies, config: cfg, now });

describe("selectPolicy", () => {
  it("uses the policy the namespace annotation names", () => {
    const s = sel("team-a", { "tollgate.dev/policy": "strict" });
    expect(s).toMatchObject({ kind: "policy", namespace: "team-a", via: "annotation" });
    expect(s.kind === "policy" && s.policy.name).toBe("strict");
    expect(s.kind === "policy" && s.breakGlass).toBeUndefined();
  });

  it("falls back to the default policy without the annotation", () => {
    const s = sel("team-b", { unrelated: "x" });
    expect(s).toMatchObject({ kind: "policy", via: "default" });
    expect(s.kind === "policy" && s.policy.name).toBe("baseline");
  });

  it("exempts namespaces listed in configuration, whatever they annotate", () => {
    expect(sel("kube-system", { "tollgate.dev/policy": "strict" })).toMatchObject({ kind: "exempt" });
    // Exemption is by exact name only: nothing is exempt by accident.
    expect(sel("kube-system-2").kind).toBe("policy");
    expect(sel("kube").kind).toBe("policy");
  });

  it("denies (error, Closed) when the annotation names a missing policy, never the default", () => {
    const s = sel("team-c", { "tollgate.dev/policy": "does-not-exist" });
    expect(s).toMatchObject({ kind: "error", failurePolicy: "Closed" });
    expect(s.kind === "error" && s.message).toMatch(/does-not-exist.*does not exist/);
  });

  it("denies an empty or malformed policy annotation instead of using the default", () => {
    expect(sel("team-c", { "tollgate.dev/policy": "" }).kind).toBe("error");
    expect(sel("team-c", { "tollgate.dev/policy": "Strict Policy" }).kind).toBe("error");
  });

  it("denies when the default is configured but not loaded, or not configured at all", () => {
    const missing = sel("team-d", {}, { ...config, defaultPolicy: "gone" });
    expect(missing).toMatchObject({ kind: "error", failurePolicy: "Closed" });
    const none = sel("team-d", {}, { exemptNamespaces: [] });
    expect(none).toMatchObject({ kind: "error", failurePolicy: "Closed" });
  });

  it("denies namespaces the source does not know and invalid namespace names", () => {
    const unknown = selectPolicy({ namespace: "new-ns", meta: undefined, policies, config, now });
    expect(unknown).toMatchObject({ kind: "error", failurePolicy: "Closed" });
    expect(sel("Not_A_Namespace").kind).toBe("error");
    // Metadata for another namespace is never used.
    const mismatch = selectPolicy({ namespace: "a", meta: ns("b"), policies, config, now });
    expect(mismatch.kind).toBe("error");
  });

  it("honours a custom policy annotation key", () => {
    const s = sel(
      "x",
      { "example.com/policy": "strict" },
      { ...config, policyAnnotation: "example.com/policy" },
    );
    expect(s.kind === "policy" && s.policy.name).toBe("strict");
  });
});

describe("break-glass", () => {
  const bg = (until: string, extra: Record<string, string> = {}) =>
    sel("team-a", { "tollgate.dev/policy": "strict", "tollgate.dev/break-glass": until, ...extra });

  it("a valid, unexpired break-glass within the cap is reported for allow-with-audit", () => {
    const s = bg("2030-01-01T12:30:00Z", { "tollgate.dev/break-glass-reason": "INC-42\nrollback" });
    expect(s.kind).toBe("policy");
    if (s.kind !== "policy") return;
    // The policy is still selected and evaluated; break-glass only decorates the selection.
    expect(s.policy.name).toBe("strict");
    expect(s.breakGlass?.until.toISOString()).toBe("2030-01-01T12:30:00.000Z");
    expect(s.breakGlass?.reason).toBe("INC-42 rollback");
  });

  it("accepts RFC 3339 offsets", () => {
    const s = bg("2030-01-01T13:30:00+01:00");
    expect(s.kind === "policy" && s.breakGlass?.until.toISOString()).toBe("2030-01-01T12:30:00.000Z");
  });

  it("an expired break-glass means normal enforcement", () => {
    const s = bg("2030-01-01T11:59:59Z");
    expect(s.kind === "policy" && s.breakGlass).toBeUndefined();
    expect(s.kind === "policy" && s.notes?.[0]).toMatch(/expired/);
  });

  it("an expiry beyond now + maxBreakGlassSeconds is refused (not clamped)", () => {
    const s = bg("2030-01-01T13:00:01Z");
    expect(s.kind === "policy" && s.breakGlass).toBeUndefined();
    expect(s.kind === "policy" && s.notes?.[0]).toMatch(/refused/);
    // Exactly at the cap is accepted.
    expect(bg("2030-01-01T13:00:00Z").kind === "policy" && bg("2030-01-01T13:00:00Z")).toHaveProperty(
      "breakGlass",
    );
    // Far future: still refused at every later evaluation (a clamp would slide forever).
    const later = new Date(now.getTime() + 10 * 3600_000);
    const far = selectPolicy({
      namespace: "a",
      meta: ns("a", { "tollgate.dev/break-glass": "3000-01-01T00:00:00Z" }),
      policies,
      config,
      now: later,
    });
    expect(far.kind === "policy" && far.breakGlass).toBeUndefined();
  });

  it("malformed expiries and disabled break-glass are refused", () => {
    for (const v of ["tomorrow", "2030-01-01", "2030-01-01 12:30:00Z", "1893499800", ""]) {
      const s = bg(v);
      expect(s.kind === "policy" && s.breakGlass, v).toBeUndefined();
      expect(s.kind === "policy" && s.notes?.[0], v).toMatch(/ignored/);
    }
    const off = breakGlassOf(
      ns("a", { "tollgate.dev/break-glass": "2030-01-01T12:30:00Z" }),
      { maxBreakGlassSeconds: 0 },
      now,
    );
    expect(off.active).toBeUndefined();
    expect(off.note).toMatch(/disabled/);
  });

  it("break-glass never turns an error into an allow", () => {
    const s = sel("team-a", {
      "tollgate.dev/policy": "missing",
      "tollgate.dev/break-glass": "2030-01-01T12:30:00Z",
    });
    expect(s.kind).toBe("error");
  });
});

describe("tenant-controlled pod metadata cannot influence selection", () => {
  it("select takes exactly one options object with no pod field", () => {
    expect(selectPolicy.length).toBe(1);
    // Extra pod data passed anyway (e.g. by a careless caller) is ignored entirely.
    const input = {
      namespace: "team-a",
      meta: ns("team-a", { "tollgate.dev/policy": "strict" }),
      policies,
      config,
      now,
      pod: {
        namespace: "kube-system",
        annotations: { "tollgate.dev/policy": "lax", "tollgate.dev/break-glass": "2030-01-01T12:30:00Z" },
      },
    };
    const s = selectPolicy(input);
    expect(s.kind === "policy" && s.policy.name).toBe("strict");
    expect(s.kind === "policy" && s.breakGlass).toBeUndefined();
  });

  it("the type has no way to pass pod metadata", () => {
    type Keys = keyof Parameters<typeof selectPolicy>[0];
    const keys: Record<Keys, true> = { namespace: true, meta: true, policies: true, config: true, now: true };
    expect(Object.keys(keys).sort()).toEqual(["config", "meta", "namespace", "now", "policies"]);
    const base = { namespace: "a", meta: undefined, policies, config, now };
    // @ts-expect-error pod labels/annotations are not an input of selection
    const bad: Parameters<typeof selectPolicy>[0] = { ...base, podAnnotations: {} };
    expect(bad).toBeDefined();
  });
});

describe("isValidNamespaceName", () => {
  it("accepts exactly the RFC 1123 labels the pattern accepts (edge cases and 20,000 random names)", () => {
    const cases = [
      "",
      "a",
      "0",
      "-",
      "a-",
      "-a",
      "a-b",
      "a--b",
      "A",
      "team_a",
      "team.a",
      "ä",
      "a".repeat(63),
      "a".repeat(64),
      `a${"-".repeat(61)}a`,
      "kube-system",
      "x\n",
      " a",
    ];
    for (const c of cases) expect(isValidNamespaceName(c), JSON.stringify(c)).toBe(NAMESPACE_PATTERN.test(c));
    const alphabet = "abz09-_.A ä\n";
    let seed = 7;
    for (let i = 0; i < 20_000; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      const len = seed % 66;
      let name = "";
      for (let k = 0; k < len; k++) {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        // mostly valid characters, so that long valid names occur too
        name += seed % 10 < 8 ? "ab09-"[seed % 5] : alphabet[seed % alphabet.length];
      }
      expect(isValidNamespaceName(name), JSON.stringify(name)).toBe(NAMESPACE_PATTERN.test(name));
    }
  });
});
