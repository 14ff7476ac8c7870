// Static checking of a parsed CEL expression against declared variables: undeclared
// identifiers, unknown fields of known records, unknown functions, argument types that no
// overload accepts, and non-bool results are errors with the id of the offending node (the
// caller turns ids into line:column). Values of type dyn (JSON predicates) are checked at run
// time, as CEL itself does.
//
// The function table covers the CEL standard library plus the `strings` extension — the
// features conditions enable. Anything else (protobuf messages, optionals, other
// extensions) is rejected here, so a policy never relies on a feature the engine does not
// offer.
import type { Expr } from "@bufbuild/cel-spec/cel/expr/syntax_pb.js";
import {
  assignable,
  asMapLike,
  type CelCheckType,
  isNumeric,
  join,
  list,
  map,
  T,
  typeName,
} from "./types.js";

export class CheckError extends Error {
  constructor(
    message: string,
    readonly exprId: bigint,
  ) {
    super(message);
  }
}

type Rule = (recv: CelCheckType | undefined, args: CelCheckType[]) => CelCheckType | undefined;

const TYPE_IDENTS = new Set([
  "bool",
  "int",
  "uint",
  "double",
  "string",
  "bytes",
  "list",
  "map",
  "null_type",
  "type",
  "dyn",
  "google.protobuf.Timestamp",
  "google.protobuf.Duration",
]);

const isDyn = (t: CelCheckType) => t.k === "dyn";
const is = (t: CelCheckType, ...ks: CelCheckType["k"][]) => t.k === "dyn" || ks.includes(t.k);

function fn(arity: number, rule: (args: CelCheckType[]) => CelCheckType | undefined): Rule {
  return (recv, args) => (recv === undefined && args.length === arity ? rule(args) : undefined);
}

function method(
  recvKinds: CelCheckType["k"][],
  arities: number[],
  rule: (recv: CelCheckType, args: CelCheckType[]) => CelCheckType | undefined,
): Rule {
  return (recv, args) =>
    recv !== undefined && arities.includes(args.length) && is(recv, ...recvKinds)
      ? rule(recv, args)
      : undefined;
}

function either(...rules: Rule[]): Rule {
  return (recv, args) => {
    for (const r of rules) {
      const t = r(recv, args);
      if (t) return t;
    }
    return undefined;
  };
}

function sameKinds(a: CelCheckType, b: CelCheckType): boolean {
  return isDyn(a) || isDyn(b) || a.k === b.k || (a.k === "null" && b.k === "null");
}

function arith(ks: CelCheckType["k"][]): Rule {
  return fn(2, ([a, b]) => {
    if (!a || !b) return undefined;
    if (isDyn(a) && isDyn(b)) return T.dyn;
    const known = isDyn(a) ? b : a;
    if (!ks.includes(known.k) || !sameKinds(a, b)) return undefined;
    return known;
  });
}

const ORDERED: CelCheckType["k"][] = [
  "int",
  "uint",
  "double",
  "string",
  "bytes",
  "bool",
  "timestamp",
  "duration",
];

const stringMethod = (arities: number[], argsOk: (args: CelCheckType[]) => boolean, result: CelCheckType) =>
  method(["string"], arities, (_r, args) => (argsOk(args) ? result : undefined));
const allStrings = (args: CelCheckType[]) => args.every((a) => is(a, "string"));

const tsGetter = either(
  method(["timestamp"], [0, 1], (_r, args) => (args.every((a) => is(a, "string")) ? T.int : undefined)),
);
const durOrTsGetter = either(
  method(["timestamp", "duration"], [0], () => T.int),
  method(["timestamp"], [1], (_r, [tz]) => (tz && is(tz, "string") ? T.int : undefined)),
);

