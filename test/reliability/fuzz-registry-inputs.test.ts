// Fuzzing what the registry side of the engine reads from outside: image references (from
// pod specs and containerd), manifests, referrers responses (over real HTTP from a hostile
// server), hosts.toml and Docker config files. ≥ 10,000 cases each; every input gives a
// value that satisfies its invariants or a typed EngineError.
import http from "node:http";
import type { AddressInfo } from "node:net";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EngineError } from "../../src/engine/errors.js";
import { normalizeReference, parseReference } from "../../src/engine/reference.js";
import { createRegistryClient, type RegistryClient } from "../../src/engine/registry/client.js";
import { classifyArtifact, toOciManifest } from "../../src/engine/registry/discovery.js";
import { parseDockerConfig } from "../../src/engine/registry/dockerconfig.js";
import { parseHostsToml } from "../../src/engine/registry/hosts.js";
import { fuzzClass, hostileJson, mutatedJson } from "./fuzz-kit.js";

const FILE = "test/reliability/fuzz-registry-inputs.test.ts";
const D = `sha256:${"ab".repeat(32)}`;
const hex64 = fc.stringMatching(/^[a-f0-9]{64}$/);

// ---- image references ------------------------------------------------------------------
const component = fc.stringMatching(/^[a-z0-9]{1,6}([._-]{1,2}[a-z0-9]{1,4})?$/);
const referenceArb: fc.Arbitrary<string> = fc.oneof(
  // grammar-shaped references, sometimes with a hostile tweak
  {
    weight: 8,
    arbitrary: fc
      .record({
        host: fc.option(
          fc.oneof(
            fc.constantFrom(
              "docker.io",
              "ghcr.io",
              "localhost",
              "127.0.0.1:5000",
              "[::1]:5000",
              "index.docker.io",
            ),
            fc.stringMatching(/^[a-z0-9]{1,8}(\.[a-z]{1,4})?(:[0-9]{1,5})?$/),
          ),
        ),
        path: fc.array(component, { minLength: 1, maxLength: 4 }),
        tag: fc.option(fc.stringMatching(/^[\w][\w.-]{0,20}$/)),
        digest: fc.option(
          fc.oneof(
            { arbitrary: hex64.map((h) => `sha256:${h}`), weight: 4 },
            { arbitrary: fc.stringMatching(/^[a-z0-9]{1,8}:[a-fA-F0-9]{0,70}$/), weight: 1 },
          ),
        ),
        tweak: fc.oneof(
          { arbitrary: fc.constant(null), weight: 3 },
          {
            arbitrary: fc.tuple(
              fc.nat(80),
              fc.constantFrom("@", ":", "/", " ", "\u0000", "é", "..", "//", "A"),
            ),
            weight: 1,
          },
        ),
      })
      .map((r) => {
        let s = `${r.host ? `${r.host}/` : ""}${r.path.join("/")}${r.tag ? `:${r.tag}` : ""}${r.digest ? `@${r.digest}` : ""}`;
        if (r.tweak) {
          const i = r.tweak[0] % (s.length + 1);
          s = s.slice(0, i) + r.tweak[1] + s.slice(i);
        }
        return s;
      }),
  },
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 20 }),
  fc.constantFrom("", "a".repeat(5000), `x/${"a".repeat(300)}`, "@", ":", "/", "busybox@sha256:", "HOST:1/x"),
);

// ---- manifests ---------------------------------------------------------------------------
const desc = (mediaType: string, d = D, size = 2) => ({ mediaType, digest: d, size });
const SEED_MANIFESTS = [
  {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: desc("application/vnd.cncf.notary.signature"),
    layers: [desc("application/jose+json", D, 2000)],
    subject: desc("application/vnd.oci.image.index.v1+json", D, 500),
    annotations: { "io.cncf.notary.x509chain.thumbprint#S256": `["${"a".repeat(64)}"]` },
  },
  {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    artifactType: "application/vnd.dev.sigstore.bundle.v0.3+json",
    config: desc("application/vnd.oci.empty.v1+json"),
    layers: [desc("application/vnd.dev.sigstore.bundle.v0.3+json", D, 3000)],
    subject: desc("application/vnd.oci.image.manifest.v1+json", D, 500),
  },
  {
    schemaVersion: 2,
    config: desc("application/vnd.oci.image.config.v1+json"),
    layers: [
      {
        ...desc("application/vnd.dev.cosign.simplesigning.v1+json"),
        annotations: { "dev.cosignproject.cosign/signature": "MEUCIQ" },
      },
    ],
  },
];

