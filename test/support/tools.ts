// Paths of the real tools that scripts/install-deps.sh unpacks (Debian sid packages)
// plus the host's own runc/openssl. Tests import from here instead of guessing paths.
import { existsSync } from "node:fs";
import path from "node:path";

export const repoRoot = path.resolve(import.meta.dirname, "..", "..");
export const cacheDir = path.join(repoRoot, ".cache");
export const sidRoot = path.join(cacheDir, "sid");
export const sidBin = path.join(sidRoot, "usr", "bin");

export const tools = {
  containerd: path.join(sidBin, "containerd"),
  ctr: path.join(sidBin, "ctr"),
  shim: path.join(sidBin, "containerd-shim-runc-v2"),
  registry: path.join(sidBin, "docker-registry"),
  notation: path.join(sidBin, "notation"),
  cosign: path.join(sidBin, "cosign"),
  oras: path.join(sidBin, "oras"),
  crane: path.join(sidBin, "crane"),
  busybox: path.join(sidBin, "busybox"),
  runc: "/usr/sbin/runc",
  openssl: "/usr/bin/openssl",
} as const;

export function assertToolsInstalled(): void {
  const missing = Object.entries(tools)
    .filter(([, p]) => !existsSync(p))
    .map(([n, p]) => `${n} (${p})`);
  if (missing.length > 0) {
    throw new Error(`missing test tools: ${missing.join(", ")}; run scripts/install-deps.sh as root`);
  }
}

/** PATH that puts the unpacked sid binaries first (containerd finds its shim there). */
export function toolPath(): string {
  return `${sidBin}:/usr/sbin:/usr/bin:/sbin:/bin`;
}