const RULES: Record<string, Rule> = {
  "_&&_": fn(2, (args) => (args.every((a) => is(a, "bool")) ? T.bool : undefined)),
  "_||_": fn(2, (args) => (args.every((a) => is(a, "bool")) ? T.bool : undefined)),
  "!_": fn(1, ([a]) => (a && is(a, "bool") ? T.bool : undefined)),
  "@not_strictly_false": fn(1, ([a]) => (a && is(a, "bool") ? T.bool : undefined)),
  "_?_:_": fn(3, ([c, a, b]) => (c && a && b && is(c, "bool") ? join(a, b) : undefined)),
  "_==_": fn(2, ([a, b]) =>
    a && b && (assignable(a, b) || (isNumeric(a) && isNumeric(b))) ? T.bool : undefined,
  ),
  "_!=_": fn(2, ([a, b]) =>
    a && b && (assignable(a, b) || (isNumeric(a) && isNumeric(b))) ? T.bool : undefined,
  ),
  "_<_": ordering(),
  "_<=_": ordering(),
  "_>_": ordering(),
  "_>=_": ordering(),
  "_+_": fn(2, ([a, b]) => {
    if (!a || !b) return undefined;
    if (isDyn(a) && isDyn(b)) return T.dyn;
    if ((a.k === "timestamp" && is(b, "duration")) || (b.k === "timestamp" && is(a, "duration")))
      return T.timestamp;
    if (a.k === "list" || b.k === "list") {
      if (!is(a, "list") || !is(b, "list")) return undefined;
      return list(join(a.k === "list" ? a.elem : T.dyn, b.k === "list" ? b.elem : T.dyn));
    }
    return arith(["int", "uint", "double", "string", "bytes", "duration"])(undefined, [a, b]);
  }),
  "_-_": fn(2, ([a, b]) => {
    if (!a || !b) return undefined;
    if (isDyn(a) && isDyn(b)) return T.dyn;
    if (a.k === "timestamp") {
      if (b.k === "timestamp") return T.duration;
      if (b.k === "duration") return T.timestamp;
      return isDyn(b) ? T.dyn : undefined;
    }
    if (isDyn(a) && b.k === "duration") return T.dyn;
    if (isDyn(a) && b.k === "timestamp") return T.duration;
    return arith(["int", "uint", "double", "duration"])(undefined, [a, b]);
  }),
  "_*_": arith(["int", "uint", "double"]),
  "_/_": arith(["int", "uint", "double"]),
  "_%_": arith(["int", "uint"]),
  "-_": fn(1, ([a]) => (a && is(a, "int", "double") ? a : undefined)),
  "_[_]": fn(2, ([c, i]) => {
    if (!c || !i) return undefined;
    if (isDyn(c)) return T.dyn;
    if (c.k === "list") return is(i, "int", "uint", "double") ? c.elem : undefined;
    const m = asMapLike(c);
    if (m.k === "map") return assignable(i, m.key) ? m.val : undefined;
    return undefined;
  }),
  "@in": fn(2, ([e, c]) => {
    if (!e || !c) return undefined;
    if (isDyn(c)) return T.bool;
    if (c.k === "list")
      return assignable(e, c.elem) || (isNumeric(e) && isNumeric(c.elem)) ? T.bool : undefined;
    const m = asMapLike(c);
    if (m.k === "map") return assignable(e, m.key) || (isNumeric(e) && isNumeric(m.key)) ? T.bool : undefined;
    return undefined;
  }),
  size: either(
    fn(1, ([a]) => (a && is(a, "string", "bytes", "list", "map", "record") ? T.int : undefined)),
    method(["string", "bytes", "list", "map", "record"], [0], () => T.int),
  ),
  contains: stringMethod([1], allStrings, T.bool),
  startsWith: stringMethod([1], allStrings, T.bool),
  endsWith: stringMethod([1], allStrings, T.bool),
  matches: either(
    stringMethod([1], allStrings, T.bool),
    fn(2, (args) => (allStrings(args) ? T.bool : undefined)),
  ),
  // strings extension
  charAt: stringMethod([1], ([i]) => !!i && is(i, "int"), T.string),
  indexOf: stringMethod([1, 2], ([s, i]) => !!s && is(s, "string") && (!i || is(i, "int")), T.int),
  lastIndexOf: stringMethod([1, 2], ([s, i]) => !!s && is(s, "string") && (!i || is(i, "int")), T.int),
  lowerAscii: stringMethod([0], () => true, T.string),
  upperAscii: stringMethod([0], () => true, T.string),
  trim: stringMethod([0], () => true, T.string),
  replace: stringMethod(
    [2, 3],
    ([a, b, n]) => !!a && !!b && is(a, "string") && is(b, "string") && (!n || is(n, "int")),
    T.string,
  ),
  split: stringMethod([1, 2], ([s, n]) => !!s && is(s, "string") && (!n || is(n, "int")), list(T.string)),
  substring: stringMethod([1, 2], (args) => args.every((a) => is(a, "int")), T.string),
  join: method(["list"], [0, 1], (r, args) =>
    (r.k !== "list" || is(r.elem, "string")) && allStrings(args) ? T.string : undefined,
  ),
  format: stringMethod([1], ([l]) => !!l && is(l, "list"), T.string),
  "strings.quote": fn(1, ([s]) => (s && is(s, "string") ? T.string : undefined)),
  // conversions
  int: fn(1, ([a]) => (a && is(a, "int", "uint", "double", "string", "timestamp") ? T.int : undefined)),
  uint: fn(1, ([a]) => (a && is(a, "int", "uint", "double", "string") ? T.uint : undefined)),
  double: fn(1, ([a]) => (a && is(a, "int", "uint", "double", "string") ? T.double : undefined)),
  string: fn(1, ([a]) =>
    a && is(a, "int", "uint", "double", "string", "bytes", "bool", "timestamp", "duration")
      ? T.string
      : undefined,
  ),
  bytes: fn(1, ([a]) => (a && is(a, "string", "bytes") ? T.bytes : undefined)),
  bool: fn(1, ([a]) => (a && is(a, "string", "bool") ? T.bool : undefined)),
  timestamp: fn(1, ([a]) => (a && is(a, "string", "int", "timestamp") ? T.timestamp : undefined)),
  duration: fn(1, ([a]) => (a && is(a, "string", "duration") ? T.duration : undefined)),
  dyn: fn(1, () => T.dyn),
  type: fn(1, () => T.type),
  // timestamp / duration accessors
  getFullYear: tsGetter,
  getMonth: tsGetter,
  getDate: tsGetter,
  getDayOfMonth: tsGetter,
  getDayOfWeek: tsGetter,
  getDayOfYear: tsGetter,
  getHours: durOrTsGetter,
  getMinutes: durOrTsGetter,
  getSeconds: durOrTsGetter,
  getMilliseconds: durOrTsGetter,
};

