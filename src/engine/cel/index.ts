// CEL conditions: compiled and type-checked once (policy validation), evaluated per
// verification with a cost limit. Parsing and evaluation are @bufbuild/cel's; type checking
// is ./check.ts (the library's checker covers constants and identifiers only).
//
// Cost: every comprehension (all, exists, exists_one, map, filter) is charged the size of
// its range before it runs; once an evaluation's budget is spent, further ranges evaluate as
// empty and the evaluation reports "cost limit exceeded" whatever value it produced. Work
// outside comprehensions is bounded by the expression's length, which is capped.
import { errorMessage } from "../../base/errors.js";
import {
  type CelInput,
  CelScalar,
  celEnv,
  celFunc,
  isCelError,
  isCelList,
  isCelMap,
  isCelType,
  isCelUint,
  parse,
  plan,
} from "@bufbuild/cel";
import { strings } from "@bufbuild/cel/ext";
import {
  type Expr,
  ExprSchema,
  type ParsedExpr,
  type SourceInfo,
} from "@bufbuild/cel-spec/cel/expr/syntax_pb.js";
import { create } from "@bufbuild/protobuf";
import { isReflectMessage } from "@bufbuild/protobuf/reflect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Checker, CheckError } from "./check.js";
import { type CelCheckType, typeName } from "./types.js";

export type { CelCheckType } from "./types.js";
export { list, map, record, T } from "./types.js";

/** Longest expression accepted (characters). */
export const MAX_EXPRESSION_CHARS = 4096;
/** Default evaluation budget: comprehension iterations per evaluation (≈5 µs each measured on Node 24). */
export const DEFAULT_COST_LIMIT = 10_000;

const COST_FN = "@tollgate_cost";

/** A compile problem, with the 1-based line and column it points at (when known). */
export interface CelIssue {
  message: string;
  line?: number;
  column?: number;
}

export interface CompiledCondition {
  expression: string;
  /** True when the expression reads `now` (its result can change as time passes). */
  usesNow: boolean;
  /** The variables it reads, as dotted paths ("request.namespace", "image.tag"; see readPaths). */
  reads: ReadonlySet<string>;
  /** Evaluates against `vars` (JSON-like values, Dates, Maps); never throws. */
  evaluate(vars: Record<string, unknown>, opts?: { costLimit?: number }): ConditionResult;
}

export type ConditionResult = { ok: true; value: boolean } | { ok: false; error: string };

let budget: { left: number; exceeded: boolean } | undefined;

const costFn = celFunc(COST_FN, [CelScalar.DYN], CelScalar.DYN, (range) => {
  const b = budget;
  if (!b) return range as CelInput;
  const n = isCelList(range) ? range.size : isCelMap(range) ? range.size : 0;
  b.left -= n + 1;
  if (b.left < 0) {
    b.exceeded = true;
    return [];
  }
  return range as CelInput;
});

const env = celEnv({ funcs: [...strings, costFn] });

/** "1:7" style position of a byte offset (code points) in the source. */
function position(text: string, offset: number | undefined): { line: number; column: number } | undefined {
  if (offset === undefined || offset < 0) return undefined;
  const cps = [...text];
  let line = 1;
  let column = 1;
  for (let i = 0; i < Math.min(offset, cps.length); i++) {
    if (cps[i] === "\n") {
      line++;
      column = 1;
    } else column++;
  }
  return { line, column };
}

function offsetOf(info: SourceInfo | undefined, id: bigint): number | undefined {
  const p = info?.positions as Record<string, number> | undefined;
  return p?.[String(id)];
}

/**
 * Parses and type-checks `expression` against `vars`; the result must be bool (or dyn,
 * checked at run time). Returns the compiled condition or the first problem found.
 */
export function compileCondition(
  expression: string,
  vars: Record<string, CelCheckType>,
): CompiledCondition | CelIssue {
  const c = compileExpression(expression, vars, { requireBool: true, check: true });
  if (isCelIssue(c)) return c;
  return {
    expression,
    usesNow: c.usesNow,
    reads: c.reads,
    evaluate(input, opts = {}) {
      const r = c.evaluate(input, opts);
      if (!r.ok) return r;
      if (typeof r.value !== "boolean") return { ok: false, error: "evaluated to a non-bool value" };
      return { ok: true, value: r.value };
    },
  };
}

