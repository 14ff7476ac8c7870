// The gate over the real resolver (ContainerdImageResolver) with fake containerd images
// and CRI answers: every reference form CRI accepts finds the content containerd would
// start, or is denied whatever the failure policy.
import { describe, expect, it } from "vitest";
import { ExemptImages } from "../../src/decision/exempt.js";
import { Gate, IMAGE_NAME_ANNOTATION } from "../../src/agent/gate.js";
import type { PolicyRef } from "../../src/decision/ports.js";
import type { CriImageLookup, CriImageRecord } from "../../src/containerd/cri-images.js";
import { ContainerdImageResolver } from "../../src/containerd/images.js";
import { EngineError } from "../../src/engine/errors.js";
import type { Image } from "../../src/gen/containerd/images.js";
import { FakeEngine, FakeSelector, MemorySink, policy, verdict } from "./fakes.js";

const hex = (c: string) => c.repeat(64);
const SIGNED = `sha256:${hex("b")}`;
const UNSIGNED = `sha256:${hex("c")}`;
const ID_SIGNED = `sha256:1111${hex("1").slice(4)}`;
const ID_UNSIGNED = `sha256:2222${hex("2").slice(4)}`;
const ID_MIXED = `sha256:3333${hex("3").slice(4)}`;
const ID_TWIN = `sha256:2223${hex("4").slice(4)}`;

/** containerd's image records (name → top-level digest) and CRI's view of them by ID. */
function node() {
  const records = new Map<string, string>([
    ["127.0.0.1:5000/team/signed:v1", SIGNED],
    [`127.0.0.1:5000/team/signed@${SIGNED}`, SIGNED],
    ["127.0.0.1:5000/team/unsigned:v1", UNSIGNED],
    [`127.0.0.1:5000/team/unsigned@${UNSIGNED}`, UNSIGNED],
    ["docker.io/library/busybox:latest", SIGNED],
    ["docker.io/library/alpine:3", UNSIGNED],
    ["127.0.0.1:5000/team/mixed-a:v1", SIGNED],
    ["127.0.0.1:5000/team/mixed-b:v1", UNSIGNED],
    ["127.0.0.1:5000/team/twin:v1", SIGNED],
  ]);
  const byId: Record<string, CriImageRecord> = {
    [ID_SIGNED]: {
      id: ID_SIGNED,
      repoTags: ["127.0.0.1:5000/team/signed:v1", "docker.io/library/busybox:latest"],
      repoDigests: [`127.0.0.1:5000/team/signed@${SIGNED}`],
    },
    [ID_UNSIGNED]: {
      id: ID_UNSIGNED,
      repoTags: ["127.0.0.1:5000/team/unsigned:v1"],
      repoDigests: [`127.0.0.1:5000/team/unsigned@${UNSIGNED}`],
    },
    [ID_MIXED]: {
      id: ID_MIXED,
      repoTags: ["127.0.0.1:5000/team/mixed-a:v1", "127.0.0.1:5000/team/mixed-b:v1"],
      repoDigests: [],
    },
    [ID_TWIN]: { id: ID_TWIN, repoTags: ["127.0.0.1:5000/team/twin:v1"], repoDigests: [] },
  };
  const images = {
    async get(name: string): Promise<Image | undefined> {
      const d = records.get(name);
      return d
        ? ({ name, target: { digest: d, mediaType: "", size: 1, annotations: {} } } as unknown as Image)
        : undefined;
    },
  };
  // CRI's LocalResolve for IDs: full digest, or a prefix (with or without "sha256:").
  const cri: CriImageLookup = {
    async status(image: string) {
      const hexPart = image.startsWith("sha256:") ? image.slice(7) : image;
      const hits = Object.keys(byId).filter((id) => id.slice(7).startsWith(hexPart));
      if (hits.length > 1) throw new EngineError("INTERNAL", "CRI ImageStatus: ambiguous short id");
      return hits[0] ? byId[hits[0]] : undefined;
    },
  };
  return { images, cri, records };
}

function setup(def: PolicyRef) {
  const selector = new FakeSelector([def], def);
  const engine = new FakeEngine((s, p) =>
    verdict(p, s, {
      allowed: s.digest === SIGNED,
      reasons: [`${s.reference}: ${s.digest === SIGNED ? "signed" : "no signature"}`],
    }),
  );
  const n = node();
  const sink = new MemorySink();
  const gate = new Gate({
    selector,
    engine,
    resolver: new ContainerdImageResolver(n.images, n.cri),
    exemptImages: new ExemptImages([]),
    exemptNamespaces: [],
    budgetFraction: 0.5,
    requestTimeoutMs: () => 2000,
    sink,
  });
  const create = (image: string) =>
    gate.createContainer(
      { id: "p", name: "p", namespace: "team" },
      { id: "c", name: "c", annotations: { [IMAGE_NAME_ANNOTATION]: image } },
    );
  return { create, engine, n };
}

