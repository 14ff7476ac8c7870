// Doctor: the transfer service's bindir image verifier — directory, our binary, the
// verifier count and per-verifier timeout.
import { readdirSync, statSync } from "node:fs";
import path from "node:path";
import { parseGoDuration } from "../base/duration.js";
import type { AgentConfig } from "../config/agent.js";
import { PLUGIN } from "../containerd/config.js";
import { type LoadedConfig, pluginTable } from "./containerd-config.js";
import { type Add, DEFAULTS } from "./doctor-finding.js";

export function checkBindir(cfg: LoadedConfig, agent: AgentConfig | undefined, add: Add): void {
  const t = pluginTable(cfg, PLUGIN.bindir);
  const section = `[plugins."${PLUGIN.bindir}"]`;
  const dir = typeof t.bin_dir === "string" && t.bin_dir !== "" ? t.bin_dir : DEFAULTS.binDir;
  const max = typeof t.max_verifiers === "number" ? t.max_verifiers : DEFAULTS.maxVerifiers;
  const failOpen = "containerd only logs a warning and allows every pull without verification";
  let st: ReturnType<typeof statSync> | undefined;
  try {
    st = statSync(dir);
  } catch {
    st = undefined;
  }
  if (!st) {
    add({
      id: "bindir.missing",
      check: "bindir",
      severity: "error",
      message: `verifier bin_dir ${dir} does not exist: ${failOpen}`,
      fix: `install the Tollgate pull verifier into ${dir} (the deploy/ installer does), or point ${section} bin_dir at where it is`,
    });
    return;
  }
  if (!st.isDirectory()) {
    add({
      id: "bindir.not-directory",
      check: "bindir",
      severity: "error",
      message: `verifier bin_dir ${dir} is not a directory`,
      fix: `make ${dir} a directory holding the verifier`,
    });
    return;
  }
  const entries = readdirSync(dir).sort();
  if (entries.length === 0) {
    add({
      id: "bindir.empty",
      check: "bindir",
      severity: "error",
      message: `verifier bin_dir ${dir} is empty: ${failOpen}`,
      fix: `install the Tollgate pull verifier into ${dir}`,
    });
    return;
  }
  let bad = 0;
  for (const name of entries) {
    const full = path.join(dir, name);
    let es: ReturnType<typeof statSync> | undefined;
    try {
      es = statSync(full);
    } catch {
      es = undefined;
    }
    const problem = !es
      ? "is a broken symbolic link"
      : es.isDirectory()
        ? "is a directory"
        : !es.isFile()
          ? "is not a regular file"
          : (es.mode & 0o111) === 0
            ? "is not executable"
            : undefined;
    if (problem) {
      bad++;
      add({
        id: "bindir.bad-entry",
        check: "bindir",
        severity: "error",
        message: `${full} ${problem}: containerd runs every entry of bin_dir, fails to execute this one and blocks every pull`,
        fix: `remove ${full} from ${dir}`,
      });
    }
  }
  if (max >= 0 && entries.length > max) {
    const skipped = entries.slice(max);
    add({
      id: "bindir.too-many",
      check: "bindir",
      severity: "error",
      message: `${dir} has ${entries.length} entries, more than max_verifiers = ${max}: containerd skips ALL verifiers with only a warning (would-be skipped in order: ${skipped.join(", ")})`,
      fix: `remove entries from ${dir} or raise ${section} max_verifiers to at least ${entries.length}`,
    });
  }
  const ours = entries.filter((e) => /tollgate/i.test(e));
  if (ours.length === 0)
    add({
      id: "bindir.no-tollgate",
      check: "bindir",
      severity: "warning",
      message: `no Tollgate verifier in ${dir} (entries: ${entries.join(", ")}): pulls are not checked against ImagePolicies`,
      fix: `install the Tollgate pull verifier into ${dir}`,
    });
  else if (bad === 0 && !(max >= 0 && entries.length > max))
    add({
      id: "bindir.ok",
      check: "bindir",
      severity: "ok",
      message: `${dir}: ${entries.length} verifier(s) (${entries.join(", ")}), max_verifiers ${max}`,
    });
  const rawTimeout = t.per_verifier_timeout ?? DEFAULTS.perVerifierTimeout;
  const ms = typeof rawTimeout === "string" ? parseGoDuration(rawTimeout) : undefined;
  if (ms === undefined || ms <= 0)
    add({
      id: "bindir.timeout-invalid",
      check: "bindir",
      severity: "error",
      message: `${section} per_verifier_timeout = ${JSON.stringify(rawTimeout)} is not a positive duration`,
      fix: 'use a Go duration such as "10s"',
    });
  else if (agent && agent.pullVerifier.timeoutMs >= ms)
    add({
      id: "bindir.timeout-short",
      check: "bindir",
      severity: "warning",
      message: `per_verifier_timeout ${rawTimeout} is not above the agent's pullVerifier.timeoutMs (${agent.pullVerifier.timeoutMs} ms): containerd kills a slow verifier and fails the pull with an error instead of a verdict`,
      fix: `raise ${section} per_verifier_timeout or lower pullVerifier.timeoutMs`,
    });
}
