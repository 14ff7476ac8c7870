// Where kubectl is: on PATH, else the copy scripts/install-deps.sh unpacks into .cache/sid.
// In CI (CI set) a missing kubectl is an error, never a silent skip.
import { execFileSync } from "node:child_process";
import path from "node:path";
import { sidBin } from "./tools.js";

export function findKubectl(): string | undefined {
  for (const k of ["kubectl", path.join(sidBin, "kubectl")]) {
    try {
      execFileSync(k, ["version", "--client"], { stdio: "ignore" });
      return k;
    } catch {
      // next
    }
  }
  if (process.env.CI)
    throw new Error("kubectl not found (CI is set: the deploy tests must run); run scripts/install-deps.sh");
  return undefined;
}
