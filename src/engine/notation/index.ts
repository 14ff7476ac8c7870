// Notary Project (notation) signature verification: public surface of this folder.
export { loadNotationConfigDir } from "./config.js";
export { CrlCache } from "./crl.js";
export { enforcement, selectPolicy, validatePolicies } from "./policy.js";
export * from "./types.js";
export { type VerifyOptions, verifyEnvelope, verifyNotation } from "./verify.js";