const FORMS: Array<[string, string, string]> = [
  ["name:tag", "127.0.0.1:5000/team/signed:v1", "127.0.0.1:5000/team/unsigned:v1"],
  ["name@digest", `127.0.0.1:5000/team/signed@${SIGNED}`, `127.0.0.1:5000/team/unsigned@${UNSIGNED}`],
  [
    "name:tag@digest",
    `127.0.0.1:5000/team/signed:v1@${SIGNED}`,
    `127.0.0.1:5000/team/unsigned:v1@${UNSIGNED}`,
  ],
  ["full image ID", ID_SIGNED, ID_UNSIGNED],
  ["short image ID", ID_SIGNED.slice(7, 19), ID_UNSIGNED.slice(7, 19)],
  ["short image ID with algorithm", ID_SIGNED.slice(0, 19), ID_UNSIGNED.slice(0, 19)],
  ["short name", "busybox", "alpine:3"],
  ["re-spelled Docker Hub host", "index.docker.io/library/busybox", "index.docker.io/alpine:3"],
];

describe.each(["Closed", "Open"] as const)("gate, failurePolicy %s", (failurePolicy) => {
  it.each(FORMS)("%s: signed runs, unsigned is denied", async (_form, good, bad) => {
    const t = setup(policy("strict", { failurePolicy }));
    expect(await t.create(good)).toMatchObject({ allowed: true, digest: SIGNED });
    expect(await t.create(bad)).toMatchObject({ allowed: false, digest: UNSIGNED });
  });

  it("an image ID carried by a signed and an unsigned record is denied", async () => {
    const t = setup(policy("strict", { failurePolicy }));
    const d = await t.create(ID_MIXED);
    expect(d).toMatchObject({ allowed: false, image: ID_MIXED });
    expect(d.reason).toContain("127.0.0.1:5000/team/mixed-b:v1 is not allowed");
    // Every record of the ID was judged, each under its own name.
    expect(t.engine.calls.map((c) => c.subject.reference).sort()).toEqual([
      "127.0.0.1:5000/team/mixed-a:v1",
      "127.0.0.1:5000/team/mixed-b:v1",
    ]);
  });

  it.each([
    ["an ambiguous short ID", "222"],
    ["an unknown image ID", `sha256:${hex("9")}`],
    ["an unknown short ID", "99999999"],
    ["an unknown name", "127.0.0.1:5000/team/none:v1"],
    ["a digest-pinned name whose record targets other content", `127.0.0.1:5000/team/signed:v1@${UNSIGNED}`],
    ["no image at all", ""],
    ["a string that is neither name nor ID", "Not An Image"],
  ])("%s is denied as unidentifiable, never left to the failure policy", async (_what, image) => {
    const t = setup(policy("strict", { failurePolicy }));
    const d = await t.create(image);
    expect(d).toMatchObject({ allowed: false, kind: "rejected" });
    expect(d.reason).toContain("cannot tell which image content containerd would start");
    expect(t.engine.calls).toHaveLength(0);
  });
});

describe("ContainerdImageResolver", () => {
  it("looks names up under containerd's spelling, IDs through CRI to every record", async () => {
    const n = node();
    const r = new ContainerdImageResolver(n.images, n.cri);
    const soon = { deadline: Date.now() + 5000 };
    expect(await r.resolve(`127.0.0.1:5000/team/signed:v1@${SIGNED}`, soon)).toEqual({
      reference: `127.0.0.1:5000/team/signed@${SIGNED}`,
      digest: SIGNED,
    });
    expect(await r.resolve("busybox", soon)).toEqual({
      reference: "docker.io/library/busybox:latest",
      digest: SIGNED,
    });
    const id = await r.resolve(ID_SIGNED.slice(7, 15), soon);
    expect(id.imageId).toBe(ID_SIGNED);
    expect(id.records?.map((x) => x.reference).sort()).toEqual([
      "127.0.0.1:5000/team/signed:v1",
      `127.0.0.1:5000/team/signed@${SIGNED}`,
      "docker.io/library/busybox:latest",
    ]);
    // A record CRI lists but containerd no longer has: cannot tell, so refuse.
    n.records.delete("docker.io/library/busybox:latest");
    await expect(r.resolve(ID_SIGNED, soon)).rejects.toThrow(/no such record/);
    // Without a CRI lookup, IDs cannot be resolved at all.
    await expect(new ContainerdImageResolver(n.images).resolve(ID_SIGNED, soon)).rejects.toThrow(/image IDs/);
  });
});
