import { describe, expect, it } from "vitest";
import { compileCondition, formatIssue, isCelIssue, record, T } from "../../../src/engine/cel/index.js";

const vars = {
  image: record("image", { digest: T.string }),
  attestations: record("attestations", {
    provenance: record("attestation", { predicateType: T.string, predicate: T.dyn }),
  }),
  now: T.timestamp,
};

function issue(expr: string): string {
  const c = compileCondition(expr, vars);
  if (!isCelIssue(c)) throw new Error(`expected an error for ${expr}`);
  return formatIssue(c);
}

describe("CEL condition checking (validation time)", () => {
  it("points at undeclared variables, unknown fields and bad overloads", () => {
    expect(issue(`imag.digest == "x"`)).toBe(
      "1:1: undeclared reference to 'imag' (variables: attestations, image, now)",
    );
    expect(issue(`attestations.provenanse.predicate.x == 1`)).toBe(
      "1:13: undefined field 'provenanse' of attestations (fields: provenance)",
    );
    expect(issue(`image.digest.startsWith(1)`)).toMatch(
      /^1:13: no matching overload for 'startsWith' applied to string\.\(int\)/,
    );
    expect(issue(`image.digest == 1`)).toMatch(/^1:14: no matching overload for '=='/);
    expect(issue(`now - timestamp("2020-01-01T00:00:00Z")`)).toBe(
      "expression must evaluate to bool, but has type google.protobuf.Duration",
    );
    expect(issue(`true &&\n  frob(1)`)).toMatch(/^2:3: undeclared reference to function 'frob'/);
    expect(issue(`image.digest ==`)).toMatch(/^1:14: syntax error:/);
  });

  it("accepts dyn predicates and evaluates them against JSON data", () => {
    const c = compileCondition(
      `attestations.provenance.predicate.runDetails.builder.id.startsWith("https://ci.example/") && now - timestamp(attestations.provenance.predicate.at) < duration("24h")`,
      vars,
    );
    if (isCelIssue(c)) throw new Error(formatIssue(c));
    expect(c.usesNow).toBe(true);
    const input = (at: string) => ({
      image: { digest: "sha256:00" },
      attestations: {
        provenance: {
          predicateType: "x",
          predicate: { runDetails: { builder: { id: "https://ci.example/r" } }, at },
        },
      },
      now: new Date("2026-01-02T00:00:00Z"),
    });
    expect(c.evaluate(input("2026-01-01T12:00:00Z"))).toEqual({ ok: true, value: true });
    expect(c.evaluate(input("2025-12-31T00:00:00Z"))).toEqual({ ok: true, value: false });
    // A predicate without the field is an evaluation error, not a silent false.
    const missing = c.evaluate({
      ...input("x"),
      attestations: { provenance: { predicateType: "x", predicate: {} } },
    });
    expect(missing.ok).toBe(false);
  });

  it("stops at the cost limit, even where errors would be absorbed", () => {
    const c = compileCondition(
      `attestations.provenance.predicate.xs.exists(a, attestations.provenance.predicate.xs.exists(b, a + b == -1)) || true`,
      vars,
    );
    if (isCelIssue(c)) throw new Error(formatIssue(c));
    const xs = Array.from({ length: 1000 }, (_, i) => i);
    const input = { image: {}, attestations: { provenance: { predicate: { xs } } }, now: new Date() };
    const r = c.evaluate(input, { costLimit: 10_000 });
    expect(r).toEqual({ ok: false, error: "cost limit exceeded (10000 iterations)" });
    expect(
      c.evaluate(
        { ...input, attestations: { provenance: { predicate: { xs: xs.slice(0, 50) } } } },
        { costLimit: 10_000 },
      ),
    ).toEqual({
      ok: true,
      value: true,
    });
  });
});
