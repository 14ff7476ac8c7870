// Shared benchmark fixture: the real docker-registry on loopback with busybox images signed
// by the real notation (JWS and COSE) and cosign CLIs, offline, plus ImagePolicy documents
// trusting exactly those keys.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { type PushedImage, pushBusyboxImage } from "../../test/support/images.js";
import { type LocalRegistry, startRegistry } from "../../test/support/registry.js";
import {
  type CosignKeys,
  cosignGenerateKeyPair,
  cosignSign,
  type NotationConfig,
  notationInit,
  notationSign,
} from "../../test/support/signing.js";

export interface Fixture {
  work: string;
  registry: LocalRegistry;
  notation: NotationConfig;
  cosign: CosignKeys;
  certPem: string;
  /** jws: notation JWS; cose: notation COSE; cosign: cosign bundle; unsigned: no signature. */
  images: Record<"jws" | "cose" | "cosign" | "unsigned", PushedImage>;
  stop(): Promise<void>;
}

export const NOTATION_KEY = "tollgate-bench";

export async function startFixture(log: (m: string) => void): Promise<Fixture> {
  const work = mkdtempSync(path.join(os.tmpdir(), "tollgate-bench-"));
  const registry = await startRegistry(path.join(work, "registry"));
  try {
    const [notation, cosign] = await Promise.all([
      notationInit({ configDir: path.join(work, "notation"), keyName: NOTATION_KEY }),
      cosignGenerateKeyPair(path.join(work, "cosign")),
    ]);
    log(`fixture: registry ${registry.host}, pushing images`);
    const images = {
      jws: pushBusyboxImage(registry.host, "bench/jws", "v1", { marker: "jws" }),
      cose: pushBusyboxImage(registry.host, "bench/cose", "v1", { marker: "cose" }),
      cosign: pushBusyboxImage(registry.host, "bench/cosign", "v1", { marker: "cosign" }),
      unsigned: pushBusyboxImage(registry.host, "bench/unsigned", "v1", { marker: "unsigned" }),
    };
    log("fixture: signing (notation JWS, notation COSE, cosign bundle)");
    await notationSign({ ref: images.jws.pinned, configDir: notation.configDir, format: "jws" });
    await notationSign({ ref: images.cose.pinned, configDir: notation.configDir, format: "cose" });
    await cosignSign({ ref: images.cosign.pinned, keyDir: cosign });
    return {
      work,
      registry,
      notation,
      cosign,
      certPem: readFileSync(notation.certPath, "utf8"),
      images,
      async stop() {
        await registry.stop();
        rmSync(work, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await registry.stop();
    throw e;
  }
}

export type VerifierChoice = "notation" | "cosign" | "both";

/** An ImagePolicy document trusting the fixture's notation certificate and/or cosign key. */
export function policyDoc(
  f: Pick<Fixture, "certPem" | "cosign">,
  name: string,
  verifiers: VerifierChoice = "both",
  spec: Record<string, unknown> = {},
): Record<string, unknown> {
  const notary = {
    name: "notary",
    notation: {
      trustedIdentities: [`x509.subject: CN=${NOTATION_KEY},O=Notary,L=Seattle,ST=WA,C=US`],
      trustStores: [{ type: "ca", name: "release", certificates: f.certPem }],
    },
  };
  const cosign = { name: "cosign", cosign: { keys: [{ name: "release", pem: f.cosign.publicKeyPem }] } };
  return {
    apiVersion: "tollgate.dev/v1alpha1",
    kind: "ImagePolicy",
    metadata: { name },
    spec: {
      verifiers: verifiers === "notation" ? [notary] : verifiers === "cosign" ? [cosign] : [notary, cosign],
      match: "AnyOf",
      cache: { positiveTTLSeconds: 3600, negativeTTLSeconds: 600 },
      ...spec,
    },
  };
}

export function subjectOf(img: PushedImage): { reference: string; digest: string } {
  return { reference: img.ref, digest: img.digest };
}
