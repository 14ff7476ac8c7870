// Production client of containerd's images API (gRPC, @grpc/grpc-js) and the resolver the
// create-time gate uses to turn a container's image name into the top-level digest the
// pull verifier saw (protocols.md §3.2, §5).
//
// How the digest is found: the CRI annotation `io.kubernetes.cri.image-name` (kubelet's
// `user_specified_image`) → containerd's stored spelling of it (engine/identity.ts) →
// Images.Get in namespace k8s.io → image.target.digest (the index digest for multi-arch
// images, the manifest digest otherwise). Image IDs (full or short) go through CRI's own
// lookup to every named record that carries them (ContainerdImageResolver.byId). Never
// through the `sha256:<config>` record: its target is re-pointed by whichever pull came last.
//
// Residual race (documented in docs/security.md): NRI v0.8.0 gives the plugin no image id
// or digest. kubelet resolves the image (ImageStatus / PullImage → image_ref, the config
// digest) and then calls CreateContainer with that id; containerd creates from the id,
// while we look up the *name*. If the tag is re-pulled to different content between
// kubelet's lookup and our Get, we judge the new target while containerd starts the old
// one. What narrows it here: we resolve at CreateContainer time (the name cache in
// image-cache.ts is invalidated by containerd's image events, not filled at pull time),
// an image ID is judged through every named record carrying it, and a digest-pinned name (`repo@sha256:…`) resolves exactly. What cannot be
// done with NRI v0.8.0: the request carries neither the config digest nor the image id,
// so there is nothing to cross-check the resolved target against. When a newer NRI
// request carries the image digest, the gate uses it instead (gate.ts digestFromRequest).
import { isDigest } from "../base/digest.js";
import { credentials, Metadata, status } from "@grpc/grpc-js";
import { EngineError } from "../engine/errors.js";
import { classifyCriImage } from "../engine/identity.js";
import { type Image, ImagesClient } from "../gen/containerd/images.js";
import type { CriImageLookup } from "./cri-images.js";

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

/** Where the resolver reads image records: containerd itself, or the event-kept cache in front of it. */
export interface ImageRecords {
  /**
   * `forContainer`: the container whose create the lookup serves, if any (the cache uses
   * containerd's event for it; containerd itself needs nothing).
   */
  get(name: string, deadline: number, forContainer?: string): Promise<Image | undefined>;
  /** The record at once when it can be served without waiting; undefined: call get(). */
  peek?(name: string, forContainer: string): Image | undefined;
}

export interface ResolvedImage {
  /** The image record's name (containerd's spelling). */
  reference: string;
  /** Its top-level digest (index or manifest). */
  digest: string;
}

export interface Resolution extends ResolvedImage {
  /** Set when the image string was an image ID (full or short): the ID it named. */
  imageId?: string;
  /** For an image ID, every named record carrying that config digest (all must pass). */
  records?: ResolvedImage[];
}

/**
 * The gate's ImageResolver: the content CRI will start for an image string, in CRI's own
 * order (internal/cri LocalResolve, mirrored by engine/identity.ts classifyCriImage):
 * a full digest is an image ID; anything else is looked up as containerd's stored name
 * (`repo:tag@sha256:…` is stored as `repo@sha256:…`) and, when no such name exists and the
 * string can be an ID prefix, as an image ID. An image ID names content only through the
 * image records that carry it, so all of them are returned. Anything that cannot be pinned
 * down exactly (unknown, ambiguous, a record that vanished) throws.
 */
export class ContainerdImageResolver {
  constructor(
    private readonly images: ImageRecords,
    private readonly cri?: CriImageLookup,
  ) {}

  async resolve(name: string, opts: { deadline: number; forContainer?: string }): Promise<Resolution> {
    if (name === "") throw new EngineError("INVALID_REFERENCE", "empty image name");
    const c = classifyCriImage(name);
    if (c.kind === "invalid") throw c.error;
    if (c.kind === "name") {
      const found = await this.byName(c.stored, opts.deadline, opts.forContainer);
      if (found) return found;
      if (c.idPrefix === undefined)
        throw new EngineError("NOT_FOUND", `image ${JSON.stringify(c.stored)} not found in containerd`);
    }
    return this.byId(name, opts.deadline, opts.forContainer);
  }

  /**
   * The resolution at once, when the image string is a name whose record the source serves
   * without waiting (image-cache.ts: the create's own events have arrived); undefined
   * otherwise: call resolve(). Throws as resolve() does for a malformed record.
   */
  resolveNow(name: string, forContainer: string): Resolution | undefined {
    if (!this.images.peek || name === "") return undefined;
    const c = classifyCriImage(name);
    if (c.kind !== "name") return undefined;
    const img = this.images.peek(c.stored, forContainer);
    return img ? this.checked(c.stored, img) : undefined;
  }

  private async byName(
    stored: string,
    deadline: number,
    forContainer: string | undefined,
  ): Promise<ResolvedImage | undefined> {
    const img = await this.images.get(stored, deadline, forContainer);
    return img ? this.checked(stored, img) : undefined;
  }

  /** A record's top-level digest, checked; undefined when the record has none. */
  private checked(stored: string, img: Image): ResolvedImage | undefined {
    const digest = img.target?.digest;
    if (!digest) return undefined;
    if (!isDigest(digest))
      throw new EngineError("MALFORMED", `containerd image ${stored} has a malformed target digest`);
    // A pinned name must resolve to its own digest.
    const at = stored.lastIndexOf("@");
    if (at >= 0 && stored.slice(at + 1) !== digest)
      throw new EngineError(
        "DIGEST_MISMATCH",
        `containerd image ${stored} targets ${digest}, not the pinned digest`,
      );
    return { reference: stored, digest };
  }

  private async byId(image: string, deadline: number, forContainer: string | undefined): Promise<Resolution> {
    const shown = JSON.stringify(image.slice(0, 160));
    if (!this.cri)
      throw new EngineError(
        "NOT_FOUND",
        `image ${shown} is not a stored name, and image IDs cannot be looked up`,
      );
    const rec = await this.cri.status(image, deadline);
    if (!rec) throw new EngineError("NOT_FOUND", `no image name or image ID ${shown} in containerd`);
    const names = [...new Set([...rec.repoTags, ...rec.repoDigests])];
    const records = await Promise.all(
      names.map(async (n) => {
        const c = classifyCriImage(n);
        const stored = c.kind === "name" ? c.stored : n;
        const r = await this.byName(stored, deadline, forContainer);
        if (!r)
          throw new EngineError(
            "NOT_FOUND",
            `image ID ${rec.id} is listed under ${JSON.stringify(n)}, but containerd has no such record`,
          );
        return r;
      }),
    );
    const unique = [...new Map(records.map((r) => [`${r.reference} ${r.digest}`, r])).values()];
    const first = unique[0];
    if (!first) throw new EngineError("NOT_FOUND", `image ID ${rec.id} is carried by no named image record`);
    return { ...first, imageId: rec.id, records: unique };
  }
}
