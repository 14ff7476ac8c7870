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

/** docker-registry's config.yml: filesystem storage with deletes, loopback `port`, extra lines appended. */
export function registryConfigYaml(dataDir: string, port: number, extra: string[] = []): string {
  return [
    "version: 0.1",
    "log:",
    "  level: warn",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${dataDir}`,
    "  delete:",
    "    enabled: true",
    "http:",
    `  addr: 127.0.0.1:${port}`,
    ...extra,
    "",
  ].join("\n");
}

/** `proxyRemoteUrl`: run as a pull-through cache (distribution's proxy mode) of that registry. */
export async function startRegistry(
  baseDir?: string,
  opts: { proxyRemoteUrl?: string } = {},
): Promise<LocalRegistry> {
  const dir = baseDir ?? mkdtempSync(path.join(os.tmpdir(), "tollgate-registry-"));
  mkdirSync(path.join(dir, "data"), { recursive: true });
  const port = await freePort();
  const config = path.join(dir, "config.yml");
  writeFileSync(
    config,
    registryConfigYaml(
      path.join(dir, "data"),
      port,
      opts.proxyRemoteUrl ? ["proxy:", `  remoteurl: ${opts.proxyRemoteUrl}`] : [],
    ),
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
