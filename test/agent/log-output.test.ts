// The agent's log output on a real pipe: a reader that lags never blocks the agent, and no
// line is lost once it reads again; a reader that is gone does not end the agent.
import { execFileSync, spawn } from "node:child_process";
import {
  closeSync,
  constants,
  createReadStream,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const repoRoot = path.resolve(import.meta.dirname, "../..");
// Inside the repository (an ignored folder), so the children resolve pino from node_modules.
mkdirSync(path.join(repoRoot, ".cache"), { recursive: true });
const dir = mkdtempSync(path.join(repoRoot, ".cache", "test-log-output-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const LINES = 4000;

/** A process that logs as the agent does (pino on stdoutLog) and reports on stderr. */
function child(body: string): string {
  const file = path.join(dir, `child-${Math.random().toString(36).slice(2)}.mts`);
  writeFileSync(
    file,
    `import { pino } from "pino";
import { stdoutLog } from ${JSON.stringify(path.join(repoRoot, "src/agent/log-output.ts"))};
const out = stdoutLog();
const log = pino({ base: null }, out.stream);
const report = (o: object) => process.stderr.write(JSON.stringify(o) + "\\n");
${body}
`,
  );
  return file;
}

function run(file: string, stdout: number | "pipe") {
  const p = spawn(process.execPath, ["--import", "tsx", file], {
    cwd: repoRoot,
    stdio: ["ignore", stdout, "pipe"],
  });
  let stderr = "";
  const reports: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  p.stderr?.setEncoding("utf8").on("data", (c: string) => {
    stderr += c;
    for (const line of c.split("\n")) if (line.startsWith("{")) reports.push(JSON.parse(line));
    for (const w of waiters.splice(0)) w();
  });
  let done = false;
  const exited = new Promise<number | null>((resolve) =>
    p.on("exit", (code) => {
      done = true;
      for (const w of waiters.splice(0)) w();
      resolve(code);
    }),
  );
  const report = async (n: number, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    while (reports.length < n) {
      if (done) throw new Error(`the child exited before report ${n}: ${stderr.slice(-1500)}`);
      if (Date.now() > deadline) {
        p.kill("SIGKILL");
        throw new Error(`no report ${n} from the child within ${timeoutMs} ms (are its writes blocked?)`);
      }
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 200);
      });
    }
    return reports[n - 1]!;
  };
  return { p, exited, report, stderr: () => stderr };
}

describe("agent log output (stdout)", () => {
  it("a FIFO reader that lags holds up neither the writes nor the event loop, and gets every line once it reads", async () => {
    const fifo = path.join(dir, "stdout.fifo");
    execFileSync("mkfifo", [fifo]);
    const file = child(`
const t0 = performance.now();
for (let i = 0; i < ${LINES}; i++) log.info({ i, pad: "x".repeat(200) }, "line");
const writeMs = performance.now() - t0;
const queued = process.stdout.writableLength;
const s = performance.now();
await new Promise((r) => setTimeout(r, 10));
const timerLateMs = performance.now() - s - 10;
const early = await out.drain(50);
report({ writeMs, queued, timerLateMs, early });
report({ drained: await out.drain(60_000) });
`);
    // As containerd's shim holds a container's stdout: a FIFO nobody reads yet.
    const w = openSync(fifo, constants.O_RDWR);
    const c = run(file, w);
    closeSync(w);
    // Nothing reads the FIFO until the writer has reported: a write that blocked would
    // never get there and the test would time out.
    const first = await c.report(1);
    expect(first.queued as number).toBeGreaterThan(0); // the pipe was full: lines waited in memory
    expect(first.early).toBe(false); // drain() gives up after its timeout while the reader lags
    expect(first.timerLateMs as number).toBeLessThan(1000);
    const chunks: Buffer[] = [];
    const read = new Promise<void>((resolve, reject) => {
      createReadStream(fifo)
        .on("data", (b) => chunks.push(b as Buffer))
        .on("end", () => resolve())
        .on("error", reject);
    });
    expect(await c.report(2)).toEqual({ drained: true });
    expect(await c.exited).toBe(0);
    await read;
    const lines = Buffer.concat(chunks).toString("utf8").trimEnd().split("\n");
    expect(lines).toHaveLength(LINES);
    expect(lines.map((l) => (JSON.parse(l) as { i: number }).i)).toEqual([...Array(LINES).keys()]);
  }, 60_000);

  it("a reader that went away (EPIPE) is said once on stderr and the process carries on", async () => {
    const file = child(`
process.stdout.write(""); // opens the stream before the reader is gone
await new Promise((r) => setTimeout(r, 300));
for (let i = 0; i < 200; i++) {
  log.info({ i, pad: "x".repeat(500) }, "line");
  await new Promise((r) => setImmediate(r));
}
report({ alive: true, drained: await out.drain(1000) });
`);
    const c = run(file, "pipe");
    c.p.stdout?.destroy();
    expect(await c.report(1)).toEqual({ alive: true, drained: true });
    expect(await c.exited).toBe(0);
    const said = c.stderr().match(/standard output failed \(EPIPE\)/g) ?? [];
    expect(said).toHaveLength(1);
  }, 60_000);
});
