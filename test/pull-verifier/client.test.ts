// The verifier's own HTTP/1.1 exchange with the agent: the response reader on its own, and
// askAgent against real sockets, a real node:http server and raw servers that misbehave.
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { askAgent, MAX_RESPONSE_BYTES } from "../../src/pull-verifier/client.js";
import { MAX_HEADER_BYTES, readResponse, renderPost } from "../../src/pull-verifier/http1.js";

const b = (s: string) => Buffer.from(s, "latin1");
const REQ = { name: "example.com/app:1", digest: `sha256:${"a".repeat(64)}` };
const OK = JSON.stringify({ allowed: true, message: "tollgate: allowed", kind: "verified" });

describe("readResponse", () => {
  it("reads a Content-Length body and ignores bytes after it", () => {
    const r = readResponse(b(`HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhelloEXTRA`), false);
    expect(r).toMatchObject({ kind: "complete", response: { status: 200 } });
    if (r.kind !== "complete") throw new Error("unreachable");
    expect(r.response.body.toString()).toBe("hello");
    expect(r.response.headers.get("x-a")).toBe("1");
  });

  it("waits for more bytes while open, and calls a short body malformed once closed", () => {
    const partial = b("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello");
    expect(readResponse(partial, false)).toEqual({ kind: "incomplete" });
    expect(readResponse(partial, true)).toEqual({
      kind: "malformed",
      message: "connection closed after 5 of 10 body bytes",
    });
    expect(readResponse(b("HTTP/1.1 200 OK\r\nContent-Le"), false)).toEqual({ kind: "incomplete" });
    expect(readResponse(b("HTTP/1.1 200 OK\r\nContent-Le"), true)).toMatchObject({ kind: "malformed" });
    expect(readResponse(b(""), true)).toMatchObject({
      kind: "malformed",
      message: "connection closed before the end of the headers",
    });
  });

  it("decodes chunked bodies, split anywhere", () => {
    const whole =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";
    for (let cut = 0; cut < whole.length; cut++) {
      const r = readResponse(b(whole.slice(0, cut)), false);
      if (r.kind === "complete") {
        // Complete only once the last chunk's size line is in.
        expect(cut).toBeGreaterThanOrEqual(whole.indexOf("0\r\n") + 3);
        expect(r.response.body.toString()).toBe("hello, world");
      } else expect(r).toEqual({ kind: "incomplete" });
    }
    const r = readResponse(b(whole), true);
    expect(r.kind === "complete" && r.response.body.toString()).toBe("hello, world");
  });

  it("reads a body without framing to the end of the connection", () => {
    const raw = b("HTTP/1.0 200 OK\r\n\r\n{}");
    expect(readResponse(raw, false)).toEqual({ kind: "incomplete" });
    const r = readResponse(raw, true);
    expect(r.kind === "complete" && r.response.body.toString()).toBe("{}");
  });

  it("skips interim 1xx responses", () => {
    const r = readResponse(
      b("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno"),
      false,
    );
    expect(r).toMatchObject({ kind: "complete", response: { status: 403 } });
  });

  it.each([
    ["garbage status line", "SSH-2.0-OpenSSH\r\n\r\n", /malformed status line/],
    ["HTTP/2 status line", "HTTP/2 200\r\n\r\n", /malformed status line/],
    ["status without three digits", "HTTP/1.1 20 OK\r\n\r\n", /malformed status line/],
    ["header without a colon", "HTTP/1.1 200 OK\r\nnonsense\r\n\r\n", /malformed header line/],
    ["header name with a space", "HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n", /malformed header line/],
    ["negative content-length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", /malformed content-length/],
    [
      "differing content-lengths",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
      /malformed content-length/,
    ],
    [
      "unknown transfer coding",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
      /unsupported transfer-encoding/,
    ],
    ["bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", /malformed chunk size/],
    [
      "chunk without its CRLF",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n",
      /not followed by CRLF/,
    ],
  ])("refuses %s", (_what, raw, message) => {
    const r = readResponse(b(raw), false);
    expect(r.kind).toBe("malformed");
    expect(r.kind === "malformed" && r.message).toMatch(message);
  });

  it("accepts repeated identical content-lengths", () => {
    const r = readResponse(b("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab"), false);
    expect(r.kind === "complete" && r.response.body.toString()).toBe("ab");
  });

  it("refuses an endless header section before it ends", () => {
    const r = readResponse(b(`HTTP/1.1 200 OK\r\nX: ${"a".repeat(MAX_HEADER_BYTES)}`), false);
    expect(r).toEqual({ kind: "malformed", message: "header section too large" });
  });

  it("renders the request with its byte length", () => {
    const req = renderPost("/v1/pull-verdict", '{"n":"é"}');
    expect(req).toContain("Content-Length: 10\r\n");
    expect(req.endsWith('\r\n\r\n{"n":"é"}')).toBe(true);
  });
});