function ordering(): Rule {
  return fn(2, ([a, b]) => {
    if (!a || !b) return undefined;
    if (!is(a, ...ORDERED) || !is(b, ...ORDERED)) return undefined;
    if (isDyn(a) || isDyn(b) || a.k === b.k || (isNumeric(a) && isNumeric(b))) return T.bool;
    return undefined;
  });
}

/** Functions the checker knows (and so the policy language offers). */
export const KNOWN_FUNCTIONS: ReadonlySet<string> = new Set(Object.keys(RULES));

interface Scope {
  vars: Map<string, CelCheckType>;
  parent?: Scope;
}

function lookup(scope: Scope | undefined, name: string): CelCheckType | undefined {
  for (let s = scope; s; s = s.parent) {
    const t = s.vars.get(name);
    if (t) return t;
  }
  return undefined;
}

/** Operator function names as users wrote them, for error messages. */
const OPERATOR_TEXT: Record<string, string> = {
  "_&&_": "&&",
  "_||_": "||",
  "!_": "!",
  "_==_": "==",
  "_!=_": "!=",
  "_<_": "<",
  "_<=_": "<=",
  "_>_": ">",
  "_>=_": ">=",
  "_+_": "+",
  "_-_": "-",
  "_*_": "*",
  "_/_": "/",
  "_%_": "%",
  "-_": "unary -",
  "_[_]": "[]",
  "@in": "in",
  "_?_:_": "?:",
};

