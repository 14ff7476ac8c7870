// kubelet's image matching (pkg/credentialprovider URLsMatch): a pattern and an image are
// read as scheme-less URLs; the host must have the same number of dot-separated labels,
// each label matched by a shell glob (Go's filepath.Match: `*`, `?`, `[a-z]`, `[^x]`, `\`
// escapes), the port must be equal (absent on both counts as equal), and the pattern's
// path, when it has one, must be a prefix of the image's path.
import { errorMessage } from "../../../base/errors.js";
import { EngineError } from "../../errors.js";

interface SchemelessUrl {
  labels: string[];
  port: string;
  path: string;
}

function parseSchemeless(s: string): SchemelessUrl {
  const noScheme = s.replace(/^[a-z][a-z0-9+.-]*:\/\//i, "");
  const slash = noScheme.indexOf("/");
  const hostPort = slash >= 0 ? noScheme.slice(0, slash) : noScheme;
  const path = slash >= 0 ? noScheme.slice(slash) : "";
  let host = hostPort;
  let port = "";
  const colon = hostPort.lastIndexOf(":");
  if (colon >= 0 && !hostPort.endsWith("]")) {
    host = hostPort.slice(0, colon);
    port = hostPort.slice(colon + 1);
  }
  return { labels: host.toLowerCase().split("."), port, path };
}

/** Go filepath.Match for one label (no separators inside a label). Throws on a bad pattern. */
export function globToRegExp(glob: string): RegExp {
  let re = "^";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "\\") {
      i++;
      if (i >= glob.length) throw new Error("trailing backslash");
      re += escapeRe(glob[i] as string);
    } else if (c === "[") {
      const end = glob.indexOf("]", i + 1);
      if (end < 0) throw new Error("unterminated character class");
      let body = glob.slice(i + 1, end);
      let neg = false;
      if (body.startsWith("^")) {
        neg = true;
        body = body.slice(1);
      }
      if (body === "") throw new Error("empty character class");
      re += `[${neg ? "^" : ""}${body.replace(/[\]\\]/g, (m) => `\\${m}`)}]`;
      i = end;
    } else re += escapeRe(c);
  }
  return new RegExp(`${re}$`);
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/-]/g, (m) => `\\${m}`);
}

/** Validates a matchImages entry; returns the reason it is invalid, or undefined. */
export function matchImageProblem(pattern: string): string | undefined {
  if (pattern.trim() === "") return "is empty";
  const u = parseSchemeless(pattern);
  if (u.labels.some((l) => l === "")) return "has an empty host label";
  if (u.port !== "" && !/^[0-9]+$/.test(u.port)) return "has an invalid port";
  for (const l of u.labels) {
    try {
      globToRegExp(l);
    } catch (e) {
      return `has an invalid glob in ${JSON.stringify(l)}: ${errorMessage(e)}`;
    }
  }
  return undefined;
}

/** kubelet's URLsMatchStr(pattern, image). */
export function imageMatches(pattern: string, image: string): boolean {
  const g = parseSchemeless(pattern);
  const t = parseSchemeless(image);
  if (g.port !== t.port || g.labels.length !== t.labels.length) return false;
  for (let i = 0; i < g.labels.length; i++) {
    let re: RegExp;
    try {
      re = globToRegExp(g.labels[i] as string);
    } catch (e) {
      throw new EngineError("INVALID_CONFIG", `image pattern ${JSON.stringify(pattern)} is invalid`, {
        cause: e,
      });
    }
    if (!re.test(t.labels[i] as string)) return false;
  }
  return t.path.startsWith(g.path);
}
