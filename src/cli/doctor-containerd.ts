// Doctor: the containerd binary (version) and its configuration files (readable, parsed,
// imports followed).
import { execFile } from "node:child_process";
import { PLUGIN } from "../containerd/config.js";
import { type LoadedConfig, loadContainerdConfig } from "./containerd-config.js";
import type { Add } from "./doctor-finding.js";

export function parseContainerdVersion(
  text: string,
): { major: number; minor: number; patch: number; raw: string } | undefined {
  const m = /\bv?(\d+)\.(\d+)\.(\d+)([-+.~][0-9A-Za-z.+~-]*)?/.exec(text);
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), raw: m[0] };
}

export async function checkVersion(bin: string, add: Add): Promise<void> {
  const text = await new Promise<{ out?: string; err?: NodeJS.ErrnoException }>((resolve) => {
    execFile(bin, ["--version"], { timeout: 5000, maxBuffer: 64 * 1024, encoding: "utf8" }, (err, stdout) =>
      resolve(err ? { err: err as NodeJS.ErrnoException } : { out: stdout }),
    );
  });
  if (text.err) {
    add({
      id: "containerd.version-unknown",
      check: "containerd",
      severity: "warning",
      message: `cannot run "${bin} --version": ${text.err.code === "ENOENT" ? "not found" : text.err.message.split("\n")[0]}`,
      fix: "run the doctor on the node (or in the agent pod with the host's containerd binary) or pass --containerd-bin",
    });
    return;
  }
  const v = parseContainerdVersion(text.out ?? "");
  if (!v) {
    add({
      id: "containerd.version-unknown",
      check: "containerd",
      severity: "warning",
      message: `unrecognised version output: ${(text.out ?? "").trim().slice(0, 200)}`,
    });
    return;
  }
  if (v.major < 2) {
    add({
      id: "containerd.too-old",
      check: "containerd",
      severity: "error",
      message: `containerd ${v.raw} has no image verifier plugin (io.containerd.image-verifier.v1.bindir): pulls are never verified`,
      fix: "upgrade containerd to 2.1 or later",
    });
  } else if (v.major === 2 && v.minor === 0) {
    add({
      id: "containerd.cri-no-transfer",
      check: "containerd",
      severity: "warning",
      message: `containerd ${v.raw}: the CRI plugin does not pull through the transfer service, so kubelet pulls skip the verifier (only the create-time gate applies)`,
      fix: "upgrade containerd to 2.1 or later",
    });
  } else {
    add({ id: "containerd.version", check: "containerd", severity: "ok", message: `containerd ${v.raw}` });
  }
}

// config files

export function checkConfigFiles(file: string, add: Add): LoadedConfig {
  const cfg = loadContainerdConfig(file);
  for (const e of cfg.errors) {
    if (e.file === file && e.message === "no such file") {
      add({
        id: "config.missing",
        check: "config",
        severity: "info",
        message: `${file} does not exist: containerd runs with its built-in defaults (checked below as such)`,
      });
      continue;
    }
    add({
      id: "config.unreadable",
      check: "config",
      severity: "error",
      message: `${e.file}: ${e.message} (containerd refuses to start with a configuration it cannot load)`,
      fix: e.file === file ? "fix the file" : `fix or remove the file, or the imports entry that names it`,
    });
  }
  for (const g of cfg.unmatchedGlobs)
    add({
      id: "config.import-unmatched",
      check: "config",
      severity: "info",
      message: `imports pattern ${g} matches no file`,
    });
  if (cfg.files.length > 0)
    add({
      id: "config.files",
      check: "config",
      severity: "ok",
      message: `read ${cfg.files.join(", ")} (config version ${cfg.version || "1 (none given)"})`,
    });
  if (cfg.version > 3)
    add({
      id: "config.version",
      check: "config",
      severity: "error",
      message: `config version ${cfg.version} is newer than containerd 2.x understands (3)`,
      fix: "set version = 3",
    });
  else if (cfg.files.length > 0 && cfg.version < 2)
    add({
      id: "config.version-legacy",
      check: "config",
      severity: "warning",
      message:
        "legacy config version 1 (or no version): containerd 2 migrates it; plugin settings are easy to misplace",
      fix: 'write "version = 3" and the io.containerd.* plugin names',
    });
  for (const [plugin, what] of [
    [PLUGIN.nri, "NRI (the create-time gate)"],
    [PLUGIN.bindir, "the image verifier (pull-time enforcement)"],
    [PLUGIN.transfer, "the transfer service (every verified pull)"],
  ] as const) {
    if (cfg.disabledPlugins.includes(plugin))
      add({
        id: "config.plugin-disabled",
        check: "config",
        severity: "error",
        message: `disabled_plugins contains ${plugin}: ${what} is off`,
        fix: `remove ${plugin} from disabled_plugins`,
      });
  }
  return cfg;
}
