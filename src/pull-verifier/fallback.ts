// In-process verification when the agent is unreachable (filled in once the engine's
// createEngine entry point lands; until then the caller applies the failure policy).
import type { PullVerdictRequest } from "../agent/api-types.js";
import type { AgentConfig } from "../agent/config.js";
import type { Decision } from "../agent/decision.js";

export async function verifyInProcess(
  _cfg: AgentConfig,
  _req: PullVerdictRequest,
  _opts: { deadline: number; log: (msg: string, extra?: Record<string, unknown>) => void },
): Promise<Decision> {
  throw new Error("in-process verification is not wired yet");
}
