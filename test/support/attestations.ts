// The attestation scenario the engine integration test and the containerd e2e share: images
// signed with cosign and attested with the real `cosign attest` in every way a policy must
// tell apart, and the ImagePolicy that asks for provenance from one builder plus a fresh scan.
import type { PushedImage } from "./images.js";
import { crane, pushBusyboxImage } from "./images.js";
import { type CosignKeys, cosignAttest, cosignSign } from "./signing.js";

export const SOURCE = "git+https://git.example/app@refs/heads/main";
const DAY = 86_400_000;

export function provenancePredicate(builder: string, source = SOURCE) {
  return {
    buildDefinition: { buildType: "https://example.com/build@v1", externalParameters: { source } },
    runDetails: { builder: { id: builder } },
  };
}

export function vulnPredicate(finished: Date, critical = 0) {
  const t = finished.toISOString();
  return {
    invocation: { uri: "https://ci.example/scan" },
    scanner: { uri: "pkg:github/aquasecurity/trivy@0.50.0", version: "0.50.0", result: { critical } },
    metadata: { scanStartedOn: t, scanFinishedOn: t },
  };
}

/**
 * An ImagePolicy: cosign key `keyPem` signed the image, a SLSA v1 provenance from `builder`
 * built from git.example and a vuln scan without criticals, finished less than 7 days ago.
 */
export function attestationPolicy(
  name: string,
  keyPem: string,
  builder: string,
  extra: Record<string, unknown> = {},
) {
  return {
    apiVersion: "tollgate.dev/v1alpha1",
    kind: "ImagePolicy",
    metadata: { name },
    spec: {
      verifiers: [{ name: "release", cosign: { keys: [{ name: "release", pem: keyPem }] } }],
      attestations: [
        {
          name: "provenance",
          predicateType: "slsaprovenance1",
          verifier: "release",
          conditions: [
            { expression: `predicate.runDetails.builder.id == "${builder}"`, message: `built by ${builder}` },
            {
              expression: `predicate.buildDefinition.externalParameters.source.startsWith("git+https://git.example/")`,
              message: "built from git.example",
            },
          ],
        },
        {
          name: "scan",
          predicateType: "vuln",
          verifier: "release",
          conditions: [
            { expression: "predicate.scanner.result.critical == 0", message: "no critical vulnerabilities" },
          ],
        },
      ],
      conditions: [
        {
          expression: `now - timestamp(attestations.scan.predicate.metadata.scanFinishedOn) < duration("168h")`,
          message: "vulnerability scan is younger than 7 days",
        },
      ],
      ...extra,
    },
  };
}

export const SCENARIO = [
  "bundle",
  "legacy",
  "otherbuilder",
  "missing",
  "transplant",
  "untrusted",
  "oldscan",
] as const;
export type ScenarioImage = (typeof SCENARIO)[number];

/**
 * Pushes and signs (with `key`) one image per scenario at `place(n)` = [repository, tag]:
 *   bundle/legacy  provenance from `builder` + fresh scan, bundle / legacy .att format
 *   otherbuilder   provenance from another builder
 *   missing        scan only
 *   transplant     the legacy image's .att (naming the legacy digest) copied to this image
 *   untrusted      provenance attested with `rogue`
 *   oldscan        the scan finished 30 days ago
 * Fresh scans finished at `scanAt`. `only` limits the set (transplant needs legacy).
 */
export async function pushAttestedImages(o: {
  registryHost: string;
  place: (n: ScenarioImage) => [string, string];
  key: CosignKeys;
  rogue: CosignKeys;
  builder: string;
  scanAt: Date;
  only?: readonly ScenarioImage[];
}): Promise<Partial<Record<ScenarioImage, PushedImage>> & Record<"bundle" | "legacy", PushedImage>> {
  const want = new Set<ScenarioImage>(o.only ?? SCENARIO);
  const img = {} as Record<ScenarioImage, PushedImage>;
  for (const n of SCENARIO) {
    if (!want.has(n)) continue;
    const [name, tag] = o.place(n);
    img[n] = pushBusyboxImage(o.registryHost, name, tag, { marker: n });
  }
  // Sequential per subject: cosign rewrites the shared referrers tag index.
  for (const n of SCENARIO) if (want.has(n)) await cosignSign({ ref: img[n].pinned, keyDir: o.key });
  const attest = async (
    n: ScenarioImage,
    type: string,
    predicate: unknown,
    w: { legacy?: boolean; by?: CosignKeys } = {},
  ) => {
    if (!want.has(n)) return;
    await cosignAttest({
      ref: img[n].pinned,
      keyDir: w.by ?? o.key,
      type,
      predicate,
      ...(w.legacy ? { format: "legacy" as const } : {}),
    });
  };
  const fresh = vulnPredicate(o.scanAt);
  await attest("bundle", "slsaprovenance1", provenancePredicate(o.builder));
  await attest("bundle", "vuln", fresh);
  await attest("legacy", "slsaprovenance1", provenancePredicate(o.builder), { legacy: true });
  await attest("legacy", "vuln", fresh, { legacy: true });
  await attest("otherbuilder", "slsaprovenance1", provenancePredicate("https://evil.example/builder"));
  await attest("otherbuilder", "vuln", fresh);
  await attest("missing", "vuln", fresh);
  const att = (p: PushedImage) => `${p.repo}:${p.digest.replace(":", "-")}.att`;
  if (want.has("transplant")) crane(["copy", "--insecure", att(img.legacy), att(img.transplant)]);
  await attest("transplant", "vuln", fresh);
  await attest("untrusted", "slsaprovenance1", provenancePredicate(o.builder), { by: o.rogue });
  await attest("untrusted", "vuln", fresh);
  await attest("oldscan", "slsaprovenance1", provenancePredicate(o.builder));
  await attest("oldscan", "vuln", vulnPredicate(new Date(Date.now() - 30 * DAY)));
  return img;
}
