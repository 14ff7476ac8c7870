// Key management providers: one interface for every source of trust material (types.ts).
export { AzureKeyVaultProvider, type AzureKeyVaultProviderOptions, jwkToSpkiPem } from "./azure-keyvault.js";
export { type AzureKmsKey, parseAzureKmsUri, parseVaultUri } from "./azurekms.js";
export { KeyProviders, type KeyProvidersOptions, type StatusOnlyProvider } from "./providers.js";
export type { KeyProvider, KeyProviderEvents, KeyProviderStatus, KeyProviderType } from "./types.js";
