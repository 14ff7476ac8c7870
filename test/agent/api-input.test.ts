// The descriptor and digest checks both ends of the pull-verdict exchange share.
import { describe, expect, it } from "vitest";
import { DIGEST_RE, descriptorFromJson } from "../../src/agent/api-input.js";

const D = `sha256:${"a".repeat(64)}`;

describe("descriptorFromJson", () => {
  it("keeps the descriptor fields, defaults size to 0 and drops anything else", () => {
    expect(
      descriptorFromJson({
        mediaType: "application/vnd.oci.image.index.v1+json",
        digest: D,
        annotations: { a: "b" },
        platform: { os: "linux", architecture: "amd64" },
        urls: ["http://x"],
      }),
    ).toEqual({
      mediaType: "application/vnd.oci.image.index.v1+json",
      digest: D,
      size: 0,
      annotations: { a: "b" },
      platform: { os: "linux", architecture: "amd64" },
    });
    expect(descriptorFromJson({ mediaType: "m", digest: D, size: 7 })).toEqual({
      mediaType: "m",
      digest: D,
      size: 7,
    });
  });

  it("is undefined for anything that is not an object with string mediaType and digest", () => {
    for (const v of [
      null,
      undefined,
      "x",
      1,
      [],
      [{ mediaType: "m", digest: D }],
      { digest: D },
      { mediaType: "m" },
    ])
      expect(descriptorFromJson(v), JSON.stringify(v)).toBeUndefined();
    expect(descriptorFromJson({ mediaType: "m", digest: 5 })).toBeUndefined();
  });
});

describe("DIGEST_RE", () => {
  it("accepts algorithm:encoded and refuses short or malformed digests", () => {
    expect(DIGEST_RE.test(D)).toBe(true);
    expect(DIGEST_RE.test("sha256:abc")).toBe(false);
    expect(DIGEST_RE.test(`SHA256:${"a".repeat(64)}`)).toBe(false);
    expect(DIGEST_RE.test(`sha256:${"a".repeat(64)}\n`)).toBe(false);
  });
});
