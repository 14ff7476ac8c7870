// Registry authentication: WWW-Authenticate parsing (RFC 7235 challenges), Basic, and the
// distribution token flow (GET with Basic credentials, or POST OAuth2 refresh_token for an
// identitytoken). Tokens are cached per (realm, service, scope) until they expire.
import { EngineError } from "../errors.js";

export interface Challenge {
  scheme: string; // lower-case: "bearer", "basic"
  params: Record<string, string>;
}

const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;

/**
 * Parses a WWW-Authenticate header value into challenges. Throws REGISTRY_AUTH on syntax
 * it cannot make sense of (unterminated quotes, params without a scheme).
 */
export function parseWwwAuthenticate(value: string): Challenge[] {
  const s = value;
  let i = 0;
  const out: Challenge[] = [];
  const bad = (why: string) =>
    new EngineError(
      "REGISTRY_AUTH",
      `malformed WWW-Authenticate header (${why}): ${JSON.stringify(value.slice(0, 200))}`,
    );
  const skipWs = () => {
    while (i < s.length && (s[i] === " " || s[i] === "\t")) i++;
  };
  const readToken = () => {
    const m = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+/.exec(s.slice(i));
    if (!m) return "";
    i += m[0].length;
    return m[0];
  };
  if (s.length > 8192) throw bad("too long");
  while (i < s.length) {
    skipWs();
    while (s[i] === ",") {
      i++;
      skipWs();
    }
    if (i >= s.length) break;
    const scheme = readToken();
    if (!scheme) throw bad("expected an auth scheme");
    const ch: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(ch);
    skipWs();
    // params: name=value or name="quoted", comma separated, until the next scheme.
    for (;;) {
      const save = i;
      skipWs();
      const name = readToken();
      if (!name) {
        i = save;
        break;
      }
      skipWs();
      if (s[i] !== "=") {
        // A new scheme (or a token68 value) follows.
        if (Object.keys(ch.params).length === 0 && TOKEN68.test(name)) {
          ch.params[""] = name;
          skipWs();
          if (s[i] === ",") i++;
          continue;
        }
        i = save;
        break;
      }
      i++;
      skipWs();
      let val: string;
      if (s[i] === '"') {
        i++;
        let v = "";
        let closed = false;
        while (i < s.length) {
          const c = s[i] as string;
          if (c === "\\" && i + 1 < s.length) {
            v += s[i + 1];
            i += 2;
            continue;
          }
          if (c === '"') {
            closed = true;
            i++;
            break;
          }
          v += c;
          i++;
        }
        if (!closed) throw bad("unterminated quoted string");
        val = v;
      } else {
        val = readToken();
      }
      ch.params[name.toLowerCase()] = val;
      skipWs();
      if (s[i] === ",") {
        i++;
        continue;
      }
      if (i < s.length && s[i] !== ",") {
      }
    }
  }
  if (out.length === 0) throw bad("no challenge");
  return out;
}

export interface CachedToken {
  token: string;
  expiresAt: number;
}

/** Token cache keyed by realm|service|scope. */
export class TokenCache {
  private readonly tokens = new Map<string, CachedToken>();
  constructor(
    private readonly now: () => number,
    private readonly maxEntries = 1024,
  ) {}

  static key(realm: string, service: string, scope: string): string {
    return `${realm}|${service}|${scope}`;
  }

  get(key: string): string | undefined {
    const t = this.tokens.get(key);
    if (!t) return undefined;
    // Refresh a little early so a token never expires in flight.
    if (this.now() >= t.expiresAt - 5_000) {
      this.tokens.delete(key);
      return undefined;
    }
    return t.token;
  }

  set(key: string, token: string, expiresAt: number): void {
    if (this.tokens.size >= this.maxEntries) {
      const oldest = this.tokens.keys().next().value;
      if (oldest !== undefined) this.tokens.delete(oldest);
    }
    this.tokens.set(key, { token, expiresAt });
  }

  delete(key: string): void {
    this.tokens.delete(key);
  }
}

/** Validates and extracts a token response body (distribution token spec). */
export function parseTokenResponse(body: Buffer, now: number, realm: string): CachedToken {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString("utf8"));
  } catch (e) {
    throw new EngineError("REGISTRY_AUTH", `token endpoint ${realm} returned invalid JSON`, { cause: e });
  }
  if (typeof doc !== "object" || doc === null)
    throw new EngineError("REGISTRY_AUTH", `token endpoint ${realm} returned no object`);
  const d = doc as Record<string, unknown>;
  const token =
    typeof d.token === "string" && d.token
      ? d.token
      : typeof d.access_token === "string"
        ? d.access_token
        : "";
  if (!token) throw new EngineError("REGISTRY_AUTH", `token endpoint ${realm} returned no token`);
  // Spec: default and minimum lifetime 60 s.
  let expiresIn = typeof d.expires_in === "number" && Number.isFinite(d.expires_in) ? d.expires_in : 60;
  if (expiresIn < 60) expiresIn = 60;
  let issued = now;
  if (typeof d.issued_at === "string") {
    const t = Date.parse(d.issued_at);
    // Use the server's issue time only if it is sane (not in our future).
    if (Number.isFinite(t) && t <= now) issued = t;
  }
  return { token, expiresAt: issued + expiresIn * 1000 };
}
