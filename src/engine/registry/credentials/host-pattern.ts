// Host patterns that choose a credential provider for a registry ("registry.example.com",
// "*.azurecr.io", "127.0.0.1:5000"). A `*` stands for exactly one whole DNS label; a port,
// when given, must match exactly and a pattern without one matches only hosts without one
// (kubelet's rule). With first-match-wins, the only orders that make sense are
// "specific before general", so a rule that an earlier one entirely hides, and two rules
// that only partly overlap (neither contains the other), are configuration errors.
import { EngineError } from "../../errors.js";

export interface HostPattern {
  text: string;
  labels: string[];
  port: string;
}

const LABEL = /^(\*|[a-z0-9]([a-z0-9-]*[a-z0-9])?)$/;

/** Parses a host pattern; throws INVALID_CONFIG with the reason. */
export function parseHostPattern(text: string): HostPattern {
  const bad = (why: string) =>
    new EngineError("INVALID_CONFIG", `host pattern ${JSON.stringify(text)} ${why}`);
  if (typeof text !== "string" || text.trim() === "") throw bad("is empty");
  const t = text.trim().toLowerCase();
  if (/^[a-z][a-z0-9+.-]*:\/\//.test(t)) throw bad("must not have a scheme (write the host only)");
  if (t.includes("/")) throw bad("must not have a path (providers are chosen per registry host)");
  let host = t;
  let port = "";
  const colon = t.lastIndexOf(":");
  if (colon >= 0) {
    host = t.slice(0, colon);
    port = t.slice(colon + 1);
    if (!/^[0-9]{1,5}$/.test(port) || Number(port) > 65535) throw bad("has an invalid port");
  }
  const labels = host.split(".");
  for (const l of labels) {
    if (l === "") throw bad("has an empty label");
    if (l.includes("*") && l !== "*") throw bad("uses '*' inside a label (a '*' must be a whole label)");
    if (!LABEL.test(l)) throw bad(`has an invalid label ${JSON.stringify(l)}`);
  }
  if (labels.every((l) => l === "*") && labels.length > 1) {
    // "*.*" would match every two-label host: almost certainly not meant, and it hides
    // every later rule of that shape.
    throw bad("is only wildcards (name the domain, e.g. *.example.com)");
  }
  return { text: t, labels, port };
}

function splitHost(host: string): { labels: string[]; port: string } {
  const h = host.toLowerCase();
  const colon = h.lastIndexOf(":");
  if (colon >= 0 && !h.includes("]"))
    return { labels: h.slice(0, colon).split("."), port: h.slice(colon + 1) };
  return { labels: h.split("."), port: "" };
}

export function hostMatches(p: HostPattern, host: string): boolean {
  const { labels, port } = splitHost(host);
  if (port !== p.port || labels.length !== p.labels.length) return false;
  return p.labels.every((l, i) => l === "*" || l === labels[i]);
}

/** True when every host `b` matches is also matched by `a`. */
export function covers(a: HostPattern, b: HostPattern): boolean {
  if (a.port !== b.port || a.labels.length !== b.labels.length) return false;
  return a.labels.every((l, i) => l === "*" || l === b.labels[i]);
}

/** True when some host matches both. */
export function overlaps(a: HostPattern, b: HostPattern): boolean {
  if (a.port !== b.port || a.labels.length !== b.labels.length) return false;
  return a.labels.every((l, i) => l === "*" || b.labels[i] === "*" || l === b.labels[i]);
}

export interface PatternRule {
  /** Who owns the pattern, for the error text ("provider acr"). */
  owner: string;
  pattern: HostPattern;
}

/**
 * The ordering problems of a rule list (first match wins): duplicates, rules hidden by an
 * earlier one, and partial overlaps. Empty when the order is unambiguous.
 */
export function orderingProblems(rules: readonly PatternRule[]): string[] {
  const out: string[] = [];
  for (let j = 0; j < rules.length; j++) {
    const b = rules[j]!;
    for (let i = 0; i < j; i++) {
      const a = rules[i]!;
      if (!overlaps(a.pattern, b.pattern)) continue;
      if (a.pattern.text === b.pattern.text) {
        out.push(`${b.owner}: host pattern "${b.pattern.text}" is already used by ${a.owner}`);
      } else if (covers(a.pattern, b.pattern)) {
        out.push(
          `${b.owner}: host pattern "${b.pattern.text}" can never match: ${a.owner}'s "${a.pattern.text}" comes first and covers it (put the more specific rule first)`,
        );
      } else if (!covers(b.pattern, a.pattern)) {
        out.push(
          `${b.owner}: host pattern "${b.pattern.text}" partly overlaps ${a.owner}'s "${a.pattern.text}" (a host can match both; add an exact rule for it first or narrow one pattern)`,
        );
      }
    }
  }
  return out;
}
