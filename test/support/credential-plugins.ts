// Real exec plugins for the credential provider tests: small shell scripts that follow the
// kubelet credential provider and docker credential helper protocols exactly, recording
// each call (stdin, args, env) in files the tests read back.
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

/** A kubelet exec plugin answering `response` (a JSON text, with $IMAGE replaced by the requested image). */
export function writeKubeletPlugin(
  binDir: string,
  name: string,
  o: { response: string; logDir: string; sleepSeconds?: number; exitCode?: number; stderr?: string },
): string {
  mkdirSync(binDir, { recursive: true });
  mkdirSync(o.logDir, { recursive: true });
  const file = path.join(binDir, name);
  const resp = o.response.replace(/'/g, "'\\''");
  writeFileSync(
    file,
    [
      "#!/bin/sh",
      "set -e",
      `log=${o.logDir}/call-$$`,
      "req=$(cat)",
      'printf "%s" "$req" > "$log.stdin"',
      'printf "%s\\n" "$@" > "$log.args"',
      'printf "%s" "$PLUGIN_ENV_PROBE" > "$log.env"',
      o.sleepSeconds ? `sleep ${o.sleepSeconds}` : "",
      o.stderr ? `echo '${o.stderr}' >&2` : "",
      o.exitCode ? `exit ${o.exitCode}` : "",
      // The image from the request, for responses that echo it.
      `image=$(printf "%s" "$req" | sed -n 's/.*"image":"\\([^"]*\\)".*/\\1/p')`,
      `printf '%s' '${resp}' | sed "s#\\$IMAGE#$image#g"`,
      "",
    ].join("\n"),
  );
  chmodSync(file, 0o755);
  return file;
}

/** A docker-credential-<name> helper: `get` with the server URL on stdin; a table server → "user secret". */
export function writeDockerHelper(
  binDir: string,
  name: string,
  table: Record<string, [string, string]>,
  logDir: string,
): string {
  mkdirSync(binDir, { recursive: true });
  mkdirSync(logDir, { recursive: true });
  const file = path.join(binDir, `docker-credential-${name}`);
  const cases = Object.entries(table)
    .map(
      ([server, [user, secret]]) =>
        `  ${server}) printf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}' "$server" '${user}' '${secret}' ;;`,
    )
    .join("\n");
  writeFileSync(
    file,
    [
      "#!/bin/sh",
      `[ "$1" = get ] || { echo "unsupported action $1"; exit 1; }`,
      "server=$(cat)",
      `printf "%s" "$server" > ${logDir}/call-$$`,
      'case "$server" in',
      cases,
      '  *) echo "credentials not found in native keychain"; exit 1 ;;',
      "esac",
      "",
    ].join("\n"),
  );
  chmodSync(file, 0o755);
  return file;
}

/** The recorded calls of a plugin (each call's stdin). */
export function calls(logDir: string): string[] {
  try {
    return readdirSync(logDir)
      .filter((f) => f.endsWith(".stdin") || /^call-\d+$/.test(f))
      .map((f) => readFileSync(path.join(logDir, f), "utf8"));
  } catch {
    return [];
  }
}

export function lastArgsAndEnv(logDir: string): { args: string[]; env: string } {
  const f = readdirSync(logDir).find((x) => x.endsWith(".args"));
  if (!f) return { args: [], env: "" };
  const base = f.slice(0, -".args".length);
  return {
    args: readFileSync(path.join(logDir, f), "utf8")
      .split("\n")
      .filter((x) => x !== ""),
    env: readFileSync(path.join(logDir, `${base}.env`), "utf8"),
  };
}

/** A kubelet CredentialProviderConfig with one entry per plugin (v1 API, defaults filled). */
export function writeKubeletConfig(
  file: string,
  plugins: Array<
    { name: string; matchImages: string[]; defaultCacheDuration?: string } & Record<string, unknown>
  >,
): string {
  writeFileSync(
    file,
    JSON.stringify({
      apiVersion: "kubelet.config.k8s.io/v1",
      kind: "CredentialProviderConfig",
      providers: plugins.map((p) => ({
        defaultCacheDuration: "1m",
        apiVersion: "credentialprovider.kubelet.k8s.io/v1",
        ...p,
      })),
    }),
  );
  return file;
}
