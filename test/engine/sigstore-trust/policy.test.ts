// ImagePolicy `keyless.trustedRoot.tuf`: validation (paths, defaults, refusals), compilation
// (initial root given inline or by ConfigMap, or the public-good root shipped in
// @sigstore/tuf; it must verify under its own keys), revision fingerprints, and the CRD.
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import {
  type CompiledPolicy,
  compilePolicy,
  isPolicyValidationError,
  validatePolicy,
} from "../../../src/engine/policy/index.js";
import { PUBLIC_GOOD_MIRROR } from "../../../src/engine/sigstore-trust/source.js";
import { LocalTufRepo } from "../../support/tuf-repo.js";
import { type Schema, validate as validateSchema } from "../../deploy/schema.js";
import { mapResolver } from "../policy/material.js";

const ID = [
  { issuer: "https://token.actions.githubusercontent.com", subjectRegExp: "^https://github.com/acme/" },
];
const repo = new LocalTufRepo();

function doc(trustedRoot: unknown) {
  return {
    apiVersion: "tollgate.dev/v1alpha1",
    kind: "ImagePolicy",
    metadata: { name: "keyless" },
    spec: { verifiers: [{ name: "sigstore", cosign: { keyless: { trustedRoot, identities: ID } } }] },
  };
}

const tufOf = (p: CompiledPolicy) => {
  const v = p.verifiers[0]!;
  if (v.kind !== "cosign") throw new Error("not cosign");
  return v.cosign.keyless!.tuf!;
};

async function issues(trustedRoot: unknown, resolver?: ReturnType<typeof mapResolver>) {
  try {
    await compilePolicy(doc(trustedRoot), resolver ? { resolver } : {});
  } catch (e) {
    if (isPolicyValidationError(e)) return e.issues;
    throw e;
  }
  throw new Error("policy compiled");
}

