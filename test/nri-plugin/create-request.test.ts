// The identity-only CreateContainer decoder must read exactly what the generated decoder
// reads for the fields it keeps, on real-shaped requests, on odd-but-valid wire encodings and
// on corrupted bytes (both fail, or both agree).
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { describe, expect, it } from "vitest";
import { CreateContainerRequest } from "../../src/gen/nri.js";
import { decodeCreateContainerIdentity } from "../../src/nri-plugin/create-request.js";
import { kubernetesCreate } from "./support/requests.js";

/** What the identity decoder must equal: the generated decoder's result, picked. */
function expected(bytes: Uint8Array) {
  const full = CreateContainerRequest.decode(bytes);
  const p = full.pod;
  const c = full.container;
  return {
    pod: p && {
      id: p.id,
      name: p.name,
      uid: p.uid,
      namespace: p.namespace,
      labels: p.labels,
      annotations: p.annotations,
    },
    container: c && {
      id: c.id,
      podSandboxId: c.podSandboxId,
      name: c.name,
      labels: c.labels,
      annotations: c.annotations,
    },
  };
}

/**
 * On valid protobuf both decoders give the same identity. (On corrupted bytes they may
 * differ, and that is fine: ours does not parse the fields it skips, and it refuses a field
 * that runs past the end of its enclosing message, where the generated decoder reads on.)
 */
function agree(bytes: Uint8Array): "ok" {
  expect(decodeCreateContainerIdentity(bytes)).toEqual(expected(bytes));
  return "ok";
}

/** A Kubernetes-shaped request with hooks added (one more nested field to skip). */
function kubernetesLike(i = 0): Uint8Array {
  const { pod, container } = kubernetesCreate(i, { namespace: "tenant-ä" });
  container.hooks = {
    ...emptyHooks(),
    prestart: [{ path: "/usr/bin/hook", args: ["hook"], env: ["A=1"], timeout: undefined }],
  };
  return CreateContainerRequest.encode({ pod, container }).finish();
}

function emptyHooks() {
  return {
    prestart: [],
    createRuntime: [],
    createContainer: [],
    startContainer: [],
    poststart: [],
    poststop: [],
  };
}

