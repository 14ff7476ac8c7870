// Public types of the NRI plugin: options, handler contract, what containerd tells us.

import type {
  Container,
  ContainerUpdate,
  CreateContainerResponse,
  DeepPartial,
  PodSandbox,
} from "../gen/nri.js";
import type { ContainerIdentity, PodIdentity } from "./create-request.js";
import type { NriEvent } from "./events.js";

export const DEFAULT_SOCKET_PATH = "/var/run/nri/nri.sock";

export interface ConfigureInfo {
  config: string;
  runtimeName: string;
  runtimeVersion: string;
  registrationTimeoutMs: number;
  requestTimeoutMs: number;
}

export interface RequestContext {
  /** Epoch ms: from the request's timeout_nano, or now + requestTimeoutMs. */
  deadline: number;
  /** Aborts at the deadline or when the connection closes. */
  signal: AbortSignal;
  metadata: Record<string, string>;
}

/** What a createContainer handler may return: any subset of CreateContainerResponse. */
export type CreateContainerAnswer = DeepPartial<CreateContainerResponse>;

export type PluginState = "idle" | "connecting" | "registered" | "disconnected" | "stopped";

export interface NriHandlers {
  configure?(info: ConfigureInfo): void | Promise<void>;
  /** Called once per connection with all Synchronize pages merged. */
  synchronize?(pods: PodSandbox[], containers: Container[]): ContainerUpdate[] | Promise<ContainerUpdate[]>;
  /**
   * Sees the pod's and container's identity only (ids, names, namespace, labels, annotations):
   * the container's spec is skipped when decoding (create-request.ts).
   * Return nothing (allow as is) or a (partial) response with adjustments; throw
   * `new TtrpcStatusError(Code.PERMISSION_DENIED, msg)` to deny. Must answer before ctx.deadline:
   * containerd drops a plugin that misses it and creates the container anyway.
   */
  createContainer?(
    pod: PodIdentity,
    container: ContainerIdentity,
    ctx: RequestContext,
    // biome-ignore lint/suspicious/noConfusingVoidType: "return nothing" = allow without adjustments
  ): CreateContainerAnswer | void | Promise<CreateContainerAnswer | void>;
  /** Subscribed lifecycle events other than CreateContainer. Errors are logged, never returned. */
  stateChange?(event: NriEvent, pod?: PodSandbox, container?: Container): void | Promise<void>;
  onStateChange?(state: "connecting" | "registered" | "disconnected", detail?: string): void;
}

export interface NriLogger {
  info(o: object, msg?: string): void;
  warn(o: object, msg?: string): void;
  error(o: object, msg?: string): void;
  debug(o: object, msg?: string): void;
}

export interface NriPluginOptions {
  name: string;
  /** Two digits, e.g. "10": containerd orders plugins by this string. */
  index: string;
  socketPath?: string;
  events: NriEvent[];
  /** fd of a pre-launched plugin's socket; defaults to $NRI_PLUGIN_SOCKET when set. */
  preLaunchedFd?: number;
  reconnect?: { initialMs?: number; maxMs?: number };
  logger?: NriLogger;
  /** Bound on RegisterPlugin + Configure + Synchronize per connection (default 30 s). */
  setupTimeoutMs?: number;
  /** Environment consulted for NRI_PLUGIN_{SOCKET,NAME,IDX} (default process.env). */
  env?: Record<string, string | undefined>;
  /** Cap on pods + containers collected over Synchronize pages (default 500 000). */
  maxSyncObjects?: number;
}