describe("keyless.trustedRoot.tuf", () => {
  it("{} means the public-good instance with the TUF root shipped in @sigstore/tuf", async () => {
    for (const form of [{}, null]) {
      const p = await compilePolicy(doc({ tuf: form }));
      const tuf = tufOf(p);
      expect(tuf.mirror).toBe(PUBLIC_GOOD_MIRROR);
      expect(tuf.refreshIntervalSeconds).toBe(3600);
      const root = JSON.parse(tuf.rootJson);
      expect(root.signed._type).toBe("root");
      expect(root.signed.version).toBeGreaterThanOrEqual(1);
      // Nothing is resolved at compile time beyond the root: no trusted root yet.
      const v = p.verifiers[0]!;
      expect(v.kind === "cosign" && v.cosign.keyless?.trustedRoot).toBeFalsy();
    }
  });

  it("a private mirror with its initial root inline (text or object) or from a ConfigMap", async () => {
    const inline = tufOf(
      await compilePolicy(doc({ tuf: { mirror: "https://tuf.acme.internal/", root: repo.initialRoot } })),
    );
    expect(inline.mirror).toBe("https://tuf.acme.internal");
    const obj = tufOf(
      await compilePolicy(
        doc({ tuf: { mirror: "https://tuf.acme.internal", root: JSON.parse(repo.initialRoot) } }),
      ),
    );
    expect(obj.id).not.toBe("");
    const resolver = mapResolver({ "ConfigMap/sigstore/tuf-root/root.json": repo.initialRoot });
    const ref = tufOf(
      await compilePolicy(
        doc({
          tuf: {
            mirror: "https://tuf.acme.internal",
            root: { configMapRef: { name: "tuf-root", namespace: "sigstore", key: "root.json" } },
            refreshIntervalSeconds: 600,
          },
        }),
        { resolver },
      ),
    );
    expect(ref).toMatchObject({ id: inline.id, rootDigest: inline.rootDigest, refreshIntervalSeconds: 600 });
    expect(resolver.calls).toEqual(["ConfigMap/sigstore/tuf-root/root.json"]);
  });

  it("the revision follows mirror, initial root and interval", async () => {
    const rev = async (tuf: unknown) => (await compilePolicy(doc({ tuf }))).revision;
    const base = await rev({ mirror: "https://tuf.acme.internal", root: repo.initialRoot });
    expect(await rev({ mirror: "https://tuf.acme.internal/", root: repo.initialRoot })).toBe(base);
    expect(await rev({ mirror: "https://tuf2.acme.internal", root: repo.initialRoot })).not.toBe(base);
    expect(await rev({ mirror: "https://tuf.acme.internal", root: new LocalTufRepo().initialRoot })).not.toBe(
      base,
    );
    expect(
      await rev({ mirror: "https://tuf.acme.internal", root: repo.initialRoot, refreshIntervalSeconds: 60 }),
    ).not.toBe(base);
  });

  it("refuses what cannot work, each with its path", async () => {
    const at = "spec.verifiers[0].cosign.keyless.trustedRoot";
    expect(await issues({ tuf: { mirror: "https://tuf.acme.internal" } })).toEqual([
      {
        path: `${at}.tuf.root`,
        message: expect.stringContaining(
          "only the public-good instance's (https://tuf-repo-cdn.sigstore.dev) initial TUF root ships",
        ),
      },
    ]);
    expect(await issues({ tuf: { mirror: "ftp://x", root: repo.initialRoot } })).toEqual([
      { path: `${at}.tuf.mirror`, message: "must be an http(s) URL" },
    ]);
    expect(await issues({ tuf: { mirror: "https://u:p@x", root: repo.initialRoot } })).toEqual([
      { path: `${at}.tuf.mirror`, message: "must not carry credentials" },
    ]);
    expect(await issues({ tuf: { mirror: "not a url" } })).toMatchObject([{ path: `${at}.tuf.mirror` }]);
    expect(await issues({ tuf: { refreshIntervalSeconds: 5 } })).toEqual([
      {
        path: `${at}.tuf.refreshIntervalSeconds`,
        message: "must be an integer between 60 and 604800, got 5",
      },
    ]);
    expect(await issues({ tuf: { refreshIntervalSeconds: "1h" } })).toMatchObject([
      { path: `${at}.tuf.refreshIntervalSeconds` },
    ]);
    expect(await issues({ tuf: { mirorr: "https://x" } })).toMatchObject([
      { path: `${at}.tuf.mirorr`, message: expect.stringContaining("unknown field") },
    ]);
    expect(await issues({ tuf: {}, configMapRef: { name: "a", namespace: "b", key: "c" } })).toMatchObject([
      { path: `${at}.configMapRef`, message: expect.stringContaining("unknown field") },
    ]);
    expect(await issues({ tuf: { mirror: "https://x", root: "{not json" } })).toMatchObject([
      { path: `${at}.tuf.root`, message: expect.stringContaining("not valid JSON") },
    ]);
    // A Sigstore trusted_root.json where the TUF root belongs.
    expect(
      await issues({
        tuf: {
          mirror: "https://x",
          root: { mediaType: "application/vnd.dev.sigstore.trustedroot+json;version=0.1" },
        },
      }),
    ).toMatchObject([{ path: `${at}.tuf.root`, message: expect.stringContaining("has no `signed` object") }]);
  });

  it("refuses an initial root whose signatures do not verify under its own keys (at compile time)", async () => {
    const forged = JSON.parse(repo.initialRoot);
    forged.signed.version = 7;
    expect(await issues({ tuf: { mirror: "https://x", root: forged } })).toMatchObject([
      {
        path: "spec.verifiers[0].cosign.keyless.trustedRoot.tuf.root",
        message: expect.stringContaining("does not verify under its own root keys"),
      },
    ]);
    const resolver = mapResolver({ "ConfigMap/s/r/root.json": JSON.stringify(forged) });
    expect(
      await issues(
        {
          tuf: {
            mirror: "https://x",
            root: { configMapRef: { name: "r", namespace: "s", key: "root.json" } },
          },
        },
        resolver,
      ),
    ).toMatchObject([
      {
        path: "spec.verifiers[0].cosign.keyless.trustedRoot.tuf.root.configMapRef",
        message: expect.stringContaining("does not verify"),
      },
    ]);
  });

  it("the CRD admits the tuf form the engine accepts (drift)", () => {
    const crd = parseYaml(
      readFileSync(path.resolve(import.meta.dirname, "../../../deploy/crds/imagepolicy.yaml"), "utf8"),
    );
    const schema: Schema = crd.spec.versions[0].schema.openAPIV3Schema;
    for (const tuf of [
      {},
      {
        mirror: "https://tuf.acme.internal",
        root: JSON.parse(repo.initialRoot),
        refreshIntervalSeconds: 600,
      },
      {
        mirror: "https://tuf.acme.internal",
        root: { configMapRef: { name: "r", namespace: "s", key: "root.json" } },
      },
    ]) {
      const d = doc({ tuf });
      expect(validateSchema(schema, d)).toEqual([]);
      expect(validatePolicy(d).ok).toBe(true);
    }
    const described = JSON.stringify(schema);
    expect(described).toContain("tuf");
  });
});
