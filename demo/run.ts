// The Tollgate demo (bash scripts/demo.sh runs it with tsx after installing and building):
// a real local stack — a private containerd 2.1 with NRI and the bindir image verifier, a
// loopback docker-registry, images signed with the real cosign and notation CLIs — and the
// real agent, driven the way kubelet drives containerd (CRI). Two tenants, two policies:
//   team-a  ImagePolicy team-a-cosign    images must be signed with team A's cosign key
//   team-b  ImagePolicy team-b-notation  images must carry a Notary Project signature
//                                        (strict level) from team B's certificate
// It walks through allowed and denied pulls and container creations, prints a table of what
// happened and why, checks every outcome against what the design promises (exit 1 if one
// differs), and tears everything down (processes by pid, mounts, temp dirs).
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { stringify } from "yaml";
import { type Containerd, DEFAULT_SANDBOX_IMAGE, startContainerd } from "../e2e/lib/containerd.js";
import { CriError, type Pod } from "../e2e/lib/cri.js";
import { buildBusyboxArchive } from "../e2e/lib/images.js";
import { type PushedImage, pushBusyboxImage } from "../test/support/images.js";
import { type Daemon, startDaemon, waitFor } from "../test/support/procs.js";
import { type LocalRegistry, startRegistry } from "../test/support/registry.js";
import { cosignGenerateKeyPair, cosignSign, notationInit, notationSign } from "../test/support/signing.js";
import { assertToolsInstalled, repoRoot } from "../test/support/tools.js";

const CLI = path.join(repoRoot, "dist", "tollgate.mjs");
const SEA = path.join(repoRoot, "dist", "tollgate-verify");
const color = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code: string, s: string) => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
const say = (s = "") => process.stdout.write(`${s}\n`);
const step = (s: string) => say(`\n${paint("1;36", "==>")} ${paint("1", s)}`);

interface Row {
  n: number;
  namespace: string;
  action: "pull" | "create";
  image: string;
  expected: "ALLOWED" | "DENIED";
  result: "ALLOWED" | "DENIED";
  why: string;
  story: string;
}
const rows: Row[] = [];

// ---- the stack ----------------------------------------------------------------------------

let work = "";
let registry: LocalRegistry | undefined;
let ctrd: Containerd | undefined;
let agent: Daemon | undefined;

async function teardown(): Promise<void> {
  await agent?.stop("SIGTERM", 10_000).catch(() => {});
  agent = undefined;
  await ctrd?.stop();
  ctrd = undefined;
  await registry?.stop().catch(() => {});
  registry = undefined;
  if (work && !process.env.TOLLGATE_KEEP_DEMO_DIR) rmSync(work, { recursive: true, force: true });
}

function status(socket: string): Promise<{ nri: { state: string }; policies: Array<{ name: string }> }> {
  return new Promise((resolve, reject) => {
    const r = http.get({ socketPath: socket, path: "/v1/status", timeout: 5000 }, (res) => {
      let b = "";
      res.on("data", (c) => {
        b += c;
      });
      res.on("end", () => {
        try {
          resolve(JSON.parse(b));
        } catch (e) {
          reject(e);
        }
      });
    });
    r.on("error", reject);
  });
}

/** The one-line reason Tollgate gave (what `kubectl describe pod` would show). */
function reasonOf(e: unknown): string {
  const text = e instanceof CriError ? e.details : e instanceof Error ? e.message : String(e);
  const m = /tollgate: .*/.exec(text);
  return m ? m[0] : text;
}

/** The table's "why": which policy decided and its last reason (the full text is printed above). */
function tableWhy(r: Row): string {
  const policy = /by policy "([^"]+)"/.exec(r.why)?.[1];
  if (r.result === "ALLOWED")
    return r.action === "pull"
      ? "a policy in use accepts the signature"
      : `${policyOf(r.namespace)}: signature verified`;
  if (/no policy in use (on this node )?allows it/.test(r.why)) return "no policy in use accepts it (no signature)";
  return `${policy ?? "?"}: ${r.why.split(": ").slice(-1)[0]}`;
}

const POLICY_OF: Record<string, string> = { "team-a": "team-a-cosign", "team-b": "team-b-notation" };
const policyOf = (ns: string) => POLICY_OF[ns] ?? "default";

