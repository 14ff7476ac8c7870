// notation trust policy documents through the real containerd path: the YAML printed by
// `tollgate policy import notation --dir` (the built CLI) goes into the agent's policy
// directory; every image is pulled through CRI (pull verifier) and a container created in a
// namespace bound to the imported policy (NRI gate). The verdicts must be those of the real
// `notation verify` reading the same directory: several trust policies in one document,
// scoped and "*", a scope miss, every level, an override, TSA on/off, verifyTimestamp.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { notationVerify } from "../test/engine/notation/harness.js";
import {
  buildTrustPolicyFixture,
  type DocCase,
  type TrustPolicyFixture,
} from "../test/engine/notation/trustpolicy-fixture.js";
import { type Daemon, jsonLogRecords, waitFor } from "../test/support/procs.js";
import { type LocalRegistry, startRegistry } from "../test/support/registry.js";
import { repoRoot } from "../test/support/tools.js";
import { agentStatus, startAgentNode, startAgentProcess } from "./lib/agent-node.js";
import type { Containerd } from "./lib/containerd.js";
import { CriError } from "./lib/cri.js";

let work: string;
let registry: LocalRegistry;
let fx: TrustPolicyFixture;
let ctrd: Containerd;
let agent: Daemon | undefined;
let apiSocket: string;
const policyFor = new Map<string, string>();
/** How many CreateContainer calls reached containerd (each one an NRI decision of the agent). */
const answered = { creates: 0 };

const status = () => agentStatus(apiSocket);

/** `tollgate policy import notation` as a user runs it: the built CLI, YAML on stdout. */
function importPolicy(configDir: string, name: string): string {
  return execFileSync(
    process.execPath,
    [path.join(repoRoot, "dist", "tollgate.mjs"), "policy", "import", "notation", "--dir", configDir].concat([
      "--name",
      name,
    ]),
    { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
  );
}

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), "tollgate-e2e-notation-import-"));
  registry = await startRegistry(path.join(work, "registry"));
  fx = await buildTrustPolicyFixture(work, registry.host);
  const policyDir = path.join(work, "policies");
  mkdirSync(policyDir);
  const homes = [...new Set(fx.cases.map((c) => c.home.configDir))];
  const namespaces: unknown[] = [];
  for (const [i, configDir] of homes.entries()) {
    const name = `imported-${i}`;
    writeFileSync(path.join(policyDir, `${name}.yaml`), importPolicy(configDir, name));
    policyFor.set(configDir, name);
    namespaces.push({
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: `ns-${i}`, annotations: { "tollgate.dev/policy": name } },
    });
  }
  writeFileSync(path.join(policyDir, "namespaces.yaml"), namespaces.map((d) => stringify(d)).join("---\n"));
  const node = await startAgentNode({
    work,
    policyDir,
    nriTimeoutMs: 2000,
    perVerifierTimeout: "10s",
    defaultPolicy: "imported-0",
    pullVerifierTimeoutMs: 8000,
  });
  ctrd = node.ctrd;
  apiSocket = node.apiSocket;
  // Its stdout a FIFO that a reader copies to the log file, as containerd's shim reads a
  // container's stdout: the log path that ships (src/agent/log-output.ts).
  agent = await startAgentProcess(node, work, 60_000, { fifoStdout: true });
  await waitFor(
    "both imported policies loaded",
    async () => (await status()).policies.length === homes.length,
    60_000,
  );
  const wait = fx.expiredAfter - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}, 300_000);

afterAll(async () => {
  await agent?.stop();
  await ctrd?.stop();
  await fx?.close();
  await registry?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Pull (pull verifier) then create in the namespace bound to the case's policy (NRI gate). */
async function throughContainerd(c: DocCase, seq: number): Promise<{ ok: boolean; why: string }> {
  const ns = `ns-${[...policyFor.keys()].indexOf(c.home.configDir)}`;
  try {
    await ctrd.cri.pullImage(c.image.ref);
  } catch (e) {
    if (e instanceof CriError) return { ok: false, why: `pull: ${e.details.slice(0, 160)}` };
    throw e;
  }
  const pod = await ctrd.cri.runPodSandbox({ name: `p${seq}`, namespace: ns, uid: `uid-${seq}` });
  answered.creates++;
  try {
    await ctrd.cri.createContainer(pod, { name: `c${seq}`, image: c.image.ref });
    return { ok: true, why: "pulled and created" };
  } catch (e) {
    if (e instanceof CriError) return { ok: false, why: `create: ${e.details.slice(0, 160)}` };
    throw e;
  }
}

describe("imported notation trust policy on containerd", () => {
  it("pull + CreateContainer verdicts equal `notation verify` for every case", async () => {
    const rows: string[] = [];
    const problems: string[] = [];
    for (const [i, c] of fx.cases.entries()) {
      const cli = await notationVerify(c.home.home, c.image.pinned);
      const got = await throughContainerd(c, i);
      const v = (ok: boolean) => (ok ? "pass" : "fail");
      rows.push(`${c.name.padEnd(26)} ${v(cli.ok).padEnd(8)} ${v(got.ok).padEnd(10)} ${got.why}`);
      if (got.ok !== cli.ok)
        problems.push(`${c.name}: containerd=${v(got.ok)} notation=${v(cli.ok)} (${got.why})`);
      if (v(cli.ok) !== c.expect) problems.push(`${c.name}: notation=${v(cli.ok)}, expected ${c.expect}`);
    }
    console.log(
      [`${"case".padEnd(26)} ${"notation".padEnd(8)} ${"containerd".padEnd(10)} how`, ...rows].join("\n"),
    );
    expect(problems).toEqual([]);
  }, 240_000);

  it("through a FIFO stdout every decision reaches the log, and SIGTERM ends the agent cleanly", async () => {
    expect(answered.creates).toBeGreaterThan(0);
    const d = agent!;
    const records = () => jsonLogRecords(d.logFile);
    const audit = (event: string) => records().filter((r) => r.audit === true && r.event === event).length;
    await waitFor(
      "a pull audit record, and one per create",
      () => audit("pull") > 0 && audit("create") === answered.creates,
      30_000,
    );
    await d.stop("SIGTERM");
    expect(d.child.exitCode).toBe(0);
    expect(records().at(-1)).toMatchObject({ service: "tollgate-agent", msg: "stopped" });
    agent = undefined;
  }, 60_000);
});