// ---- referrers responses ------------------------------------------------------------------
const referrersSeed = {
  schemaVersion: 2,
  mediaType: "application/vnd.oci.image.index.v1+json",
  manifests: [
    {
      ...desc("application/vnd.oci.image.manifest.v1+json"),
      artifactType: "application/vnd.cncf.notary.signature",
    },
    {
      ...desc("application/vnd.oci.image.manifest.v1+json"),
      artifactType: "application/vnd.dev.sigstore.bundle.v0.3+json",
      annotations: { a: "b" },
    },
  ],
};
interface ReferrersAnswer {
  status: number;
  body: Buffer;
  headers: Record<string, string>;
}
const referrersArb: fc.Arbitrary<ReferrersAnswer> = fc
  .record({
    status: fc.constantFrom(200, 200, 200, 200, 404, 500, 301, 206),
    body: fc.oneof(
      mutatedJson(referrersSeed).map((j) => Buffer.from(JSON.stringify(j) ?? "null")),
      fc
        .array(
          fc.record({
            mediaType: fc.constantFrom("application/vnd.oci.image.manifest.v1+json", "", "x"),
            digest: fc.oneof(
              hex64.map((h) => `sha256:${h}`),
              fc.string({ maxLength: 10 }),
            ),
            size: fc.oneof(fc.nat(5000), fc.constant(-1), fc.constant(1e20)),
            artifactType: fc.option(fc.string({ maxLength: 12 })),
          }),
          { maxLength: 30 },
        )
        .map((manifests) =>
          Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: referrersSeed.mediaType, manifests })),
        ),
      fc.uint8Array({ maxLength: 64 }).map((u) => Buffer.from(u)),
    ),
    link: fc.option(
      fc.constantFrom(
        '</v2/r/referrers/x?n=1>; rel="next"',
        "<http://evil.example:1/x>; rel=next",
        "garbage",
        '<>; rel="next"',
      ),
    ),
    contentType: fc.constantFrom("application/vnd.oci.image.index.v1+json", "text/html", ""),
  })
  .map((r) => ({
    status: r.status,
    body: r.body,
    headers: {
      "content-type": r.contentType,
      ...(r.link ? { link: r.link } : {}),
      ...(r.status === 301 ? { location: "/v2/r/referrers/loop" } : {}),
    },
  }));

let server: http.Server;
let host = "";
let answer: ReferrersAnswer = { status: 404, body: Buffer.alloc(0), headers: {} };
let client: RegistryClient;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    req.resume();
    // Every request (first page, next pages, tag fallback) gets the same hostile answer.
    res.writeHead(answer.status, { ...answer.headers, "content-length": answer.body.length });
    res.end(answer.body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  client = createRegistryClient({
    cacheBytes: 0,
    timeouts: { connectMs: 1000, totalMs: 2000 },
    limits: { maxReferrerPages: 3 },
  });
});

afterAll(async () => {
  client?.close();
  await new Promise<void>((r) => server?.close(() => r()));
});

// ---- hosts.toml ----------------------------------------------------------------------------
const tomlValue = fc.oneof(
  fc.constantFrom('"https://mirror.example"', '"http://127.0.0.1:5000"', '"ftp://x"', '""', '"/abs/ca.crt"'),
  fc.constantFrom('["pull", "resolve"]', '["push"]', "[]", "true", "false", "1", "-1", '"x"'),
  fc.string({ maxLength: 12 }).map((s) => JSON.stringify(s)),
);
const tomlKey = fc.constantFrom(
  "server",
  "capabilities",
  "ca",
  "client",
  "skip_verify",
  "override_path",
  "header",
  "dial_timeout",
  "x",
);
const hostsTomlArb: fc.Arbitrary<string> = fc.oneof(
  fc
    .record({
      top: fc.array(fc.tuple(tomlKey, tomlValue), { maxLength: 3 }),
      hosts: fc.array(
        fc.record({
          name: fc.constantFrom("https://m1.example", "http://127.0.0.1:1", "m2", "", "https://[::1]:5000"),
          kv: fc.array(fc.tuple(tomlKey, tomlValue), { maxLength: 4 }),
        }),
        { maxLength: 3 },
      ),
    })
    .map(
      (r) =>
        `${r.top.map(([k, v]) => `${k} = ${v}`).join("\n")}\n${r.hosts
          .map((h) => `[host."${h.name}"]\n${h.kv.map(([k, v]) => `  ${k} = ${v}`).join("\n")}`)
          .join("\n")}\n`,
    ),
  fc.string({ maxLength: 60 }),
  fc.constantFrom("[host]\nx=1", 'host = "x"', "[[host]]\n", "server = 1", '[host."a"]\n[host."a"]\n'),
);

