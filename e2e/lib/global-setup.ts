// Runs once before the e2e project: root, the real tools (scripts/install-deps.sh), and a
// fresh build of dist/ (the agent and the pull-verifier binary that e2e tests install into
// containerd). TOLLGATE_E2E_SKIP_BUILD=1 skips the build (e.g. scripts/test.sh already built).
import { execFileSync } from "node:child_process";
import { assertToolsInstalled, repoRoot } from "../../test/support/tools.js";

export default function setup(): void {
  if (process.getuid?.() !== 0) throw new Error("e2e tests need root (containerd, runc)");
  assertToolsInstalled();
  if (process.env.TOLLGATE_E2E_SKIP_BUILD !== "1") {
    try {
      execFileSync(process.execPath, ["scripts/build.mjs"], {
        cwd: repoRoot,
        stdio: "pipe",
        encoding: "utf8",
      });
    } catch (e) {
      const err = e as Error & { stderr?: string; stdout?: string };
      throw new Error(
        `e2e prebuild (node scripts/build.mjs) failed:\n${err.stderr || err.stdout || err.message}`,
      );
    }
  }
}