export class Checker {
  constructor(private readonly globals: ReadonlyMap<string, CelCheckType>) {}

  check(e: Expr): CelCheckType {
    return this.expr(e, undefined);
  }

  private expr(e: Expr, scope: Scope | undefined): CelCheckType {
    const k = e.exprKind;
    switch (k.case) {
      case "constExpr": {
        const c = k.value.constantKind;
        switch (c.case) {
          case "boolValue":
            return T.bool;
          case "int64Value":
            return T.int;
          case "uint64Value":
            return T.uint;
          case "doubleValue":
            return T.double;
          case "stringValue":
            return T.string;
          case "bytesValue":
            return T.bytes;
          case "nullValue":
            return T.null;
          default:
            throw new CheckError(`unsupported constant ${String(c.case)}`, e.id);
        }
      }
      case "identExpr":
        return this.ident(k.value.name, e.id, scope);
      case "selectExpr": {
        const sel = k.value;
        if (!sel.operand) throw new CheckError("selection without an operand", e.id);
        // A qualified type name such as google.protobuf.Timestamp parses as a selection.
        const qualified = qualifiedName(sel.operand);
        if (qualified !== undefined && !lookup(scope, qualified.split(".")[0] ?? "")) {
          if (
            !this.globals.has(qualified.split(".")[0] ?? "") &&
            TYPE_IDENTS.has(`${qualified}.${sel.field}`)
          )
            return T.type;
        }
        const operand = this.expr(sel.operand, scope);
        const t = this.field(operand, sel.field, e.id);
        return sel.testOnly ? T.bool : t;
      }
      case "callExpr":
        return this.checkCall(e, scope);
      case "listExpr": {
        const v = k.value;
        if (v.optionalIndices.length > 0)
          throw new CheckError("optional list elements are not supported", e.id);
        let elem: CelCheckType | undefined;
        for (const el of v.elements) {
          const t = this.expr(el, scope);
          elem = elem === undefined ? t : join(elem, t);
        }
        return list(elem ?? T.dyn);
      }
      case "structExpr": {
        const v = k.value;
        if (v.messageName !== "")
          throw new CheckError(`message construction (${v.messageName}) is not supported`, e.id);
        let key: CelCheckType | undefined;
        let val: CelCheckType | undefined;
        for (const entry of v.entries) {
          if (entry.optionalEntry) throw new CheckError("optional map entries are not supported", entry.id);
          if (entry.keyKind.case !== "mapKey")
            throw new CheckError("field initialisers need a message", entry.id);
          const kt = this.expr(entry.keyKind.value, scope);
          if (!is(kt, "int", "uint", "bool", "string"))
            throw new CheckError(`map keys must be int, uint, bool or string, not ${typeName(kt)}`, entry.id);
          const vt = entry.value ? this.expr(entry.value, scope) : T.dyn;
          key = key === undefined ? kt : join(key, kt);
          val = val === undefined ? vt : join(val, vt);
        }
        return map(key ?? T.dyn, val ?? T.dyn);
      }
      case "comprehensionExpr": {
        const c = k.value;
        if (!c.iterRange || !c.accuInit || !c.loopCondition || !c.loopStep || !c.result)
          throw new CheckError("incomplete comprehension", e.id);
        const range = this.expr(c.iterRange, scope);
        let iter: CelCheckType;
        let iter2: CelCheckType | undefined;
        if (range.k === "list") {
          iter = c.iterVar2 ? T.int : range.elem;
          iter2 = range.elem;
        } else if (range.k === "map" || range.k === "record") {
          const m = asMapLike(range) as Extract<CelCheckType, { k: "map" }>;
          iter = m.key;
          iter2 = m.val;
        } else if (range.k === "dyn") {
          iter = T.dyn;
          iter2 = T.dyn;
        } else {
          throw new CheckError(
            `expression of type ${typeName(range)} cannot be the range of a comprehension`,
            c.iterRange.id,
          );
        }
        const accu = this.expr(c.accuInit, scope);
        const inner: Scope = { vars: new Map([[c.accuVar, accu]]), ...(scope ? { parent: scope } : {}) };
        const loop: Scope = { vars: new Map([[c.iterVar, iter]]), parent: inner };
        if (c.iterVar2) loop.vars.set(c.iterVar2, iter2 ?? T.dyn);
        const cond = this.expr(c.loopCondition, loop);
        if (!is(cond, "bool"))
          throw new CheckError("comprehension loop condition is not bool", c.loopCondition.id);
        const step = this.expr(c.loopStep, loop);
        // The accumulator's type is its initial value's, widened by the step (e.g. [] + [x]).
        inner.vars.set(c.accuVar, join(accu, step));
        return this.expr(c.result, inner);
      }
      default:
        throw new CheckError(`unsupported expression (${String(k.case)})`, e.id);
    }
  }

