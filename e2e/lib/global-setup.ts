// Runs once before the e2e project: the real tools must be installed (scripts/install-deps.sh).
import { assertToolsInstalled } from "../../test/support/tools.js";

export default function setup(): void {
  if (process.getuid?.() !== 0) throw new Error("e2e tests need root (containerd, runc)");
  assertToolsInstalled();
}
