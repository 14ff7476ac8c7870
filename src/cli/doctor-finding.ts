// What every doctor check reports, and containerd's defaults as the checks read them.
export type Severity = "ok" | "info" | "warning" | "error";

export interface Finding {
  /** Stable identifier, e.g. "bindir.missing" (tests and scripts match on it). */
  id: string;
  /** Area: containerd, config, nri, bindir, cri, pull, agent. */
  check: string;
  severity: Severity;
  message: string;
  fix?: string;
}

export const DEFAULTS = {
  containerdConfig: "/etc/containerd/config.toml",
  nriSocket: "/var/run/nri/nri.sock",
  nriRequestTimeout: "2s",
  binDir: "/opt/containerd/image-verifier/bin",
  maxVerifiers: 10,
  perVerifierTimeout: "10s",
};

export type Add = (f: Finding) => void;
