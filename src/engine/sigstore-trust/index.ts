// Sigstore trusted roots through TUF, as code outside the engine sees them: the client that
// holds and refreshes them, which sources a policy names, and their status.
export { TufTrustedRoots, type TufTrustedRootsOptions, userTufCache } from "./provider.js";
export { tufSourcesOf } from "./resolve.js";
export type * from "./types.js";