// ---- Docker config -------------------------------------------------------------------------
const dockerSeed = {
  auths: {
    "https://index.docker.io/v1/": { auth: Buffer.from("user:pass").toString("base64") },
    "127.0.0.1:5000": { username: "u", password: "p" },
    "ghcr.io": { identitytoken: "tok" },
  },
  credHelpers: { "gcr.io": "gcloud" },
};

describe("fuzz: registry-side inputs", () => {
  it("image references", async () => {
    await fuzzClass({
      name: "image references",
      path: "parseReference / normalizeReference",
      file: FILE,
      arb: referenceArb,
      run(s) {
        const r = parseReference(s);
        // A parsed reference is normalised, stable, and says what it is.
        const n = r.toString();
        expect(normalizeReference(n)).toBe(n);
        expect(n.startsWith(`${r.registry}/${r.repository}`)).toBe(true);
        if (r.digest) expect(r.digest).toMatch(/^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/);
        expect(r.tag === undefined || /^[\w][\w.-]{0,127}$/.test(r.tag)).toBe(true);
      },
    });
  });

  it("manifests", async () => {
    await fuzzClass({
      name: "manifests (signature artifact candidates)",
      path: "toOciManifest + classifyArtifact",
      file: FILE,
      valueWord: "classified or refused with a reason",
      arb: fc.oneof(...SEED_MANIFESTS.map((m) => mutatedJson(m)), hostileJson),
      run(j) {
        if (typeof j !== "object" || j === null || Array.isArray(j)) {
          // The client hands discovery only JSON objects; anything else never gets here.
          throw new EngineError("MALFORMED", "not an object");
        }
        const m = toOciManifest(j as Record<string, unknown>);
        if (typeof m === "string") throw new EngineError("MALFORMED", m);
        expect(m.schemaVersion).toBe(2);
        for (const source of ["referrers-api", "referrers-tag", "cosign-tag"] as const) {
          const k = classifyArtifact(m, source);
          expect([
            undefined,
            "notation",
            "cosign-bundle",
            "cosign-artifact-sig",
            "cosign-simplesigning",
          ]).toContain(k);
        }
      },
    });
  });

  it("referrers responses (served over HTTP by a hostile registry)", async () => {
    await fuzzClass({
      name: "referrers responses",
      path: "RegistryClient.listReferrers over loopback HTTP (API, paging, tag fallback)",
      file: FILE,
      valueWord: "listed",
      arb: referrersArb,
      async run(a) {
        answer = a;
        const r = await client.listReferrers({ registry: host, repository: "r" }, D);
        expect(r.descriptors.length).toBeLessThanOrEqual(client.limits.maxReferrers);
        for (const d of r.descriptors) {
          expect(d.digest).toMatch(/^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/);
          expect(typeof d.mediaType).toBe("string");
          expect(Number.isSafeInteger(d.size) && d.size >= 0).toBe(true);
        }
      },
    });
  });

  it("hosts.toml", async () => {
    await fuzzClass({
      name: "hosts.toml",
      path: "parseHostsToml",
      file: FILE,
      arb: hostsTomlArb,
      run(text) {
        const eps = parseHostsToml(
          text,
          "registry.example:5000",
          "/etc/containerd/certs.d/registry.example:5000",
        );
        expect(eps.length).toBeGreaterThan(0);
        for (const e of eps) expect(["http", "https"]).toContain(e.scheme);
      },
    });
  });

  it("Docker config files", async () => {
    await fuzzClass({
      name: "Docker config files",
      path: "parseDockerConfig",
      file: FILE,
      arb: fc.oneof(
        mutatedJson(dockerSeed).map((j) => JSON.stringify(j) ?? ""),
        fc.string({ maxLength: 40 }),
        fc.constantFrom(
          '{"auths":{"x":{"auth":"!!!"}}}',
          '{"auths":[]}',
          "{",
          '{"auths":{"__proto__":{"username":"a"}}}',
        ),
      ),
      run(text) {
        const m = parseDockerConfig(text, "fuzz config");
        for (const [h, c] of m) {
          expect(typeof h).toBe("string");
          expect(c.username !== undefined || c.identityToken !== undefined).toBe(true);
        }
      },
    });
  });
});
