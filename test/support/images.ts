// Small runnable test images built from Debian's busybox-static and pushed with the real
// `crane` to a loopback registry. Distinct `marker` values give distinct digests.
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { tools } from "./tools.js";

export interface PushedImage {
  /** repository without tag, e.g. 127.0.0.1:5000/test/app */
  repo: string;
  /** repo:tag */
  ref: string;
  /** top-level manifest digest (what containerd's verifier sees) */
  digest: string;
  /** repo@digest */
  pinned: string;
}

export function crane(args: string[], input?: string): string {
  return execFileSync(tools.crane, args, {
    encoding: "utf8",
    input,
    env: { ...process.env, HOME: process.env.HOME ?? "/root" },
    stdio: ["pipe", "pipe", "pipe"],
  }).trim();
}

/**
 * Builds an OCI image whose rootfs is busybox (+ sh/echo/sleep/cat links) and a file
 * /marker, with `cmd` as its command, and pushes it as `registryHost/name:tag`.
 */
export function pushBusyboxImage(
  registryHost: string,
  name: string,
  tag: string,
  opts: { marker?: string; cmd?: string[] } = {},
): PushedImage {
  const work = mkdtempSync(path.join(os.tmpdir(), "tollgate-img-"));
  try {
    return buildAndPush(work, registryHost, name, tag, opts);
  } finally {
    // The rootfs and layer are only needed for the push (each is a few MB).
    rmSync(work, { recursive: true, force: true });
  }
}

function buildAndPush(
  work: string,
  registryHost: string,
  name: string,
  tag: string,
  opts: { marker?: string; cmd?: string[] },
): PushedImage {
  const root = path.join(work, "rootfs");
  mkdirSync(path.join(root, "bin"), { recursive: true });
  copyFileSync(tools.busybox, path.join(root, "bin", "busybox"));
  chmodSync(path.join(root, "bin", "busybox"), 0o755);
  for (const applet of ["sh", "echo", "sleep", "cat", "ls", "true"]) {
    symlinkSync("busybox", path.join(root, "bin", applet));
  }
  writeFileSync(path.join(root, "marker"), `${opts.marker ?? `${name}:${tag}`}\n`);
  const layer = path.join(work, "layer.tar");
  execFileSync("tar", ["-C", root, "--owner=0", "--group=0", "-cf", layer, "."]);
  const repo = `${registryHost}/${name}`;
  const ref = `${repo}:${tag}`;
  crane(["append", "--insecure", "--oci-empty-base", "--platform", "linux/amd64", "-f", layer, "-t", ref]);
  const cmd = opts.cmd ?? ["/bin/sh", "-c", `echo hello from ${name}:${tag}; sleep 3600`];
  crane([
    "mutate",
    "--insecure",
    ref,
    "--entrypoint=",
    ...cmd.flatMap((c) => ["--cmd", c]),
    "--env",
    "PATH=/bin",
    "--set-platform",
    "linux/amd64",
    "-t",
    ref,
  ]);
  const digest = crane(["digest", "--insecure", ref]);
  return { repo, ref, digest, pinned: `${repo}@${digest}` };
}
