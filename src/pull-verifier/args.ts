// containerd's bindir verifier contract (protocols.md §4): argv
// `-name <ref> -digest <alg:hex> -stdin-media-type application/vnd.oci.descriptor.v1+json`,
// one JSON descriptor on stdin, exit 0 = allow, stdout = reason (first 32768 bytes kept).
import { UsageError } from "../base/errors.js";
import { type Descriptor, descriptorFromJson } from "../base/descriptor.js";
import { isDigest } from "../base/digest.js";
import { type FlagGrammar, parseFlags } from "../base/flags.js";

export const DESCRIPTOR_MEDIA_TYPE = "application/vnd.oci.descriptor.v1+json";
export const MAX_STDIN_BYTES = 64 * 1024;
/** containerd keeps the first 32768 bytes of stdout; stay below so nothing is cut mid-word. */
export const MAX_REASON_BYTES = 32_000;

export interface VerifierArgs {
  name: string;
  digest: string;
  stdinMediaType?: string;
}

/** The contract's flags, Go-style (`-x v`, `--x v`, `-x=v`); unknown flags are skipped. */
const CONTRACT_FLAGS: FlagGrammar = {
  flags: { name: { kind: "string" }, digest: { kind: "string" }, "stdin-media-type": { kind: "string" } },
  go: true,
  allowEmpty: true,
  repeat: "last",
};

export function parseArgs(argv: string[]): VerifierArgs {
  const p = parseFlags(argv, CONTRACT_FLAGS);
  if (p.problems.length > 0) throw new UsageError(p.problems[0]!);
  const vals = Object.fromEntries(p.values) as Record<string, string | undefined>;
  const name = vals.name;
  const digest = vals.digest;
  if (!name) throw new UsageError("missing -name");
  if (!digest || !isDigest(digest))
    throw new UsageError(`missing or malformed -digest ${JSON.stringify(digest ?? "")}`);
  const mt = vals["stdin-media-type"];
  if (mt !== undefined && mt !== DESCRIPTOR_MEDIA_TYPE)
    throw new UsageError(`unsupported -stdin-media-type ${mt}`);
  return { name, digest, stdinMediaType: mt };
}

/** Parses the stdin descriptor; it must describe the same digest as -digest. */
export function parseDescriptor(text: string, digest: string): Descriptor | undefined {
  const t = text.trim();
  if (t === "") return undefined;
  let v: unknown;
  try {
    v = JSON.parse(t.split("\n")[0]!);
  } catch {
    throw new UsageError("stdin is not a JSON descriptor");
  }
  const d = descriptorFromJson(v);
  if (!d) throw new UsageError("stdin descriptor needs a string mediaType, a well-formed digest and a non-negative integer size");
  if (d.digest !== digest)
    throw new UsageError(`stdin descriptor digest ${d.digest} does not match -digest ${digest}`);
  return d;
}

/** Reads stdin up to a cap, giving up after `timeoutMs` (containerd closes it after one line). */
export function readStdin(stream: NodeJS.ReadableStream, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (err?: Error) => {
      clearTimeout(timer);
      stream.removeAllListeners("data");
      stream.removeAllListeners("end");
      stream.removeAllListeners("error");
      if (err) reject(err);
      else resolve(Buffer.concat(chunks).toString("utf8"));
    };
    const timer = setTimeout(() => done(), timeoutMs);
    stream.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_STDIN_BYTES) return done(new UsageError(`stdin larger than ${MAX_STDIN_BYTES} bytes`));
      chunks.push(c);
      // One line is the whole contract; do not wait for EOF once it is here.
      if (c.includes(10)) done();
    });
    stream.on("end", () => done());
    stream.on("error", (e: Error) => done(e));
  });
}

/** Caps the reason to what containerd keeps, on a UTF-8 boundary. */
export function capReason(s: string): string {
  const b = Buffer.from(s.replace(/[\r\n]+/g, " "), "utf8");
  if (b.length <= MAX_REASON_BYTES) return b.toString("utf8");
  return `${b
    .subarray(0, MAX_REASON_BYTES - 16)
    .toString("utf8")
    .replace(/\uFFFD$/, "")} (truncated)`;
}