function short(s: string, registryHost: string): string {
  return s.replaceAll(`${registryHost}/`, "").replace(/sha256:([0-9a-f]{12})[0-9a-f]{52}/g, "sha256:$1…");
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    say("demo: run as root (containerd and runc need it): sudo bash scripts/demo.sh");
    return 2;
  }
  assertToolsInstalled();
  for (const f of [CLI, SEA])
    if (!existsSync(f)) throw new Error(`${f} is missing: run bash scripts/demo.sh (it builds first)`);
  work = mkdtempSync(path.join(os.tmpdir(), "tollgate-demo-"));

  say(paint("1", "Tollgate demo: image signature policy enforced inside containerd"));
  say("Everything runs locally on loopback and in a private directory; it is all removed at the end.");

  step("1. A loopback OCI registry and three small images (busybox)");
  registry = await startRegistry(path.join(work, "registry"));
  const h = registry.host;
  const appA = pushBusyboxImage(h, "demo/app-a", "v1", { marker: "app-a" });
  const appB = pushBusyboxImage(h, "demo/app-b", "v1", { marker: "app-b" });
  const unsigned = pushBusyboxImage(h, "demo/unsigned", "v1", { marker: "unsigned" });
  say(`   registry ${h}: demo/app-a:v1, demo/app-b:v1, demo/unsigned:v1 pushed`);

  step("2. Signatures: team A signs with cosign (key pair), team B with notation (X.509)");
  const keyA = await cosignGenerateKeyPair(path.join(work, "team-a-cosign"));
  await cosignSign({ ref: appA.pinned, keyDir: keyA });
  say(`   cosign sign --key team-a  ${short(appA.pinned, h)}`);
  const notation = await notationInit({
    configDir: path.join(work, "team-b-notation"),
    keyName: "team-b-release",
  });
  await notationSign({ ref: appB.pinned, configDir: notation.configDir, format: "jws" });
  say(`   notation sign (team-b-release certificate)  ${short(appB.pinned, h)}`);
  say("   demo/unsigned:v1 carries no signature at all");
  const certPem = readFileSync(notation.certPath, "utf8");
  const subject = new X509Certificate(certPem).subject.split("\n").join(", ");

  step("3. Policies (file policy source): one ImagePolicy per tenant, chosen by namespace annotation");
  const policyDir = path.join(work, "policies");
  mkdirSync(policyDir);
  const docs = [
    {
      apiVersion: "tollgate.dev/v1alpha1",
      kind: "ImagePolicy",
      metadata: { name: "team-a-cosign" },
      spec: {
        mode: "Enforce",
        verifiers: [{ name: "team-a-key", cosign: { keys: [{ name: "team-a", pem: keyA.publicKeyPem }] } }],
      },
    },
    {
      apiVersion: "tollgate.dev/v1alpha1",
      kind: "ImagePolicy",
      metadata: { name: "team-b-notation" },
      spec: {
        mode: "Enforce",
        verifiers: [
          {
            name: "team-b-notation",
            notation: {
              level: "strict",
              trustedIdentities: [`x509.subject: ${subject}`],
              trustStores: [{ type: "ca", name: "team-b", certificates: certPem }],
            },
          },
        ],
      },
    },
    {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: "team-a", annotations: { "tollgate.dev/policy": "team-a-cosign" } },
    },
    {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: "team-b", annotations: { "tollgate.dev/policy": "team-b-notation" } },
    },
  ];
  writeFileSync(path.join(policyDir, "policies.yaml"), docs.map((d) => stringify(d)).join("---\n"));
  say("   team-a → team-a-cosign    (cosign signature by team A's key)");
  say(`   team-b → team-b-notation  (Notary Project, level strict, identity "${subject}")`);
  say(
    "   any other namespace → the default policy (team-b-notation); pulls: allowed if a policy in use allows",
  );

  step("4. containerd 2.1 (private instance) with NRI and the bindir image verifier");
  const apiSocket = path.join(work, "run", "agent.sock");
  const agentConfig = path.join(work, "agent.yaml");
  const verifierConfig = path.join(work, "host-etc-tollgate", "agent.yaml");
  ctrd = await startContainerd({
    nriRequestTimeout: "2s",
    perVerifierTimeout: "10s",
    env: { TOLLGATE_CONFIG: verifierConfig },
  });
  say(`   containerd ${ctrd.address} (pid ${ctrd.pid}), NRI socket ${ctrd.nriSocket}`);
  writeFileSync(
    agentConfig,
    stringify({
      nri: { socket: ctrd.nriSocket },
      containerd: { address: ctrd.address },
      api: { socket: apiSocket },
      policy: {
        source: "files",
        dir: policyDir,
        defaultPolicy: "team-b-notation",
        // The pinned sandbox ("pause") image is pulled through the verifier too.
        exemptImages: [DEFAULT_SANDBOX_IMAGE],
      },
      pullVerifier: { mode: "any-policy-in-use", timeoutMs: 8000 },
      metrics: { listen: "" },
    }),
  );

  step("5. tollgate install: the self-contained pull verifier into containerd's bin_dir");
  const install = execFileSync(
    process.execPath,
    [
      CLI,
      "install",
      "--host-root=/",
      `--agent-config=${agentConfig}`,
      `--verifier-binary=${SEA}`,
      `--bin-dir=${ctrd.binDir}`,
      `--verifier-config=${verifierConfig}`,
      `--config-dropin=${path.join(work, "host-etc-containerd", "conf.d", "tollgate.toml")}`,
      `--containerd-config=${ctrd.configPath}`,
      "--output=json",
    ],
    { encoding: "utf8" },
  );
  const report = JSON.parse(install) as { verifier: { hostPath: string } };
  say(`   ${report.verifier.hostPath}  (Node.js single-executable application: the node has no Node.js)`);
  say("   (this private containerd already has the drop-in's settings in its own config)");

  step("6. The Tollgate agent: local API for the verifier, NRI plugin for CreateContainer");
  agent = startDaemon("agent", process.execPath, [CLI, "agent", "--config", agentConfig], { logDir: work });
  await waitFor(
    "the agent to register with containerd over NRI",
    async () => existsSync(apiSocket) && (await status(apiSocket)).nri.state === "registered",
    60_000,
  );
  const st = await status(apiSocket);
  say(
    `   agent pid ${agent.pid}: NRI ${st.nri.state}, policies ${st.policies.map((p) => p.name).join(", ")}`,
  );

  // Kubelet-like walkthrough.
  const cri = ctrd.cri;
  let seq = 0;
  const pods: Record<string, Pod> = {};
  const podIn = async (ns: string) => {
    pods[ns] ??= await cri.runPodSandbox({ name: `demo-${ns}`, namespace: ns, uid: `demo-${ns}-uid` });
    return pods[ns]!;
  };
  const record = (r: Omit<Row, "n">) => {
    const row = { n: rows.length + 1, ...r };
    rows.push(row);
    const mark = row.result === "ALLOWED" ? paint("32", "ALLOWED") : paint("31", "DENIED ");
    say(`   [${row.n}] ${mark} ${row.action} ${short(row.image, h)} in ${row.namespace}: ${row.story}`);
    if (row.result === "DENIED") say(`       reason: ${short(row.why, h)}`);
  };
  const pull = async (ns: string, img: PushedImage | string, expected: Row["expected"], story: string) => {
    const ref = typeof img === "string" ? img : img.ref;
    try {
      await cri.pullImage(ref, { podNamespace: ns });
      record({ namespace: ns, action: "pull", image: ref, expected, result: "ALLOWED", why: "", story });
    } catch (e) {
      if (!(e instanceof CriError)) throw e;
      record({
        namespace: ns,
        action: "pull",
        image: ref,
        expected,
        result: "DENIED",
        why: reasonOf(e),
        story,
      });
    }
  };
  const create = async (
    ns: string,
    ref: string,
    expected: Row["expected"],
    story: string,
    expectLog?: string,
  ) => {
    const pod = await podIn(ns);
    try {
      const id = await cri.createContainer(pod, { name: `c${++seq}`, image: ref });
      await cri.startContainer(id);
      if (expectLog) await cri.waitForLog(id, expectLog);
      record({ namespace: ns, action: "create", image: ref, expected, result: "ALLOWED", why: "", story });
    } catch (e) {
      if (!(e instanceof CriError)) throw e;
      record({
        namespace: ns,
        action: "create",
        image: ref,
        expected,
        result: "DENIED",
        why: reasonOf(e),
        story,
      });
    }
  };

  step("7. Pulls and container creations, as kubelet would do them");
  await pull("team-a", appA, "ALLOWED", "cosign-signed by team A: the pull verifier asks the agent");
  await create(
    "team-a",
    appA.ref,
    "ALLOWED",
    "team-a's policy accepts team A's cosign signature",
    "hello from demo/app-a:v1",
  );
  await pull("team-b", appB, "ALLOWED", "notation-signed by team B");
  await create(
    "team-b",
    appB.ref,
    "ALLOWED",
    "team-b's policy accepts team B's notation signature",
    "hello from demo/app-b:v1",
  );
  await pull(
    "team-a",
    unsigned,
    "DENIED",
    "no policy in use accepts an unsigned image: blocked before any layer is fetched",
  );
  await create(
    "team-b",
    appA.ref,
    "DENIED",
    "cross-tenant: already on the node (team-a pulled it), but team-b requires notation",
  );
  await create(
    "team-a",
    appB.ref,
    "DENIED",
    "cross-tenant, the other way: team-a requires team A's cosign key",
  );
  const preloaded = buildBusyboxArchive({
    name: `${h}/demo/preloaded:v1`,
    marker: "preloaded",
    dir: path.join(work, "preloaded"),
  });
  ctrd.ctr(["-n", "k8s.io", "image", "import", "--platform", "linux/amd64", preloaded.tarball]);
  say(
    `   (${short(preloaded.name, h)} imported with ctr: in the node's image store, never pulled, never verified at pull)`,
  );
  await create(
    "team-a",
    preloaded.name,
    "DENIED",
    "pre-existing image: no pull happens, the create-time gate checks it anyway",
  );
  await create(
    "team-a",
    appA.ref,
    "ALLOWED",
    "team-a's own image still starts (verdict cached by digest and policy revision)",
  );

  step("8. What happened and why");
  const cols = ["#", "namespace", "action", "image", "result", "why"];
  const table = rows.map((r) => [
    String(r.n),
    r.namespace,
    r.action,
    short(r.image, h),
    r.result,
    tableWhy(r),
  ]);
  const widths = cols.map((c, i) =>
    Math.min(i === 5 ? 200 : 40, Math.max(c.length, ...table.map((t) => t[i]!.length))),
  );
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  say(line(cols));
  say(line(widths.map((w) => "-".repeat(w))));
  for (const t of table) say(line(t));

  const wrong = rows.filter((r) => r.result !== r.expected);
  say();
  if (wrong.length > 0) {
    for (const r of wrong)
      say(paint("31", `UNEXPECTED: step ${r.n} was ${r.result}, expected ${r.expected}`));
    say(`agent log: ${agent.logFile}`);
    return 1;
  }
  say(paint("1;32", `demo: all ${rows.length} outcomes as expected`));
  return 0;
}

let exitCode = 1;
let stopping = false;
const onSignal = (sig: NodeJS.Signals) => {
  if (stopping) return;
  stopping = true;
  say(`\ndemo: ${sig}, tearing down`);
  teardown().finally(() => process.exit(130));
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

main()
  .then(
    (code) => {
      exitCode = code;
    },
    (e: unknown) => {
      say(paint("31", `demo failed: ${e instanceof Error ? e.message : String(e)}`));
      if (agent && existsSync(agent.logFile))
        say(
          `--- agent log (last lines) ---\n${readFileSync(agent.logFile, "utf8").split("\n").slice(-15).join("\n")}`,
        );
      exitCode = 1;
    },
  )
  .finally(async () => {
    if (stopping) return;
    step("9. Teardown");
    try {
      await teardown();
      say("   agent, containerd (pods, shims, mounts), registry stopped; demo directory removed");
    } catch (e) {
      say(paint("31", `teardown: ${(e as Error).message}`));
      exitCode = exitCode || 1;
    }
    process.exit(exitCode);
  });
