// Doctor: NRI — enabled in containerd, its socket, and the plugin request timeout against
// the agent's own budget.
import { statSync } from "node:fs";
import path from "node:path";
import { parseGoDuration } from "../base/duration.js";
import { type AgentConfig, defaultConfig } from "../config/agent.js";
import { PLUGIN } from "../containerd/config.js";
import { type LoadedConfig, pluginTable } from "./containerd-config.js";
import { type Add, DEFAULTS } from "./doctor-finding.js";

export function checkNri(cfg: LoadedConfig, agent: AgentConfig | undefined, add: Add): void {
  const nri = pluginTable(cfg, PLUGIN.nri);
  const section = `[plugins."${PLUGIN.nri}"]`;
  if (nri.disable === true) {
    add({
      id: "nri.disabled",
      check: "nri",
      severity: "error",
      message: `${section} disable = true: containerd runs no NRI plugins, so the create-time gate never sees a container`,
      fix: `set ${section} disable = false and restart containerd`,
    });
  } else {
    add({ id: "nri.enabled", check: "nri", severity: "ok", message: "NRI is enabled" });
  }
  if (nri.disable_connections === true && !agent?.nri.preLaunched)
    add({
      id: "nri.connections-disabled",
      check: "nri",
      severity: "error",
      message: `${section} disable_connections = true: externally started plugins (the Tollgate agent) cannot connect`,
      fix: `set ${section} disable_connections = false`,
    });
  const socket =
    typeof nri.socket_path === "string" && nri.socket_path !== "" ? nri.socket_path : DEFAULTS.nriSocket;
  let st: ReturnType<typeof statSync> | undefined;
  try {
    st = statSync(socket);
  } catch {
    st = undefined;
  }
  if (!st)
    add({
      id: "nri.socket-missing",
      check: "nri",
      severity: "error",
      message: `NRI socket ${socket} does not exist (containerd not running, or NRI disabled): the agent cannot register`,
      fix: "start containerd with NRI enabled; check containerd's log for NRI errors",
    });
  else if (!st.isSocket())
    add({
      id: "nri.socket-not-socket",
      check: "nri",
      severity: "error",
      message: `${socket} exists but is not a socket`,
      fix: `remove ${socket} and restart containerd`,
    });
  else add({ id: "nri.socket", check: "nri", severity: "ok", message: `NRI socket ${socket} exists` });
  if (
    agent &&
    !agent.nri.preLaunched &&
    agent.nri.enabled &&
    path.resolve(agent.nri.socket) !== path.resolve(socket)
  )
    add({
      id: "nri.socket-mismatch",
      check: "nri",
      severity: "error",
      message: `the agent connects to ${agent.nri.socket} but containerd's NRI socket is ${socket}`,
      fix: `set nri.socket: ${socket} in the agent configuration`,
    });
  const rawTimeout = nri.plugin_request_timeout ?? DEFAULTS.nriRequestTimeout;
  const ms = typeof rawTimeout === "string" ? parseGoDuration(rawTimeout) : undefined;
  if (ms === undefined || ms < 0) {
    add({
      id: "nri.timeout-invalid",
      check: "nri",
      severity: "error",
      message: `${section} plugin_request_timeout = ${JSON.stringify(rawTimeout)} is not a duration`,
      fix: 'use a Go duration such as "2s"',
    });
  } else {
    const fraction = agent?.gate.budgetFraction ?? defaultConfig().gate.budgetFraction;
    const budget = Math.round(ms * fraction);
    add({
      id: ms < 1000 ? "nri.timeout-short" : "nri.timeout",
      check: "nri",
      severity: ms < 1000 ? "warning" : "ok",
      message:
        `plugin_request_timeout ${rawTimeout}: the create-time gate answers within ${budget} ms ` +
        `(gate.budgetFraction ${fraction}); a plugin that misses the deadline is dropped and containers are created without it` +
        (ms < 1000
          ? "; this leaves little time for an uncached verification, so the failure policy answers more often"
          : ""),
      ...(ms < 1000 ? { fix: `raise ${section} plugin_request_timeout (default 2s)` } : {}),
    });
  }
}
