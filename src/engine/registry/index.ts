// The registry layer's public surface: the engine composes these.
export {
  createRegistryClient,
  DEFAULT_LIMITS,
  DEFAULT_TIMEOUTS,
  digestOf,
  type FetchedManifest,
  type ManifestOptions,
  type ReferrersResult,
  type RegistryClient,
  type RegistryClientOptions,
  type RegistryLimits,
  type RegistryStats,
  type RepositoryRef,
  type RequestEvent,
  referrersTagFor,
} from "./client.js";
export {
  classifyArtifact,
  cosignSignatureTag,
  type DiscoverOptions,
  discoverSignatures,
} from "./discovery.js";
export { type Credential, loadDockerConfigs, parseDockerConfig } from "./dockerconfig.js";
export { defaultEndpoint, loadHostEndpoints, parseHostsToml, type RegistryEndpoint } from "./hosts.js";
export * as mediaTypes from "./mediatypes.js";
