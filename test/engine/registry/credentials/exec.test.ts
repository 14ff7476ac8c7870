// The plugin runner's bounds: a plugin that hangs is killed with everything it started, and
// one that floods stdout is stopped at the cap — both typed REGISTRY_AUTH errors.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runPlugin } from "../../../../src/engine/registry/credentials/exec.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "tollgate-exec-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function script(name: string, body: string): string {
  const f = path.join(dir, name);
  writeFileSync(f, `#!/bin/sh\n${body}\n`);
  chmodSync(f, 0o755);
  return f;
}

// Running, not a zombie waiting for a reaper (a container's PID 1 may never reap orphans).
const alive = (pid: number) => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
};

describe("runPlugin bounds", () => {
  it("a hung plugin and the process it forked are killed at the timeout", async () => {
    const pidFile = path.join(dir, "child.pid");
    const file = script("hang", `sleep 60 &\necho $! > ${pidFile}\nwait`);
    const t = Date.now();
    await expect(
      runPlugin({ file, args: [], input: "", label: "plugin hang", timeoutMs: 500, maxOutputBytes: 1024 }),
    ).rejects.toMatchObject({
      code: "REGISTRY_AUTH",
      message: "plugin hang did not answer within 500 ms",
      details: { execFailure: "timeout" },
    });
    expect(Date.now() - t).toBeLessThan(5000);
    const child = Number(readFileSync(pidFile, "utf8"));
    await new Promise((r) => setTimeout(r, 200));
    expect(alive(child)).toBe(false);
  });

  it("a flood on stdout stops at the cap and is never quoted", async () => {
    const file = script("flood", "yes secret-looking-output");
    const e = await runPlugin({
      file,
      args: [],
      input: "",
      label: "plugin flood",
      timeoutMs: 5000,
      maxOutputBytes: 4096,
    }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: "REGISTRY_AUTH", details: { execFailure: "too-large" } });
    expect((e as Error).message).not.toContain("secret-looking-output");
  });

  it("missing and non-executable files are told apart", async () => {
    await expect(
      runPlugin({
        file: path.join(dir, "nope"),
        args: [],
        input: "",
        label: "p",
        timeoutMs: 1000,
        maxOutputBytes: 10,
      }),
    ).rejects.toMatchObject({ details: { execFailure: "not-found" } });
    const plain = path.join(dir, "plain");
    writeFileSync(plain, "#!/bin/sh\n");
    await expect(
      runPlugin({ file: plain, args: [], input: "", label: "p", timeoutMs: 1000, maxOutputBytes: 10 }),
    ).rejects.toMatchObject({ details: { execFailure: "not-executable" } });
  });
});