describe("askAgent", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-client-"));
  let n = 0;
  const servers: net.Server[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    rmSync(dir, { recursive: true, force: true });
  });
  const listen = async (s: net.Server): Promise<string> => {
    const sock = path.join(dir, `s${n++}.sock`);
    servers.push(s);
    await new Promise<void>((r) => s.listen(sock, r));
    return sock;
  };
  /** A raw server that reads the request, then runs `reply` on the socket. */
  const raw = (reply: (s: net.Socket, request: string) => void) =>
    listen(
      net.createServer((s) => {
        let got = "";
        s.on("data", (d) => {
          got += d.toString("latin1");
          const end = got.indexOf("\r\n\r\n");
          const len = Number(/content-length: (\d+)/i.exec(got)?.[1] ?? 0);
          if (end >= 0 && got.length >= end + 4 + len) reply(s, got);
        });
        s.on("error", () => {});
      }),
    );

  it("asks a real node:http server and gets its answer", async () => {
    let seen: unknown;
    const sock = await listen(
      http.createServer((req, res) => {
        let body = "";
        req.on("data", (d) => (body += d));
        req.on("end", () => {
          seen = {
            method: req.method,
            url: req.url,
            type: req.headers["content-type"],
            body: JSON.parse(body),
          };
          res.end(OK);
        });
      }),
    );
    const a = await askAgent(sock, REQ, 5000);
    expect(a).toEqual({ kind: "answer", response: JSON.parse(OK) });
    expect(seen).toEqual({ method: "POST", url: "/v1/pull-verdict", type: "application/json", body: REQ });
  });

  it("reads a chunked answer sent in pieces", async () => {
    const sock = await listen(
      http.createServer((req, res) => {
        req.resume();
        req.on("end", () => {
          res.write(OK.slice(0, 10));
          setTimeout(() => res.end(OK.slice(10)), 20);
        });
      }),
    );
    expect(await askAgent(sock, REQ, 5000)).toEqual({ kind: "answer", response: JSON.parse(OK) });
  });

  it("reads an answer dribbled a byte at a time", async () => {
    const raw_ = `HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(OK)}\r\n\r\n${OK}`;
    const sock = await raw((s) => {
      let i = 0;
      const next = () => {
        if (s.destroyed) return;
        if (i === raw_.length) return s.end();
        s.write(raw_[i++]!);
        setImmediate(next);
      };
      next();
    });
    expect(await askAgent(sock, REQ, 5000)).toEqual({ kind: "answer", response: JSON.parse(OK) });
  });

  it("nobody listening is unreachable (then verify in-process)", async () => {
    const a = await askAgent(path.join(dir, "missing.sock"), REQ, 5000);
    expect(a).toEqual({ kind: "unreachable", message: `${path.join(dir, "missing.sock")}: ENOENT` });
  });

  it("an error status is a failure carrying the agent's text", async () => {
    const sock = await raw((s) =>
      s.end("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 9\r\n\r\nnot ready"),
    );
    expect(await askAgent(sock, REQ, 5000)).toEqual({
      kind: "failed",
      message: "agent answered HTTP 503: not ready",
    });
  });

  it.each([
    ["garbage", "hello\r\n\r\n", 'agent response: malformed status line "hello"'],
    [
      "a truncated body",
      "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}",
      "agent response: connection closed after 2 of 100 body bytes",
    ],
    ["a close before any byte", "", "agent response: connection closed before the end of the headers"],
    [
      "JSON of the wrong shape",
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
      "agent answered with malformed JSON",
    ],
    ["not JSON", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nnop", "agent answered with malformed JSON"],
  ])("%s is a failure with a clear message", async (_what, reply, message) => {
    const sock = await raw((s) => s.end(reply));
    expect(await askAgent(sock, REQ, 5000)).toEqual({ kind: "failed", message });
  });

  it("an oversized answer is cut off", async () => {
    const sock = await raw((s) => {
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${MAX_RESPONSE_BYTES * 2}\r\n\r\n`);
      s.write(Buffer.alloc(MAX_RESPONSE_BYTES * 2, 0x20));
    });
    expect(await askAgent(sock, REQ, 5000)).toEqual({ kind: "failed", message: "agent response too large" });
  });

  it("an agent that accepts and never answers fails at the deadline", async () => {
    const sock = await raw(() => {});
    const t0 = Date.now();
    expect(await askAgent(sock, REQ, 300)).toEqual({
      kind: "failed",
      message: "agent did not answer within 300 ms",
    });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
  });
});
