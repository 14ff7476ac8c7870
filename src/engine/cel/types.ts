// The static types our CEL checker reasons with. @bufbuild/cel 0.6 evaluates CEL but its
// checker only types constants and identifiers, so policy validation type-checks with this
// small lattice instead: concrete scalars, lists, maps, `dyn` (anything, e.g. a JSON
// predicate) and records — objects whose fields are known (`image`, `attestations`), so a
// misspelt field is an error when the policy is validated, not a denial at run time.

export type CelCheckType =
  | { k: "dyn" }
  | { k: "bool" }
  | { k: "int" }
  | { k: "uint" }
  | { k: "double" }
  | { k: "string" }
  | { k: "bytes" }
  | { k: "null" }
  | { k: "timestamp" }
  | { k: "duration" }
  | { k: "type" }
  | { k: "list"; elem: CelCheckType }
  | { k: "map"; key: CelCheckType; val: CelCheckType }
  | { k: "record"; name: string; fields: Readonly<Record<string, CelCheckType>> };

export const T = {
  dyn: { k: "dyn" },
  bool: { k: "bool" },
  int: { k: "int" },
  uint: { k: "uint" },
  double: { k: "double" },
  string: { k: "string" },
  bytes: { k: "bytes" },
  null: { k: "null" },
  timestamp: { k: "timestamp" },
  duration: { k: "duration" },
  type: { k: "type" },
} as const satisfies Record<string, CelCheckType>;

export function list(elem: CelCheckType): CelCheckType {
  return { k: "list", elem };
}

export function map(key: CelCheckType, val: CelCheckType): CelCheckType {
  return { k: "map", key, val };
}

export function record(name: string, fields: Record<string, CelCheckType>): CelCheckType {
  return { k: "record", name, fields };
}

export function typeName(t: CelCheckType): string {
  switch (t.k) {
    case "list":
      return `list(${typeName(t.elem)})`;
    case "map":
      return `map(${typeName(t.key)}, ${typeName(t.val)})`;
    case "record":
      return t.name;
    case "timestamp":
      return "google.protobuf.Timestamp";
    case "duration":
      return "google.protobuf.Duration";
    case "null":
      return "null_type";
    default:
      return t.k;
  }
}

/** A record behaves like map(string, dyn) wherever a map is expected. */
export function asMapLike(t: CelCheckType): CelCheckType {
  return t.k === "record" ? map(T.string, T.dyn) : t;
}

/** Could a value of static type `a` be used where `b` is expected (either side dyn matches). */
export function assignable(a: CelCheckType, b: CelCheckType): boolean {
  if (a.k === "dyn" || b.k === "dyn") return true;
  const x = asMapLike(a);
  const y = asMapLike(b);
  if (x.k !== y.k) return false;
  if (x.k === "list" && y.k === "list") return assignable(x.elem, y.elem);
  if (x.k === "map" && y.k === "map") return assignable(x.key, y.key) && assignable(x.val, y.val);
  return true;
}

/** The least common type of two branches / list elements (dyn when they differ). */
export function join(a: CelCheckType, b: CelCheckType): CelCheckType {
  if (a.k === "dyn" || b.k === "dyn") return T.dyn;
  if (a.k === "null") return b;
  if (b.k === "null") return a;
  if (a.k === "list" && b.k === "list") return list(join(a.elem, b.elem));
  if (a.k === "map" && b.k === "map") return map(join(a.key, b.key), join(a.val, b.val));
  if (a.k === "record" && b.k === "record" && a.name === b.name) return a;
  return a.k === b.k && a.k !== "record" ? a : T.dyn;
}

export function isNumeric(t: CelCheckType): boolean {
  return t.k === "int" || t.k === "uint" || t.k === "double";
}