  private ident(name: string, id: bigint, scope: Scope | undefined): CelCheckType {
    const local = lookup(scope, name);
    if (local) return local;
    const g = this.globals.get(name.startsWith(".") ? name.slice(1) : name);
    if (g) return g;
    if (TYPE_IDENTS.has(name)) return T.type;
    const known = [...this.globals.keys()].sort().join(", ");
    throw new CheckError(`undeclared reference to '${name}' (variables: ${known})`, id);
  }

  private field(t: CelCheckType, name: string, id: bigint): CelCheckType {
    switch (t.k) {
      case "dyn":
        return T.dyn;
      case "record": {
        const f = t.fields[name];
        if (f) return f;
        const names = Object.keys(t.fields);
        throw new CheckError(
          `undefined field '${name}' of ${t.name} (fields: ${names.length > 0 ? names.join(", ") : "none"})`,
          id,
        );
      }
      case "map":
        if (!is(t.key, "string")) throw new CheckError(`cannot select field '${name}' of ${typeName(t)}`, id);
        return t.val;
      default:
        throw new CheckError(`type ${typeName(t)} has no field '${name}'`, id);
    }
  }

  /** Calls are checked with the scope of their position (comprehension variables). */
  private checkCall(e: Expr, scope: Scope | undefined): CelCheckType {
    if (e.exprKind.case !== "callExpr") throw new CheckError("not a call", e.id);
    const c = e.exprKind.value;
    // `strings.quote(x)` parses as a method on an identifier: a namespaced function.
    const t = c.target?.exprKind;
    if (t?.case === "identExpr" && !lookup(scope, t.value.name) && !this.globals.has(t.value.name)) {
      const rule = RULES[`${t.value.name}.${c.function}`];
      if (rule) {
        const r = rule(
          undefined,
          c.args.map((a) => this.expr(a, scope)),
        );
        if (r) return r;
      }
    }
    const recv = c.target ? this.expr(c.target, scope) : undefined;
    const args = c.args.map((a) => this.expr(a, scope));
    const rule = RULES[c.function];
    if (!rule) throw new CheckError(`undeclared reference to function '${c.function}'`, e.id);
    const result = rule(recv, args);
    if (result) return result;
    const shown = OPERATOR_TEXT[c.function] ?? c.function;
    const sig = `${recv ? `${typeName(recv)}.` : ""}(${args.map(typeName).join(", ")})`;
    throw new CheckError(`no matching overload for '${shown}' applied to ${sig}`, e.id);
  }
}

function qualifiedName(e: Expr): string | undefined {
  if (e.exprKind.case === "identExpr") return e.exprKind.value.name;
  if (e.exprKind.case === "selectExpr" && e.exprKind.value.operand && !e.exprKind.value.testOnly) {
    const q = qualifiedName(e.exprKind.value.operand);
    return q === undefined ? undefined : `${q}.${e.exprKind.value.field}`;
  }
  return undefined;
}
