// The local API's unix socket comes back by itself when its file is removed.
import { mkdtempSync, rmSync, statSync, unlinkSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { UnixApiListener } from "../../src/agent/api.js";
import { waitFor } from "../support/procs.js";

function get(socketPath: string, p: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath, path: p, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
      .on("error", reject);
  });
}

describe("UnixApiListener", () => {
  let dir: string | undefined;
  let l: UnixApiListener | undefined;
  afterEach(async () => {
    await l?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("re-binds a removed socket (0600) and keeps answering", async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-listener-"));
    const sock = path.join(dir, "agent.sock");
    const warnings: string[] = [];
    const log = { warn: (_o: object, m?: string) => warnings.push(m ?? ""), info() {} };
    l = new UnixApiListener((_req, res) => res.end("ok"), sock, log, 50);
    await l.start();
    expect(await get(sock, "/healthz")).toBe(200);

    unlinkSync(sock);
    await waitFor("socket re-bound", async () => (await get(sock, "/healthz")) === 200, 10_000);
    expect(statSync(sock).mode & 0o777).toBe(0o600);
    expect(warnings.some((w) => /removed or replaced/.test(w))).toBe(true);
  });
});
