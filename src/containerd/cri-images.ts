// CRI's own image lookup (runtime.v1 ImageService.ImageStatus on containerd's socket), used
// only for image IDs: CRI resolves `sha256:<config>` and short ID prefixes through its
// in-memory image store (internal/cri LocalResolve), which also knows every image record
// that carries that config digest. Asking CRI itself means the gate resolves an ID exactly
// as the CreateContainer that follows will, ambiguity included.
import { credentials, Metadata } from "@grpc/grpc-js";
import { EngineError } from "../engine/errors.js";
import { ImageServiceClient } from "../gen/cri.js";

export interface CriImageRecord {
  /** The image ID (config digest). */
  id: string;
  /** Names containerd stores for it, tags ("repo:tag") and digests ("repo@sha256:…"). */
  repoTags: string[];
  repoDigests: string[];
}

export interface CriImageLookup {
  /** CRI's answer for an image string; undefined when CRI has no such image. */
  status(image: string, deadline: number): Promise<CriImageRecord | undefined>;
}

export class CriImages implements CriImageLookup {
  private readonly client: InstanceType<typeof ImageServiceClient>;

  constructor(address: string) {
    const target = address.startsWith("unix:") ? address : `unix://${address}`;
    this.client = new ImageServiceClient(target, credentials.createInsecure(), {
      "grpc.max_receive_message_length": 4 * 1024 * 1024,
      "grpc.enable_retries": 0,
    });
  }

  status(image: string, deadline: number): Promise<CriImageRecord | undefined> {
    return new Promise((resolve, reject) => {
      this.client.imageStatus(
        { image: { image, annotations: {}, userSpecifiedImage: "", runtimeHandler: "" }, verbose: false },
        new Metadata(),
        { deadline: new Date(deadline) },
        (err, res) => {
          if (err) {
            // Includes CRI's "ambiguous" answer for a short ID that matches several images.
            return reject(
              new EngineError(
                "INTERNAL",
                `CRI ImageStatus(${JSON.stringify(image)}): ${err.details || err.message}`,
                {
                  cause: err,
                },
              ),
            );
          }
          const img = res.image;
          if (!img?.id) return resolve(undefined);
          resolve({ id: img.id, repoTags: img.repoTags ?? [], repoDigests: img.repoDigests ?? [] });
        },
      );
    });
  }

  close(): void {
    this.client.close();
  }
}
