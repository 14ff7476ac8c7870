// The pull verifier as a node runs it: `tollgate install` (src/installer, the real code) puts
// the self-contained binary into bin_dir by copy + rename, writes the verifier's YAML
// configuration and its JSON sidecar, under a private host root. containerd then runs the
// binary with an empty environment; only TOLLGATE_CONFIG is set here, because the installed
// configuration lives under the host root rather than at /etc/tollgate.
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { loadConfig } from "../../src/config/agent.js";
import { install } from "../../src/installer/install.js";

export interface InstalledVerifier {
  /** <host>/opt/containerd/image-verifier/bin/50-tollgate */
  bin: string;
  /** The installed verifier configuration (YAML; its sidecar is next to it). */
  config: string;
  sidecar: string;
  /** The environment containerd gives a bindir verifier, plus TOLLGATE_CONFIG. */
  env: NodeJS.ProcessEnv;
}

/** Installs `seaBinary` for the agent configured in `agentConfigPath` under `<dir>/host`. */
export async function installVerifier(
  seaBinary: string,
  agentConfigPath: string,
  dir: string,
): Promise<InstalledVerifier> {
  if (!existsSync(seaBinary)) throw new Error(`${seaBinary} missing (node scripts/package-verifier.mjs)`);
  const hostRoot = path.join(dir, "host");
  rmSync(hostRoot, { recursive: true, force: true });
  mkdirSync(path.join(hostRoot, "etc", "containerd"), { recursive: true });
  writeFileSync(
    path.join(hostRoot, "etc", "containerd", "config.toml"),
    'version = 3\nimports = ["/etc/containerd/conf.d/*.toml"]\n',
  );
  const agentConfig = await loadConfig({ path: agentConfigPath, env: {} });
  const r = await install({
    hostRoot,
    verifierBinary: seaBinary,
    agentConfig,
    restart: "none",
    version: "bench",
  });
  const config = path.join(hostRoot, r.verifierConfig.hostPath);
  return {
    bin: path.join(hostRoot, r.verifier.hostPath),
    config,
    sidecar: path.join(hostRoot, r.verifierConfig.sidecar.hostPath),
    env: { TOLLGATE_CONFIG: config },
  };
}
