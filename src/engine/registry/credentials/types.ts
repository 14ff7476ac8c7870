// The registry credential provider contract. A provider answers "which credential for this
// image's registry" and says how long the answer may be reused; the resolver (resolver.ts)
// picks the provider by host pattern and owns caching, single flight and negative caching,
// so providers stay simple request → answer functions.
import type { Credential } from "../dockerconfig.js";

export interface CredentialRequest {
  /** The registry host the request goes to (host[:port], lower case). */
  host: string;
  /** "host/repository": what kubelet calls the image, without tag or digest. */
  image: string;
  signal?: AbortSignal;
}

/**
 * What an answer applies to, from narrowest to widest (kubelet's cacheKeyType): the image,
 * every image on the registry host, or every image the provider serves.
 */
export type CredentialScope = "image" | "registry" | "global";

export interface CredentialAnswer {
  /** Undefined = anonymous (the provider has nothing for this image: not an error). */
  credential: Credential | undefined;
  /** How long the answer may be reused, in ms (0 = not at all). */
  ttlMs: number;
  scope: CredentialScope;
}

export interface CredentialProvider {
  /** The name the operator gave the provider; appears in errors, status and doctor output. */
  readonly name: string;
  /** The provider type ("dockerConfig", "kubelet", …). */
  readonly type: string;
  /** Throws an EngineError (REGISTRY_AUTH) when it cannot produce an answer. */
  get(req: CredentialRequest): Promise<CredentialAnswer>;
  /** Problems an operator can fix (missing plugin binaries, unreadable files); [] when none. */
  check?(): string[];
}
