// A real OCI registry (Debian's docker-registry 2.8.3) on a loopback port, private storage.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { type Daemon, freePort, startDaemon, waitFor } from "./procs.js";
import { tools } from "./tools.js";

export interface LocalRegistry {
  /** host:port, e.g. 127.0.0.1:41234 */
  host: string;
  url: string;
  dir: string;
  daemon: Daemon;
  stop(): Promise<void>;
}

export async function startRegistry(baseDir?: string): Promise<LocalRegistry> {
  const dir = baseDir ?? mkdtempSync(path.join(os.tmpdir(), "tollgate-registry-"));
  mkdirSync(path.join(dir, "data"), { recursive: true });
  const port = await freePort();
  const config = path.join(dir, "config.yml");
  writeFileSync(
    config,
    [
      "version: 0.1",
      "log:",
      "  level: warn",
      "storage:",
      "  filesystem:",
      `    rootdirectory: ${path.join(dir, "data")}`,
      "  delete:",
      "    enabled: true",
      "http:",
      `  addr: 127.0.0.1:${port}`,
      "",
    ].join("\n"),
  );
  const daemon = startDaemon("registry", tools.registry, ["serve", config], { logDir: dir });
  const url = `http://127.0.0.1:${port}`;
  await waitFor("registry /v2/", async () => (await fetch(`${url}/v2/`)).status === 200);
  const stop = async () => {
    await daemon.stop();
    // A directory we made is ours to remove; a caller's baseDir is the caller's.
    if (baseDir === undefined) rmSync(dir, { recursive: true, force: true });
  };
  return { host: `127.0.0.1:${port}`, url, dir, daemon, stop };
}