export interface CompiledExpression {
  expression: string;
  usesNow: boolean;
  reads: ReadonlySet<string>;
  /** The static type the checker derived (dyn when checking was off). */
  type: CelCheckType;
  evaluate(
    vars: Record<string, unknown>,
    opts?: { costLimit?: number },
  ): { ok: true; value: unknown } | { ok: false; error: string };
}

/** compileCondition without the bool requirement (and optionally without checking): the conformance tests use it. */
export function compileExpression(
  expression: string,
  vars: Record<string, CelCheckType>,
  o: { requireBool: boolean; check: boolean },
): CompiledExpression | CelIssue {
  if (expression.trim() === "") return { message: "expression is empty" };
  if (expression.length > MAX_EXPRESSION_CHARS)
    return { message: `expression is longer than ${MAX_EXPRESSION_CHARS} characters` };
  let parsed: ParsedExpr & { expr: Expr };
  try {
    parsed = parse(expression);
  } catch (e) {
    // The parser's message is "<input>:L:C: what" (or a stack overflow on absurd nesting).
    const msg = errorMessage(e);
    const m = /^<input>:(\d+):(\d+): ([^\n]*)/.exec(msg);
    if (m) return { message: `syntax error: ${m[3]}`, line: Number(m[1]), column: Number(m[2]) };
    return { message: `syntax error: ${msg.split("\n")[0]?.slice(0, 200)}` };
  }
  let result: CelCheckType = { k: "dyn" };
  try {
    if (o.check) result = new Checker(new Map(Object.entries(vars))).check(parsed.expr);
  } catch (e) {
    if (e instanceof CheckError) {
      return { message: e.message, ...position(expression, offsetOf(parsed.sourceInfo, e.exprId)) };
    }
    if (e instanceof RangeError) return { message: "expression is nested too deeply" };
    throw e;
  }
  if (o.requireBool && result.k !== "bool" && result.k !== "dyn")
    return { message: `expression must evaluate to bool, but has type ${typeName(result)}` };

  const usesNow = "now" in vars && mentions(parsed.expr, "now");
  const reads = readPaths(parsed.expr, new Set(Object.keys(vars)));
  instrument(parsed.expr, { next: maxId(parsed.expr) + 1n });
  let program: ReturnType<typeof plan>;
  try {
    program = plan(env, parsed);
  } catch (e) {
    return { message: `cannot plan expression: ${errorMessage(e)}` };
  }
  return {
    expression,
    usesNow,
    reads,
    type: result,
    evaluate(input, opts = {}) {
      const mine = { left: opts.costLimit ?? DEFAULT_COST_LIMIT, exceeded: false };
      const outer = budget;
      budget = mine;
      let v: unknown;
      try {
        const bindings: Record<string, CelInput> = {};
        for (const [k, val] of Object.entries(input)) bindings[k] = toCel(val, 0);
        v = program(bindings);
      } catch (e) {
        return { ok: false, error: errorMessage(e) };
      } finally {
        budget = outer;
      }
      if (mine.exceeded)
        return {
          ok: false,
          error: `cost limit exceeded (${opts.costLimit ?? DEFAULT_COST_LIMIT} iterations)`,
        };
      if (isCelError(v)) return { ok: false, error: v.message };
      return { ok: true, value: v };
    },
  };
}

export function isCelIssue<C extends object>(v: C | CelIssue): v is CelIssue {
  return !("evaluate" in v);
}

/** "1:7: message" or just the message. */
export function formatIssue(i: CelIssue): string {
  return i.line !== undefined ? `${i.line}:${i.column}: ${i.message}` : i.message;
}

/**
 * Conversions of objects already seen. Conditions are evaluated per request over predicates
 * kept in the verdict cache (the same objects every time, never mutated), so each is
 * converted once; entries go when the cache drops the predicate.
 */
const converted = new WeakMap<object, CelInput>();

/**
 * JSON-like data (and Dates) → CEL input: plain objects become maps, Dates timestamps;
 * values that already are CEL inputs (bigint, Uint8Array, messages, CelUint) pass through.
 */