describe("CreateContainer identity decoding", () => {
  it("reads a Kubernetes-shaped request's identity exactly as the generated decoder does, skipping the spec", () => {
    const bytes = kubernetesLike(3);
    expect(bytes.length).toBeGreaterThan(2000);
    const got = decodeCreateContainerIdentity(bytes);
    expect(got.pod).toMatchObject({ name: "web-3", uid: "uid-3", namespace: "tenant-ä" });
    expect(got.pod?.labels).toEqual({
      app: "web",
      "io.cri-containerd.kind": "sandbox",
      "pod-template-hash": "6d4cf56db6",
    });
    expect(got.container?.annotations["io.kubernetes.cri.image-name"]).toBe("registry.example/team/app:1.0");
    expect(got.container).not.toHaveProperty("env");
    expect(agree(bytes)).toBe("ok");
    // An empty request and one without a container are valid protobuf.
    expect(decodeCreateContainerIdentity(new Uint8Array(0))).toEqual({
      pod: undefined,
      container: undefined,
    });
    expect(agree(CreateContainerRequest.encode({ pod: undefined, container: undefined }).finish())).toBe(
      "ok",
    );
  });

  it("follows the generated decoder on odd but valid encodings: unknown fields of every wire type, wrong wire types, repeats", () => {
    const w = new BinaryWriter();
    // pod (field 1) with: a duplicated id (last wins), an unknown varint, fixed64, fixed32 and a
    // group, a known field with the wrong wire type (skipped), a repeated map key (last wins).
    const pod = new BinaryWriter();
    pod.uint32((1 << 3) | 2).string("first");
    pod.uint32((99 << 3) | 0).uint64(2n ** 63n);
    pod.uint32((98 << 3) | 1).fixed64(7n);
    pod.uint32((97 << 3) | 5).fixed32(9);
    pod
      .uint32((96 << 3) | 3)
      .uint32((1 << 3) | 0)
      .uint32(5)
      .uint32((96 << 3) | 4);
    pod.uint32((4 << 3) | 0).uint32(12); // namespace as a varint: not a string, skipped
    pod.uint32((1 << 3) | 2).string("second");
    for (const v of ["one", "two"]) {
      const e = new BinaryWriter();
      e.uint32((1 << 3) | 2).string("k");
      e.uint32((2 << 3) | 2).string(v);
      e.uint32((3 << 3) | 2).string("unknown in the entry");
      pod.uint32((5 << 3) | 2).bytes(e.finish());
    }
    const podBytes = pod.finish();
    w.uint32((1 << 3) | 2).bytes(podBytes);
    w.uint32((3 << 3) | 2).string("an unknown top-level field");
    // container (field 2) twice: the second replaces the first
    w.uint32((2 << 3) | 2).bytes(
      new BinaryWriter()
        .uint32((1 << 3) | 2)
        .string("c-old")
        .finish(),
    );
    w.uint32((2 << 3) | 2).bytes(
      new BinaryWriter()
        .uint32((3 << 3) | 2)
        .string("c-new")
        .finish(),
    );
    const bytes = w.finish();
    expect(agree(bytes)).toBe("ok");
    const got = decodeCreateContainerIdentity(bytes);
    expect(got.pod?.id).toBe("second");
    expect(got.pod?.namespace).toBe("");
    expect(got.pod?.labels).toEqual({ k: "two" });
    expect(got.container).toEqual({ id: "", podSandboxId: "", name: "c-new", labels: {}, annotations: {} });
  });

  it("agrees with the generated decoder on 2,000 random valid requests (any UTF-8, empty and missing fields)", () => {
    let seed = 4242;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const alphabet = ["a", "Z", "0", "-", "/", ".", ":", "ä", "名", "😀", "\u0000", " "];
    const str = () => Array.from({ length: rnd(12) }, () => alphabet[rnd(alphabet.length)]).join("");
    const map = () => Object.fromEntries(Array.from({ length: rnd(4) }, () => [str(), str()]));
    for (let i = 0; i < 2000; i++) {
      const req = CreateContainerRequest.fromPartial({
        pod:
          rnd(5) === 0
            ? undefined
            : {
                id: str(),
                name: str(),
                uid: str(),
                namespace: str(),
                labels: map(),
                annotations: map(),
                ips: [str()],
                pid: rnd(1 << 20),
              },
        container:
          rnd(5) === 0
            ? undefined
            : {
                id: str(),
                podSandboxId: str(),
                name: str(),
                labels: map(),
                annotations: map(),
                env: [str(), str()],
                args: [str()],
                pid: rnd(99),
              },
      });
      expect(agree(CreateContainerRequest.encode(req).finish())).toBe("ok");
    }
  });

  it("refuses broken framing (truncations) and never hangs or returns anything but strings on corrupted bytes", () => {
    const base = kubernetesLike(7);
    // A cut is refused unless it falls between the two top-level fields (then it is valid).
    const podEnd =
      base.length -
      CreateContainerRequest.encode({
        pod: undefined,
        container: CreateContainerRequest.decode(base).container,
      }).finish().length;
    let refused = 0;
    for (let cut = 1; cut < base.length; cut++) {
      if (cut === podEnd) agree(base.subarray(0, cut));
      else {
        expect(() => decodeCreateContainerIdentity(base.subarray(0, cut))).toThrow();
        refused++;
      }
    }
    expect(refused).toBe(base.length - 2);
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const isStrings = (o: Record<string, unknown>) => Object.values(o).every((v) => typeof v === "string");
    const outcomes = { ok: 0, threw: 0 };
    for (let i = 0; i < 3000; i++) {
      const b = Uint8Array.from(base);
      for (let k = 0, n = 1 + rnd(4); k < n; k++) b[rnd(b.length)] = rnd(256);
      let got: ReturnType<typeof decodeCreateContainerIdentity>;
      try {
        got = decodeCreateContainerIdentity(b);
      } catch (e) {
        expect(e).toBeInstanceOf(Error);
        outcomes.threw++;
        continue;
      }
      outcomes.ok++;
      for (const part of [got.pod, got.container]) {
        if (!part) continue;
        const { labels, annotations, ...scalars } = part;
        expect(isStrings(scalars) && isStrings(labels) && isStrings(annotations)).toBe(true);
      }
    }
    // Invalid UTF-8 in a kept string is replaced as the generated decoder replaces it.
    const ns = new BinaryWriter()
      .uint32((4 << 3) | 2)
      .bytes(Uint8Array.from([0x74, 0xc3, 0x28, 0xff, 0xe2, 0x82]));
    expect(
      agree(
        new BinaryWriter()
          .uint32((1 << 3) | 2)
          .bytes(ns.finish())
          .finish(),
      ),
    ).toBe("ok");
    expect(outcomes.ok).toBeGreaterThan(50);
    expect(outcomes.threw).toBeGreaterThan(50);
  });
});
