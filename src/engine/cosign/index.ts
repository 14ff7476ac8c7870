// Cosign signature verification (key-pair and keyless) for the engine.

export { loadTrustedRoot } from "./keyless.js";
export type {
  CosignConfig,
  CosignIdentity,
  CosignKey,
  CosignKeylessConfig,
  VerifyCosignOptions,
} from "./types.js";
export { type CosignArtifactKind, classifyCosignArtifact, verifyCosign } from "./verify.js";
