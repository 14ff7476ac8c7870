// Everything the pull verifier needs only when the fast path (settings from the sidecar or
// the environment, then the agent's answer) is not enough: the YAML configuration loader,
// exempt-image matching for the failure policy and the in-process verification. One module,
// imported in one place (run.ts): the ESM build puts it in lazily loaded chunks, the
// self-contained binary keeps it as a separate asset it evaluates only on this path.
export { loadConfig } from "../config/agent.js";
export { ExemptImages } from "../decision/exempt.js";
export { verifyInProcess } from "./fallback.js";
