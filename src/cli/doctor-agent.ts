// Doctor: the node agent — reachable on its socket, its status and readiness.
import type { AgentStatus } from "../agent-api/types.js";
import { errorMessage } from "../base/errors.js";
import { isTable } from "../containerd/config.js";
import { agentGet } from "./agent-client.js";
import type { Add } from "./doctor-finding.js";
import { checkKeyProviders } from "./doctor-keys.js";
import { checkSigstoreTrust } from "./doctor-sigstore.js";

export async function checkAgent(socket: string, add: Add): Promise<void> {
  const fixStart = "check the agent DaemonSet pod (kubectl -n <ns> logs) or start `tollgate agent`";
  try {
    const h = await agentGet(socket, "/healthz");
    if (h.status !== 200) {
      add({
        id: "agent.unhealthy",
        check: "agent",
        severity: "error",
        message: `agent at ${socket} answered /healthz with HTTP ${h.status}`,
        fix: fixStart,
      });
      return;
    }
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT"
        ? "no such socket (agent not running?)"
        : code === "ECONNREFUSED"
          ? "connection refused (stale socket: agent not running)"
          : code === "EACCES"
            ? "permission denied (the socket is root-only: run the doctor as root)"
            : errorMessage(e);
    add({
      id: "agent.unreachable",
      check: "agent",
      severity: "error",
      message: `agent API ${socket}: ${why}. Without the agent the pull verifier falls back to in-process verification, and no create-time gate runs`,
      fix: fixStart,
    });
    return;
  }
  add({ id: "agent.healthy", check: "agent", severity: "ok", message: `agent at ${socket} is healthy` });
  let status: AgentStatus | undefined;
  try {
    const r = await agentGet(socket, "/readyz");
    const body = r.body as { ready?: boolean; notReady?: unknown };
    if (r.status !== 200) {
      const reasons = Array.isArray(body?.notReady)
        ? body.notReady.map(String).join("; ")
        : `HTTP ${r.status}`;
      add({
        id: "agent.not-ready",
        check: "agent",
        severity: "error",
        message: `agent is not ready: ${reasons}`,
        fix: fixStart,
      });
    } else add({ id: "agent.ready", check: "agent", severity: "ok", message: "agent is ready" });
    const s = await agentGet(socket, "/v1/status");
    if (s.status === 200 && isTable(s.body)) status = s.body as unknown as AgentStatus;
    else
      add({
        id: "agent.status-unavailable",
        check: "agent",
        severity: "warning",
        message: `/v1/status answered HTTP ${s.status}`,
      });
  } catch (e) {
    add({
      id: "agent.status-unavailable",
      check: "agent",
      severity: "warning",
      message: `agent status: ${errorMessage(e)}`,
    });
  }
  if (!status) return;
  checkSigstoreTrust(status, add);
  const policies = Array.isArray(status.policies) ? status.policies : [];
  if (policies.length === 0)
    add({
      id: "agent.no-policies",
      check: "agent",
      severity: "error",
      message: "the agent has no ImagePolicy loaded: every namespace without an exemption fails closed",
      fix: "create ImagePolicy objects (or policy files) and the default policy named in the agent configuration",
    });
  else
    add({
      id: "agent.policies",
      check: "agent",
      severity: "ok",
      message: `policies loaded: ${policies.map((p) => `${p.name} (${p.mode}, failurePolicy ${p.failurePolicy})`).join(", ")}`,
    });
  if (policies.length > 0 && !status.defaultPolicy)
    add({
      id: "agent.no-default-policy",
      check: "agent",
      severity: "warning",
      message:
        "the default policy is not loaded: namespaces without a tollgate.dev/policy annotation fail closed",
      fix: "create the ImagePolicy named by policy.defaultPolicy in the agent configuration",
    });
  for (const p of policies)
    if (p.mode === "Audit")
      add({
        id: "agent.policy-audit",
        check: "agent",
        severity: "info",
        message: `policy ${p.name} is in Audit mode: it records would-be denials and denies nothing`,
      });
  const src = status.policySource as
    | { rejected?: Array<{ policy?: string; origin?: string; reason?: string }> }
    | undefined;
  for (const r of (src?.rejected ?? []).slice(0, 10))
    add({
      id: "agent.policy-rejected",
      check: "agent",
      severity: "warning",
      message: `rejected update of ${r.policy ? `policy ${r.policy}` : (r.origin ?? "a policy")}: ${r.reason ?? "?"} (the last good revision stays in force)`,
      fix: "fix the document (tollgate policy validate FILE)",
    });
  checkKeyProviders(status, add);
  if (status.nri?.enabled === false)
    add({
      id: "agent.nri-off",
      check: "agent",
      severity: "warning",
      message: "the agent runs without the NRI create-time gate (nri.enabled: false)",
    });
  else if (status.nri && status.nri.state !== "registered")
    add({
      id: "agent.nri-not-registered",
      check: "agent",
      severity: "error",
      message: `the agent's NRI plugin is ${status.nri.state}, not registered: containerd creates containers without the create-time gate`,
      fix: "check the NRI socket path and containerd's NRI settings (see the nri findings)",
    });
  else if (status.nri)
    add({
      id: "agent.nri-registered",
      check: "agent",
      severity: "ok",
      message: `NRI plugin registered (request timeout ${status.nri.requestTimeoutMs ?? "?"} ms)`,
    });
}
