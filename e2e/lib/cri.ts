// A kubelet-like CRI client (cri-api v0.32.3 runtime.v1, protocols.md §6) over containerd's
// gRPC socket: host-network pods (no CNI), pull by name, create with the image id plus
// user_specified_image = name (as kubelet does), container logs read from the pod log dir.
import { randomUUID } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { type CallOptions, credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import {
  type ContainerConfig,
  type ContainerStatus,
  type Container as CriContainer,
  type Image,
  ImageServiceClient,
  NamespaceMode,
  type PodSandbox,
  type PodSandboxConfig,
  RuntimeServiceClient,
  type VersionResponse,
} from "../../src/gen/cri.js";

/** A CRI call failed; `details` is the gRPC status text containerd sent (tests match on it). */
export class CriError extends Error {
  constructor(
    readonly method: string,
    readonly code: number,
    readonly details: string,
    options?: { cause?: unknown },
  ) {
    super(`CRI ${method} failed (${status[code] ?? code}): ${details}`, options);
    this.name = "CriError";
  }
}

/** The CriError a call failed with, or undefined when it succeeded (other errors are thrown). */
export function criErrorOf(p: Promise<unknown>): Promise<CriError | undefined> {
  return p.then(
    () => undefined,
    (e: unknown) => {
      if (e instanceof CriError) return e;
      throw e;
    },
  );
}

export interface PodSpec {
  name: string;
  namespace: string;
  uid?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** default: `<logRoot>/<namespace>_<name>_<uid>` like kubelet */
  logDirectory?: string;
}

export interface Pod {
  id: string;
  config: PodSandboxConfig;
}

export interface ContainerSpec {
  name: string;
  /** image name as a user writes it in a pod spec */
  image: string;
  /**
   * The image id kubelet resolved for it (default: ImageStatus(image), PullImage if absent).
   * Set to model an image that changed or vanished between kubelet's lookup and the create.
   */
  imageRef?: string;
  command?: string[];
  args?: string[];
  env?: Record<string, string>;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface CriClientOptions {
  /** parent of default pod log directories */
  logRoot: string;
  /** per-call deadline (default 120 s: pulls and creates on a loaded machine) */
  callTimeoutMs?: number;
}

type Unary<Req, Res> = (
  req: Req,
  md: Metadata,
  opts: Partial<CallOptions>,
  cb: (err: ServiceError | null, res: Res) => void,
) => unknown;

export class CriClient {
  readonly address: string;
  private readonly logRoot: string;
  private readonly timeoutMs: number;
  private runtime!: InstanceType<typeof RuntimeServiceClient>;
  private images!: InstanceType<typeof ImageServiceClient>;
  private readonly pods = new Map<string, Pod>();

  constructor(address: string, opts: CriClientOptions) {
    this.address = address;
    this.logRoot = opts.logRoot;
    this.timeoutMs = opts.callTimeoutMs ?? 120_000;
    this.connect();
  }

  private connect(): void {
    const target = `unix://${this.address}`;
    this.runtime = new RuntimeServiceClient(target, credentials.createInsecure());
    this.images = new ImageServiceClient(target, credentials.createInsecure());
  }

  /** New channels (after a containerd restart, instead of waiting out grpc-js back-off). */
  reconnect(): void {
    this.close();
    this.connect();
  }

  close(): void {
    this.runtime.close();
    this.images.close();
  }

  private call<Req, Res>(method: string, fn: Unary<Req, Res>, req: Req): Promise<Res> {
    return new Promise((resolve, reject) => {
      fn(req, new Metadata(), { deadline: Date.now() + this.timeoutMs }, (err, res) => {
        if (err) reject(new CriError(method, err.code, err.details || err.message, { cause: err }));
        else resolve(res);
      });
    });
  }

  version(): Promise<VersionResponse> {
    return this.call("Version", this.runtime.version.bind(this.runtime), { version: "v1" });
  }

  // ---- images -------------------------------------------------------------------------

  /**
   * PullImage by name → image_ref (the config digest). `podNamespace` fills sandbox_config like
   * kubelet; `auth` is what kubelet sends from a pull secret or its credential provider.
   */
  async pullImage(
    name: string,
    opts: { podNamespace?: string; auth?: { username: string; password: string } } = {},
  ): Promise<string> {
    const res = await this.call("PullImage", this.images.pullImage.bind(this.images), {
      image: { image: name, annotations: {}, userSpecifiedImage: "", runtimeHandler: "" },
      auth: opts.auth
        ? { ...opts.auth, auth: "", serverAddress: "", identityToken: "", registryToken: "" }
        : undefined,
      sandboxConfig:
        opts.podNamespace === undefined
          ? undefined
          : this.podConfig({ name: "pull", namespace: opts.podNamespace, uid: "pull" }),
    });
    return res.imageRef;
  }

  /** ImageStatus → the image, or undefined when containerd has no such image. */
  async imageStatus(name: string): Promise<Image | undefined> {
    const res = await this.call("ImageStatus", this.images.imageStatus.bind(this.images), {
      image: { image: name, annotations: {}, userSpecifiedImage: "", runtimeHandler: "" },
      verbose: false,
    });
    return res.image;
  }

  async removeImage(name: string): Promise<void> {
    await this.call("RemoveImage", this.images.removeImage.bind(this.images), {
      image: { image: name, annotations: {}, userSpecifiedImage: "", runtimeHandler: "" },
    });
  }

  async listImages(): Promise<Image[]> {
    const res = await this.call("ListImages", this.images.listImages.bind(this.images), {
      filter: undefined,
    });
    return res.images;
  }

  // ---- pods ---------------------------------------------------------------------------

  private podConfig(spec: PodSpec): PodSandboxConfig {
    const uid = spec.uid ?? randomUUID();
    return {
      metadata: { name: spec.name, uid, namespace: spec.namespace, attempt: 0 },
      // Empty: a host-UTS pod cannot set a hostname (protocols.md §6).
      hostname: "",
      logDirectory: spec.logDirectory ?? path.join(this.logRoot, `${spec.namespace}_${spec.name}_${uid}`),
      labels: spec.labels ?? {},
      annotations: spec.annotations ?? {},
      linux: {
        cgroupParent: "",
        securityContext: {
          namespaceOptions: {
            network: NamespaceMode.NODE,
            pid: NamespaceMode.CONTAINER,
            ipc: NamespaceMode.POD,
            targetId: "",
          },
          runAsUser: undefined,
          readonlyRootfs: false,
          privileged: false,
          runAsGroup: undefined,
        },
        sysctls: {},
      },
    };
  }

  async runPodSandbox(spec: PodSpec): Promise<Pod> {
    const config = this.podConfig(spec);
    mkdirSync(config.logDirectory, { recursive: true });
    const res = await this.call("RunPodSandbox", this.runtime.runPodSandbox.bind(this.runtime), {
      config,
      runtimeHandler: "",
    });
    const pod = { id: res.podSandboxId, config };
    this.pods.set(pod.id, pod);
    return pod;
  }

  async listPodSandbox(): Promise<PodSandbox[]> {
    const res = await this.call("ListPodSandbox", this.runtime.listPodSandbox.bind(this.runtime), {
      filter: undefined,
    });
    return res.items;
  }

  async stopAndRemovePod(id: string): Promise<void> {
    await this.call("StopPodSandbox", this.runtime.stopPodSandbox.bind(this.runtime), { podSandboxId: id });
    await this.call("RemovePodSandbox", this.runtime.removePodSandbox.bind(this.runtime), {
      podSandboxId: id,
    });
    this.pods.delete(id);
  }

  /** Removes every pod this client created (`all`: every pod containerd knows). */
  async cleanup(opts: { all?: boolean } = {}): Promise<void> {
    const ids = new Set(this.pods.keys());
    if (opts.all) for (const p of await this.listPodSandbox()) ids.add(p.id);
    const errors: unknown[] = [];
    for (const id of ids) {
      await this.stopAndRemovePod(id).catch((e) => errors.push(e));
    }
    if (errors.length > 0)
      throw new AggregateError(errors, `CRI cleanup: ${errors.length} pod(s) not removed`);
  }

  // ---- containers ---------------------------------------------------------------------

  /**
   * Like kubelet: ImageStatus by name, PullImage if absent (with the pod's sandbox config), then
   * CreateContainer with image = image id and user_specified_image = name. Returns the id.
   */
  async createContainer(pod: Pod, spec: ContainerSpec): Promise<string> {
    let imageId = spec.imageRef ?? (await this.imageStatus(spec.image))?.id;
    if (!imageId) {
      const res = await this.call("PullImage", this.images.pullImage.bind(this.images), {
        image: { image: spec.image, annotations: {}, userSpecifiedImage: "", runtimeHandler: "" },
        auth: undefined,
        sandboxConfig: pod.config,
      });
      imageId = res.imageRef;
    }
    const config: ContainerConfig = {
      metadata: { name: spec.name, attempt: 0 },
      image: { image: imageId, annotations: {}, userSpecifiedImage: spec.image, runtimeHandler: "" },
      command: spec.command ?? [],
      args: spec.args ?? [],
      workingDir: "",
      envs: Object.entries(spec.env ?? {}).map(([key, value]) => ({ key, value })),
      mounts: [],
      labels: spec.labels ?? {},
      annotations: spec.annotations ?? {},
      // Relative to the pod's log_directory, as kubelet writes it.
      logPath: path.join(spec.name, "0.log"),
      stdin: false,
      stdinOnce: false,
      tty: false,
      linux: {
        securityContext: {
          privileged: false,
          namespaceOptions: pod.config.linux?.securityContext?.namespaceOptions,
          runAsUser: undefined,
          readonlyRootfs: false,
          runAsGroup: undefined,
        },
      },
    };
    const res = await this.call("CreateContainer", this.runtime.createContainer.bind(this.runtime), {
      podSandboxId: pod.id,
      config,
      sandboxConfig: pod.config,
    });
    return res.containerId;
  }

  async startContainer(id: string): Promise<void> {
    await this.call("StartContainer", this.runtime.startContainer.bind(this.runtime), { containerId: id });
  }

  async stopContainer(id: string, timeoutSeconds = 0): Promise<void> {
    await this.call("StopContainer", this.runtime.stopContainer.bind(this.runtime), {
      containerId: id,
      timeout: timeoutSeconds,
    });
  }

  async removeContainer(id: string): Promise<void> {
    await this.call("RemoveContainer", this.runtime.removeContainer.bind(this.runtime), { containerId: id });
  }

  async containerStatus(id: string): Promise<ContainerStatus> {
    const res = await this.call("ContainerStatus", this.runtime.containerStatus.bind(this.runtime), {
      containerId: id,
      verbose: false,
    });
    if (!res.status) throw new CriError("ContainerStatus", status.NOT_FOUND, `no status for container ${id}`);
    return res.status;
  }

  async listContainers(podSandboxId?: string): Promise<CriContainer[]> {
    const res = await this.call("ListContainers", this.runtime.listContainers.bind(this.runtime), {
      filter: podSandboxId ? { id: "", state: undefined, podSandboxId, labelSelector: {} } : undefined,
    });
    return res.containers;
  }

  /**
   * The container's output so far, from its CRI log file (`<RFC3339Nano> <stream> <P|F> <text>`
   * lines; partial lines joined). Empty string when nothing was written yet.
   */
  async containerLog(id: string): Promise<string> {
    const st = await this.containerStatus(id);
    let raw: string;
    try {
      raw = readFileSync(st.logPath, "utf8");
    } catch {
      return "";
    }
    let out = "";
    for (const line of raw.split("\n")) {
      const m = /^\S+ (stdout|stderr) ([PF]) (.*)$/.exec(line);
      if (!m) continue;
      out += m[3] + (m[2] === "F" ? "\n" : "");
    }
    return out;
  }

  /** Polls the container log until it contains `text`. */
  async waitForLog(id: string, text: string, timeoutMs = 30_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const log = await this.containerLog(id);
      if (log.includes(text)) return log;
      if (Date.now() > deadline) {
        throw new Error(
          `container ${id} log has no "${text}" after ${timeoutMs} ms; log so far: ${JSON.stringify(log)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
