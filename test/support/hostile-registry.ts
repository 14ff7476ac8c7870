// A hostile in-test registry: the in-test OCI registry (Referrers API on) plus answers no
// honest registry gives — thousands of referrers, JSON nested deeper than any parser's
// stack, bytes that are not UTF-8 — each on exactly the paths a test picks.
import type http from "node:http";
import { type FakeRegistry, sha256, startFakeRegistry } from "../engine/registry/fake-registry.js";

export { sha256 };

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const NOTATION_SIGNATURE = "application/vnd.cncf.notary.signature";
export const COSIGN_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json";
const EMPTY = { mediaType: "application/vnd.oci.empty.v1+json", digest: sha256("{}"), size: 2 };

export interface HostileRegistry extends FakeRegistry {
  /** Stores a small image (config + one layer) and tags it; returns its manifest descriptor. */
  putImage(repo: string, tag: string, marker: string): { digest: string; size: number; ref: string };
  /** Stores a signature manifest of `kind` for `subject` whose one layer is `envelope`. */
  putSignature(
    repo: string,
    subject: { digest: string; size: number },
    kind: "notation" | "cosign-bundle",
    envelope: Buffer | string,
  ): string;
  /** Answers the referrers of `digest` with `count` signature descriptors (all made up). */
  floodReferrers(repo: string, digest: string, count: number, artifactType?: string): void;
  /** Answers GET `pathname` with 200 and `body` (content type `mediaType`). */
  answer(pathname: string, body: Buffer, mediaType?: string): void;
}

/** `[[[[…0…]]]]` nested `depth` times (objects when `objects`). */
export function nestedJson(depth: number, objects = false): Buffer {
  return Buffer.from(
    objects ? `${'{"a":'.repeat(depth)}0${"}".repeat(depth)}` : `${"[".repeat(depth)}0${"]".repeat(depth)}`,
  );
}

/** A JSON document whose string values contain bytes that are not valid UTF-8. */
export function invalidUtf8Json(template: object, marker = "@@BAD@@"): Buffer {
  const text = JSON.stringify(template);
  const parts = text.split(marker);
  const bad = Buffer.from([0xc3, 0x28, 0xff, 0xfe, 0xed, 0xa0, 0x80]);
  return Buffer.concat(parts.flatMap((p, i) => (i === 0 ? [Buffer.from(p)] : [bad, Buffer.from(p)])));
}

export async function startHostileRegistry(): Promise<HostileRegistry> {
  const reg = await startFakeRegistry({ referrersApi: true });
  const answers = new Map<string, { body: Buffer; mediaType: string }>();
  const floods = new Map<string, { count: number; artifactType: string }>();

  reg.use((req: http.IncomingMessage, res: http.ServerResponse, url: URL) => {
    const fixed = answers.get(url.pathname);
    if (fixed && (req.method === "GET" || req.method === "HEAD")) {
      res.writeHead(200, {
        "content-type": fixed.mediaType,
        "content-length": fixed.body.length,
        "docker-content-digest": sha256(fixed.body),
      });
      res.end(req.method === "HEAD" ? undefined : fixed.body);
      return true;
    }
    const flood = floods.get(url.pathname);
    if (flood) {
      const manifests = Array.from({ length: flood.count }, (_, i) => ({
        mediaType: OCI_MANIFEST,
        digest: sha256(`made-up referrer ${i}`),
        size: 500 + (i % 100),
        artifactType: flood.artifactType,
      }));
      const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }));
      res.writeHead(200, { "content-type": OCI_INDEX, "content-length": body.length });
      res.end(body);
      return true;
    }
    return false;
  });

  const hostile = reg as HostileRegistry;
  hostile.putImage = (repo, tag, marker) => {
    const layer = Buffer.from(`layer ${marker}`);
    const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", marker }));
    const ld = reg.putBlob(repo, layer);
    const cd = reg.putBlob(repo, config);
    const m = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: cd, size: config.length },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: ld, size: layer.length }],
    });
    const digest = reg.putManifest(repo, m, { tag, mediaType: OCI_MANIFEST });
    return { digest, size: Buffer.byteLength(m), ref: `${reg.host}/${repo}:${tag}` };
  };
  hostile.putSignature = (repo, subject, kind, envelope) => {
    const env = Buffer.isBuffer(envelope) ? envelope : Buffer.from(envelope);
    const ed = reg.putBlob(repo, env);
    reg.putBlob(repo, "{}");
    const notation = kind === "notation";
    return reg.putManifest(
      repo,
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        ...(notation ? {} : { artifactType: COSIGN_BUNDLE }),
        config: notation ? { ...EMPTY, mediaType: NOTATION_SIGNATURE } : EMPTY,
        layers: [
          { mediaType: notation ? "application/jose+json" : COSIGN_BUNDLE, digest: ed, size: env.length },
        ],
        subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.size },
        annotations: { "org.opencontainers.image.created": "2024-01-01T00:00:00Z" },
      }),
      { mediaType: OCI_MANIFEST },
    );
  };
  hostile.floodReferrers = (repo, digest, count, artifactType = NOTATION_SIGNATURE) => {
    floods.set(`/v2/${repo}/referrers/${digest}`, { count, artifactType });
  };
  hostile.answer = (pathname, body, mediaType = OCI_MANIFEST) => {
    answers.set(pathname, { body, mediaType });
  };
  return hostile;
}
