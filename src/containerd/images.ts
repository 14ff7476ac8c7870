// Production client of containerd's images API (gRPC, @grpc/grpc-js) and the resolver the
// create-time gate uses to turn a container's image name into the top-level digest the
// pull verifier saw (protocols.md §3.2, §5).
//
// How the digest is found: the CRI annotation `io.kubernetes.cri.image-name` (kubelet's
// `user_specified_image`) → Images.Get(name) in namespace k8s.io → image.target.digest (the
// index digest for multi-arch images, the manifest digest otherwise). Never through the
// `sha256:<config>` record: its target is re-pointed by whichever pull came last.
//
// Residual race (documented in docs/security.md): NRI v0.8.0 gives the plugin no image id
// or digest. kubelet resolves the image (ImageStatus / PullImage → image_ref, the config
// digest) and then calls CreateContainer with that id; containerd creates from the id,
// while we look up the *name*. If the tag is re-pulled to different content between
// kubelet's lookup and our Get, we judge the new target while containerd starts the old
// one. What narrows it here: we resolve at CreateContainer time (the name cache in
// image-cache.ts is invalidated by containerd's image events, not filled at pull time),
// we refuse names that are config-digest records (`sha256:<hex>`
// alone), and a digest-pinned name (`repo@sha256:…`) resolves exactly. What cannot be
// done with NRI v0.8.0: the request carries neither the config digest nor the image id,
// so there is nothing to cross-check the resolved target against. When a newer NRI
// request carries the image digest, the gate uses it instead (gate.ts digestFromRequest).
import { credentials, Metadata, status } from "@grpc/grpc-js";
import { EngineError } from "../engine/errors.js";
import { normalizeReference } from "../engine/reference.js";
import { type Image, ImagesClient } from "../gen/containerd/images.js";

const CONFIG_RECORD_RE = /^sha256:[a-f0-9]{64}$/;
const DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;

export interface ImagesApiOptions {
  /** containerd socket: a path or a unix:// URL. */
  address: string;
  namespace?: string;
}

/** A thin promise wrapper over containerd.services.images.v1.Images. */
export class ContainerdImages {
  private readonly client: ImagesClient;
  private readonly namespace: string;

  constructor(opts: ImagesApiOptions) {
    const target = opts.address.startsWith("unix:") ? opts.address : `unix://${opts.address}`;
    this.client = new ImagesClient(target, credentials.createInsecure(), {
      // Small messages only; a huge answer is a bug or an attack.
      "grpc.max_receive_message_length": 4 * 1024 * 1024,
      "grpc.enable_retries": 0,
    });
    this.namespace = opts.namespace ?? "k8s.io";
  }

  /** Get one image record by exact name; undefined when containerd says NOT_FOUND. */
  get(name: string, deadline: number): Promise<Image | undefined> {
    const md = new Metadata();
    md.set("containerd-namespace", this.namespace);
    return new Promise((resolve, reject) => {
      this.client.get({ name }, md, { deadline: new Date(deadline) }, (err, res) => {
        if (err) {
          if (err.code === status.NOT_FOUND) return resolve(undefined);
          const code = "INTERNAL";
          return reject(
            new EngineError(
              code,
              `containerd images.Get(${JSON.stringify(name)}): ${err.details || err.message}`,
              {
                cause: err,
              },
            ),
          );
        }
        resolve(res.image);
      });
    });
  }

  close(): void {
    this.client.close();
  }
}

/** The gate's ImageResolver over containerd's images API. */
export class ContainerdImageResolver {
  constructor(private readonly images: Pick<ContainerdImages, "get">) {}

  async resolve(name: string, opts: { deadline: number }): Promise<{ reference: string; digest: string }> {
    const raw = name.trim();
    if (raw === "") throw new EngineError("INVALID_REFERENCE", "empty image name");
    if (CONFIG_RECORD_RE.test(raw)) {
      // A bare config digest names no repository and its record moves with every pull.
      throw new EngineError(
        "INVALID_REFERENCE",
        `image name ${raw} is a config-digest record; it does not identify a verified top-level digest`,
      );
    }
    let normalized = raw;
    try {
      normalized = normalizeReference(raw);
    } catch {
      // Keep the raw name: containerd may still know it verbatim.
    }
    // CRI stores normalised names; try that first, then the name exactly as given.
    const candidates = normalized === raw ? [raw] : [normalized, raw];
    for (const n of candidates) {
      const img = await this.images.get(n, opts.deadline);
      const digest = img?.target?.digest;
      if (img && digest) {
        if (!DIGEST_RE.test(digest))
          throw new EngineError("MALFORMED", `containerd image ${n} has a malformed target digest`);
        // A pinned name must resolve to its own digest.
        const at = n.lastIndexOf("@");
        if (at >= 0 && n.slice(at + 1) !== digest)
          throw new EngineError(
            "DIGEST_MISMATCH",
            `containerd image ${n} targets ${digest}, not the pinned digest`,
          );
        return { reference: n, digest };
      }
    }
    throw new EngineError("NOT_FOUND", `image ${JSON.stringify(raw)} not found in containerd namespace`);
  }
}
