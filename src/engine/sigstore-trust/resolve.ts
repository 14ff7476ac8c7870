// The engine's step between a compiled policy and its verifiers: keyless verifiers whose
// trusted root comes from TUF get the root held now. The resolved configuration object is
// reused while the root is unchanged (keyless.ts prepares trust material once per object).
import { EngineError } from "../errors.js";
import type { CompiledPolicy, CompiledVerifier, CosignConfig } from "../policy/model.js";
import type { TrustedRootResolver, TufSource } from "./types.js";

type Keyless = NonNullable<CosignConfig["keyless"]>;

const resolved = new WeakMap<Keyless, { digest: string; cfg: Keyless }>();

/** The TUF sources a policy's keyless verifiers name. */
export function tufSourcesOf(policy: Pick<CompiledPolicy, "verifiers">): TufSource[] {
  const out: TufSource[] = [];
  for (const v of policy.verifiers)
    if (v.kind === "cosign" && v.cosign.keyless?.tuf) out.push(v.cosign.keyless.tuf);
  return out;
}

/**
 * A policy whose TUF-sourced keyless verifiers carry the current trusted root. The same
 * policy object when none does. Rejects with TRUST_ROOT_UNAVAILABLE (transient: the
 * failure policy answers) when no root can be had.
 */
export async function withTrustedRoots(
  policy: CompiledPolicy,
  resolver: TrustedRootResolver | undefined,
  signal?: AbortSignal,
): Promise<CompiledPolicy> {
  if (!policy.verifiers.some((v) => v.kind === "cosign" && v.cosign.keyless?.tuf)) return policy;
  if (!resolver) {
    const src = tufSourcesOf(policy)[0]!;
    throw new EngineError(
      "TRUST_ROOT_UNAVAILABLE",
      `the keyless trusted root comes from TUF mirror ${src.mirror}, but this process has no TUF client (agent configuration sigstore.tufCacheDir)`,
    );
  }
  const verifiers: CompiledVerifier[] = await Promise.all(
    policy.verifiers.map(async (v): Promise<CompiledVerifier> => {
      const kl = v.kind === "cosign" ? v.cosign.keyless : undefined;
      if (v.kind !== "cosign" || !kl?.tuf) return v;
      const root = await resolver.get(kl.tuf, signal);
      let hit = resolved.get(kl);
      if (hit?.digest !== root.digest) {
        hit = { digest: root.digest, cfg: { ...kl, trustedRoot: root.json } };
        resolved.set(kl, hit);
      }
      return { ...v, cosign: { ...v.cosign, keyless: hit.cfg } };
    }),
  );
  return { ...policy, verifiers };
}

/**
 * What the cached signature results of `policy` depend on beyond its revision: the digests
 * of the TUF-sourced roots held now. A new root (rotation, removed key) starts new results.
 */
export function trustEpoch(
  policy: Pick<CompiledPolicy, "verifiers">,
  resolver?: TrustedRootResolver,
): string {
  const parts = tufSourcesOf(policy).map((s) => resolver?.peek(s)?.digest.slice(0, 16) ?? "-");
  return parts.length === 0 ? "" : `#tuf:${parts.join(",")}`;
}
