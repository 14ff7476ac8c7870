// Registry credential providers: the public surface the registry client and the agent use.
export { buildCredentialResolver } from "./config.js";
export { ACR_SCOPE, AzureProvider } from "./azure.js";
export { DockerConfigProvider } from "./docker.js";
export { parseHostPattern } from "./host-pattern.js";
export { KubeletProvider, parseCacheDuration, parseCredentialProviderConfig } from "./kubelet.js";
export { CredentialResolver, type ProviderRule, type ProviderStatus } from "./resolver.js";
export { type CredentialProviderSpec, PROVIDER_TYPES, parseCredentialProviderSpecs } from "./spec.js";
export type { CredentialAnswer, CredentialProvider, CredentialRequest, CredentialScope } from "./types.js";