function toCel(v: unknown, depth: number): CelInput {
  if (depth > 64) throw new Error("input nested too deeply");
  if (v === null || v === undefined) return null;
  if (v instanceof Uint8Array || isPassThrough(v)) return v as CelInput;
  if (v instanceof Date) return timestampFromDate(v) as unknown as CelInput;
  if (typeof v === "object") {
    const seen = converted.get(v);
    if (seen !== undefined) return seen;
    let out: CelInput;
    if (Array.isArray(v)) out = v.map((x) => toCel(x, depth + 1));
    else if (v instanceof Map) out = new Map([...v].map(([k, x]) => [k, toCel(x, depth + 1)])) as CelInput;
    else {
      const m = new Map<string, CelInput>();
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) m.set(k, toCel(x, depth + 1));
      out = m as CelInput;
    }
    converted.set(v, out);
    return out;
  }
  if (typeof v === "number" || typeof v === "string" || typeof v === "boolean" || typeof v === "bigint")
    return v;
  return null;
}

function isPassThrough(v: unknown): boolean {
  return (
    typeof v === "object" &&
    v !== null &&
    ("$typeName" in v || isCelUint(v) || isCelList(v) || isCelMap(v) || isReflectMessage(v) || isCelType(v))
  );
}

function children(e: Expr): Expr[] {
  const k = e.exprKind;
  switch (k.case) {
    case "selectExpr":
      return k.value.operand ? [k.value.operand] : [];
    case "callExpr":
      return [...(k.value.target ? [k.value.target] : []), ...k.value.args];
    case "listExpr":
      return k.value.elements;
    case "structExpr":
      return k.value.entries.flatMap((en) => [
        ...(en.keyKind.case === "mapKey" ? [en.keyKind.value] : []),
        ...(en.value ? [en.value] : []),
      ]);
    case "comprehensionExpr": {
      const c = k.value;
      return [c.iterRange, c.accuInit, c.loopCondition, c.loopStep, c.result].filter((x): x is Expr => !!x);
    }
    default:
      return [];
  }
}

/**
 * The declared variables an expression reads, each as the longest field selection made on it
 * ("image.tag"; just "image" when the record itself is used, e.g. `image["tag"]`). A
 * comprehension variable that shadows a declared name counts as a read of it: the answer
 * may over-report, never under-report, which is what callers deciding "does this condition
 * depend on X" need.
 */
function readPaths(e: Expr, declared: ReadonlySet<string>): ReadonlySet<string> {
  const out = new Set<string>();
  const walk = (x: Expr) => {
    const path = selectPath(x);
    if (path !== undefined) {
      if (declared.has(path.split(".")[0] ?? "")) out.add(path);
      return;
    }
    for (const c of children(x)) walk(c);
  };
  walk(e);
  return out;
}

/** "a.b.c" for a chain of field selections on an identifier (has() tests included). */
function selectPath(e: Expr): string | undefined {
  const k = e.exprKind;
  if (k.case === "identExpr") return k.value.name.replace(/^\./, "");
  if (k.case === "selectExpr" && k.value.operand) {
    const inner = selectPath(k.value.operand);
    return inner === undefined ? undefined : `${inner}.${k.value.field}`;
  }
  return undefined;
}

function mentions(e: Expr, name: string): boolean {
  if (e.exprKind.case === "identExpr" && e.exprKind.value.name === name) return true;
  return children(e).some((c) => mentions(c, name));
}

function maxId(e: Expr): bigint {
  let m = e.id;
  for (const c of children(e)) {
    const x = maxId(c);
    if (x > m) m = x;
  }
  return m;
}

/** Wraps every comprehension range in the cost function (see the header). */
function instrument(e: Expr, ids: { next: bigint }): void {
  for (const c of children(e)) instrument(c, ids);
  if (e.exprKind.case === "comprehensionExpr" && e.exprKind.value.iterRange) {
    const range = e.exprKind.value.iterRange;
    e.exprKind.value.iterRange = create(ExprSchema, {
      id: ids.next++,
      exprKind: { case: "callExpr", value: { function: COST_FN, args: [range] } },
    });
  }
}
