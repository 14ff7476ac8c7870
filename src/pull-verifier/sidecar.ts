// The verifier's JSON sidecar: the two settings the pull verifier's fast path needs (the
// agent's socket, its time budget), written by `tollgate install` next to the YAML
// configuration. containerd starts one verifier process per pull, and parsing YAML costs more
// than everything else the fast path does; reading this file needs only JSON.parse. The
// sidecar names the size and mtime of the YAML file it was derived from: after any change to
// that file it no longer matches and the verifier reads the YAML again. No imports beyond
// node:fs / node:path, so the fast path stays small.

// Builtins through getBuiltinModule, not ES imports: in the ESM build an ES import of a
// builtin builds its namespace from every export, ~3 ms of every pull's start-up for these
// two (bench: pull verifier start-up).
const { readFileSync, statSync } = process.getBuiltinModule("node:fs");
const path = process.getBuiltinModule("node:path");

export const SIDECAR_FORMAT = "tollgate-verifier-sidecar/v1";

export interface VerifierSettings {
  socket: string;
  timeoutMs: number;
}

interface SidecarFile {
  format: string;
  /** The YAML file the settings were derived from, as it was when the sidecar was written. */
  config: { size: number; mtimeMs: number };
  api: { socket: string };
  pullVerifier: { timeoutMs: number };
}

/** `/etc/tollgate/agent.yaml` → `/etc/tollgate/agent.verifier.json`. */
export function sidecarPath(configPath: string): string {
  const ext = path.extname(configPath);
  return path.join(path.dirname(configPath), `${path.basename(configPath, ext)}.verifier.json`);
}

/** The sidecar text for the configuration file `configPath` as it is on disk now. */
export function renderSidecar(configPath: string, settings: VerifierSettings): string {
  const st = statSync(configPath);
  const v: SidecarFile = {
    format: SIDECAR_FORMAT,
    config: { size: st.size, mtimeMs: st.mtimeMs },
    api: { socket: settings.socket },
    pullVerifier: { timeoutMs: settings.timeoutMs },
  };
  return `${JSON.stringify(v, null, 2)}\n`;
}

export type SidecarResult = { ok: true; settings: VerifierSettings } | { ok: false; why: string };

/**
 * The settings from the sidecar of `configPath`, if it exists, is well-formed and still
 * matches the configuration file; otherwise why not (the caller reads the YAML instead).
 */
export function readSidecar(configPath: string): SidecarResult {
  const file = sidecarPath(configPath);
  let v: SidecarFile;
  try {
    v = JSON.parse(readFileSync(file, "utf8")) as SidecarFile;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { ok: false, why: code ? `${file}: ${code}` : `${file}: not JSON` };
  }
  if (
    v === null ||
    typeof v !== "object" ||
    v.format !== SIDECAR_FORMAT ||
    typeof v.config?.size !== "number" ||
    typeof v.config?.mtimeMs !== "number" ||
    typeof v.api?.socket !== "string" ||
    v.api.socket === "" ||
    !Number.isInteger(v.pullVerifier?.timeoutMs) ||
    v.pullVerifier.timeoutMs <= 0
  )
    return { ok: false, why: `${file}: not a ${SIDECAR_FORMAT} document` };
  let st: { size: number; mtimeMs: number };
  try {
    st = statSync(configPath);
  } catch (e) {
    return { ok: false, why: `${configPath}: ${(e as NodeJS.ErrnoException).code ?? "unreadable"}` };
  }
  if (st.size !== v.config.size || st.mtimeMs !== v.config.mtimeMs)
    return {
      ok: false,
      why: `${file} is older than ${configPath} (the configuration changed since install)`,
    };
  return { ok: true, settings: { socket: v.api.socket, timeoutMs: v.pullVerifier.timeoutMs } };
}
