// The one HTTP/1.1 exchange the pull verifier makes with the agent: a request written by
// hand and a response read from the raw bytes. node:http and its parser cost every pull
// ~4 ms of start-up (bench: pull verifier start-up), for one request on a local socket.
// The reader still follows HTTP/1.1 (RFC 9112): Content-Length, chunked transfer coding,
// or a body that ends with the connection; interim 1xx responses are skipped. Anything else
// is a typed error, never a guess.

export type HttpResponse = { status: number; headers: Map<string, string>; body: Buffer };

export type ReadResult =
  | { kind: "complete"; response: HttpResponse }
  /** More bytes are needed (only while the connection is still open). */
  | { kind: "incomplete" }
  | { kind: "malformed"; message: string };

/** Header sections larger than this are refused (the agent sends a few short headers). */
export const MAX_HEADER_BYTES = 16 * 1024;

const CRLF = Buffer.from("\r\n");
const HEADER_END = Buffer.from("\r\n\r\n");
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: [^\r\n]*)?$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** A POST with a JSON body; `Connection: close`, so the response ends with the connection. */
export function renderPost(path: string, body: string): string {
  return (
    `POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}

/**
 * Reads one response from `buf`, everything received so far. `ended`: the peer closed the
 * connection, so nothing more will come and a short response is malformed, not incomplete.
 */
export function readResponse(buf: Buffer, ended: boolean): ReadResult {
  let at = 0;
  for (;;) {
    const end = buf.indexOf(HEADER_END, at);
    if (end < 0) {
      if (buf.length - at > MAX_HEADER_BYTES) return malformed("header section too large");
      return ended ? malformed("connection closed before the end of the headers") : { kind: "incomplete" };
    }
    if (end - at > MAX_HEADER_BYTES) return malformed("header section too large");
    const head = parseHead(buf.subarray(at, end).toString("latin1"));
    if ("message" in head) return malformed(head.message);
    at = end + HEADER_END.length;
    // 1xx responses are interim: the final response follows on the same connection.
    if (head.status >= 100 && head.status < 200) continue;
    const body = readBody(buf.subarray(at), head.headers, ended);
    if (body.kind !== "complete") return body;
    return { kind: "complete", response: { status: head.status, headers: head.headers, body: body.body } };
  }
}

function parseHead(text: string): { status: number; headers: Map<string, string> } | { message: string } {
  const lines = text.split("\r\n");
  const m = STATUS_LINE.exec(lines[0] ?? "");
  if (!m) return { message: `malformed status line ${JSON.stringify((lines[0] ?? "").slice(0, 80))}` };
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon) : "";
    if (!TOKEN.test(name)) return { message: `malformed header line ${JSON.stringify(line.slice(0, 80))}` };
    const key = name.toLowerCase();
    const value = line.slice(colon + 1).trim();
    const prev = headers.get(key);
    headers.set(key, prev === undefined ? value : `${prev}, ${value}`);
  }
  return { status: Number(m[1]), headers };
}

type BodyResult = { kind: "complete"; body: Buffer } | Exclude<ReadResult, { kind: "complete" }>;

function readBody(rest: Buffer, headers: Map<string, string>, ended: boolean): BodyResult {
  const te = headers.get("transfer-encoding");
  if (te !== undefined) {
    if (te.toLowerCase() !== "chunked")
      return malformed(`unsupported transfer-encoding ${JSON.stringify(te)}`);
    return readChunked(rest, ended);
  }
  const cl = headers.get("content-length");
  if (cl !== undefined) {
    // Repeated identical values are allowed (RFC 9110 §8.6); differing ones are not.
    const values = new Set(cl.split(",").map((v) => v.trim()));
    const [only] = values;
    if (values.size !== 1 || only === undefined || !/^\d{1,15}$/.test(only))
      return malformed(`malformed content-length ${JSON.stringify(cl.slice(0, 40))}`);
    const n = Number(only);
    if (rest.length >= n) return { kind: "complete", body: rest.subarray(0, n) };
    return ended
      ? malformed(`connection closed after ${rest.length} of ${n} body bytes`)
      : { kind: "incomplete" };
  }
  // No framing: the body is whatever arrives until the connection closes.
  return ended ? { kind: "complete", body: rest } : { kind: "incomplete" };
}

function readChunked(rest: Buffer, ended: boolean): BodyResult {
  const parts: Buffer[] = [];
  let at = 0;
  const short = (): BodyResult =>
    ended ? malformed("connection closed inside a chunked body") : { kind: "incomplete" };
  for (;;) {
    const eol = rest.indexOf(CRLF, at);
    if (eol < 0) return rest.length - at > 1024 ? malformed("chunk size line too long") : short();
    const sizeText = rest.subarray(at, eol).toString("latin1").split(";")[0]?.trim() ?? "";
    if (!/^[0-9A-Fa-f]{1,8}$/.test(sizeText))
      return malformed(`malformed chunk size ${JSON.stringify(sizeText.slice(0, 20))}`);
    const size = Number.parseInt(sizeText, 16);
    at = eol + CRLF.length;
    if (size === 0) {
      // The last chunk; trailers, if any, are not used.
      return { kind: "complete", body: Buffer.concat(parts) };
    }
    if (rest.length < at + size + CRLF.length) return short();
    if (!rest.subarray(at + size, at + size + CRLF.length).equals(CRLF))
      return malformed("chunk data not followed by CRLF");
    parts.push(rest.subarray(at, at + size));
    at += size + CRLF.length;
  }
}

function malformed(message: string): { kind: "malformed"; message: string } {
  return { kind: "malformed", message };
}
