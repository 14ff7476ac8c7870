// OCI image archives built locally (no registry, no network) for `ctr image import`: the
// sandbox ("pause") image and pre-existing-image cases. The rootfs is Debian's static busybox.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { tools } from "../../test/support/tools.js";

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
export const OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar";

export interface OciDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string };
}

export interface ImageArchive {
  /** path of the OCI-layout tarball (for `ctr image import`) */
  tarball: string;
  /** image name recorded in index.json (`io.containerd.image.name`) */
  name: string;
  /** top-level manifest digest */
  digest: string;
  /** config digest (= CRI image id) */
  configDigest: string;
}

export interface BusyboxImageOptions {
  /** full image name, e.g. `localhost/tollgate/pause:1` */
  name: string;
  /** image command (Cmd); default: a long sleep */
  cmd?: string[];
  /** written to /marker so distinct markers give distinct digests */
  marker?: string;
  /** where to create the archive (default: a new temp dir) */
  dir?: string;
}

function sha256(data: Buffer | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/** The busybox rootfs every test image uses, as an uncompressed tar layer. */
function busyboxLayer(work: string, marker: string): Buffer {
  const root = path.join(work, "rootfs");
  mkdirSync(path.join(root, "bin"), { recursive: true });
  copyFileSync(tools.busybox, path.join(root, "bin", "busybox"));
  chmodSync(path.join(root, "bin", "busybox"), 0o755);
  for (const applet of ["sh", "echo", "sleep", "cat", "ls", "true"]) {
    symlinkSync("busybox", path.join(root, "bin", applet));
  }
  writeFileSync(path.join(root, "marker"), `${marker}\n`);
  const layer = path.join(work, "layer.tar");
  // Fixed owner and mtime so equal inputs give equal digests.
  execFileSync("tar", ["-C", root, "--owner=0", "--group=0", "--mtime=@0", "--sort=name", "-cf", layer, "."]);
  const data = readFileSync(layer);
  rmSync(root, { recursive: true, force: true });
  rmSync(layer);
  return data;
}

/** An OCI layout under `work`: put() stores a blob, finish() writes index.json and tars it. */
function ociLayout(work: string, tarName: string) {
  const layout = path.join(work, "layout");
  const blobs = path.join(layout, "blobs", "sha256");
  mkdirSync(blobs, { recursive: true });
  return {
    put(data: Buffer | string): string {
      const d = sha256(data);
      writeFileSync(path.join(blobs, d.slice("sha256:".length)), data);
      return d;
    },
    finish(manifests: OciDescriptor[]): string {
      writeFileSync(path.join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
      writeFileSync(
        path.join(layout, "index.json"),
        JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }),
      );
      const tarball = path.join(work, tarName);
      execFileSync("tar", ["-C", layout, "--owner=0", "--group=0", "-cf", tarball, "."]);
      rmSync(layout, { recursive: true, force: true });
      return tarball;
    },
  };
}

/** A linux/amd64 image config + manifest over one layer; returns the manifest's index entry. */
function putImage(
  put: (d: Buffer | string) => string,
  layer: { digest: string; size: number },
  name: string,
  config: { Env: string[]; Cmd: string[] },
): { entry: OciDescriptor; configDigest: string } {
  const cfg = JSON.stringify({
    architecture: "amd64",
    os: "linux",
    config,
    rootfs: { type: "layers", diff_ids: [layer.digest] },
  });
  const configDigest = put(cfg);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: configDigest, size: Buffer.byteLength(cfg) },
    layers: [{ mediaType: OCI_LAYER_TAR, digest: layer.digest, size: layer.size }],
  });
  return {
    configDigest,
    entry: {
      mediaType: OCI_MANIFEST,
      digest: put(manifest),
      size: Buffer.byteLength(manifest),
      platform: { architecture: "amd64", os: "linux" },
      annotations: { "io.containerd.image.name": name },
    },
  };
}

/**
 * Builds a single-platform (linux/amd64) OCI image of busybox and writes it as an OCI-layout
 * tarball whose index names it `opts.name`, ready for `ctr -n k8s.io image import`.
 */
export function buildBusyboxArchive(opts: BusyboxImageOptions): ImageArchive {
  const work = opts.dir ?? mkdtempSync(path.join(os.tmpdir(), "tollgate-ociimg-"));
  const l = ociLayout(work, "image.tar");
  const layer = busyboxLayer(work, opts.marker ?? opts.name);
  const img = putImage(l.put, { digest: l.put(layer), size: layer.length }, opts.name, {
    Env: ["PATH=/bin"],
    Cmd: opts.cmd ?? ["/bin/sleep", "1000000000"],
  });
  const tarball = l.finish([img.entry]);
  return { tarball, name: opts.name, digest: img.entry.digest, configDigest: img.configDigest };
}

/**
 * Many distinct images in one OCI-layout tarball (one `ctr image import`): they share one
 * busybox layer and differ in their config (so in their digests), one per name.
 */
export function buildBusyboxArchiveSet(
  names: string[],
  dir?: string,
): { tarball: string; images: ImageArchive[] } {
  const work = dir ?? mkdtempSync(path.join(os.tmpdir(), "tollgate-ociset-"));
  const l = ociLayout(work, "images.tar");
  const data = busyboxLayer(work, "set");
  const layer = { digest: l.put(data), size: data.length };
  const made = names.map((name, i) =>
    putImage(l.put, layer, name, { Env: ["PATH=/bin", `VARIANT=${i}`], Cmd: ["/bin/sleep", "1000000000"] }),
  );
  const tarball = l.finish(made.map((m) => m.entry));
  return {
    tarball,
    images: made.map((m, i) => ({
      tarball,
      name: names[i]!,
      digest: m.entry.digest,
      configDigest: m.configDigest,
    })),
  };
}
