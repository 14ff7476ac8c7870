// The base layer every other layer shares: one digest grammar, one descriptor parser, one
// Go-duration parser, one record guard, the typed error base.
import { describe, expect, it } from "vitest";
import { descriptorFromJson } from "../../src/base/descriptor.js";
import { isDigest, isSha256Digest, isSupportedDigest, splitDigest } from "../../src/base/digest.js";
import { parseGoDuration } from "../../src/base/duration.js";
import { errorMessage, TollgateError, UsageError } from "../../src/base/errors.js";
import { isRecord } from "../../src/base/record.js";

const D = `sha256:${"a".repeat(64)}`;

describe("digest grammar (OCI image-spec)", () => {
  it("accepts algorithm:encoded per the grammar, bounded 32..256", () => {
    for (const d of [
      D,
      `sha512:${"b".repeat(128)}`,
      `multihash+base58:${"Q".repeat(46)}`,
      `sha256:${"A".repeat(64)}`,
    ])
      expect(isDigest(d), d).toBe(true);
    for (const d of [
      "sha256:abc",
      `SHA256:${"a".repeat(64)}`,
      `sha256:${"a".repeat(64)}\n`,
      `sha256-:${"a".repeat(64)}`,
      `:${"a".repeat(64)}`,
      `sha256:${"a".repeat(257)}`,
      `sha256:${"a".repeat(63)}/`,
      5,
      undefined,
    ])
      expect(isDigest(d), String(d)).toBe(false);
  });

  it("supported digests are sha256/sha512 with exact-length lowercase hex", () => {
    expect(isSupportedDigest(D)).toBe(true);
    expect(isSupportedDigest(`sha512:${"b".repeat(128)}`)).toBe(true);
    expect(isSupportedDigest(`sha256:${"A".repeat(64)}`)).toBe(false);
    expect(isSupportedDigest(`sha256:${"a".repeat(128)}`)).toBe(false);
    expect(isSupportedDigest(`sha384:${"a".repeat(96)}`)).toBe(false);
    expect(isSha256Digest(D)).toBe(true);
    expect(isSha256Digest(`sha512:${"b".repeat(128)}`)).toBe(false);
    expect(splitDigest(D)).toEqual({ algorithm: "sha256", encoded: "a".repeat(64) });
    expect(splitDigest("nope")).toBeUndefined();
  });
});

describe("descriptorFromJson", () => {
  it("keeps the descriptor fields and drops anything else", () => {
    expect(
      descriptorFromJson({
        mediaType: "application/vnd.oci.image.index.v1+json",
        digest: D,
        size: 7,
        artifactType: "application/x",
        annotations: { a: "b", n: 1 },
        platform: { os: "linux", architecture: "amd64", extra: 2 },
        urls: ["http://x"],
      }),
    ).toEqual({
      mediaType: "application/vnd.oci.image.index.v1+json",
      digest: D,
      size: 7,
      artifactType: "application/x",
      annotations: { a: "b" },
      platform: { os: "linux", architecture: "amd64" },
    });
  });

  it("is undefined unless mediaType is a string, digest well-formed and size a non-negative integer", () => {
    for (const v of [
      null,
      undefined,
      "x",
      1,
      [],
      [{ mediaType: "m", digest: D, size: 1 }],
      { digest: D, size: 1 },
      { mediaType: "m", size: 1 },
      { mediaType: "m", digest: 5, size: 1 },
      { mediaType: "m", digest: "sha256:short", size: 1 },
      { mediaType: "m", digest: D },
      { mediaType: "m", digest: D, size: -1 },
      { mediaType: "m", digest: D, size: 1.5 },
      { mediaType: "m", digest: D, size: "1" },
    ])
      expect(descriptorFromJson(v), JSON.stringify(v)).toBeUndefined();
  });
});

describe("parseGoDuration (Go time.ParseDuration, milliseconds)", () => {
  it("reads Go's syntax, signs included", () => {
    expect(parseGoDuration("1m30s")).toBe(90_000);
    expect(parseGoDuration("12h0m0s")).toBe(43_200_000);
    expect(parseGoDuration(".5s")).toBe(500);
    expect(parseGoDuration("1.5h")).toBe(5_400_000);
    expect(parseGoDuration("1.s")).toBe(1000);
    expect(parseGoDuration("1500us")).toBe(1.5);
    expect(parseGoDuration("-2s")).toBe(-2000);
    expect(parseGoDuration("+2ms")).toBe(2);
    expect(parseGoDuration("0")).toBe(0);
    expect(parseGoDuration("-0")).toBe(0);
    expect(parseGoDuration("3\u00b5s")).toBeCloseTo(0.003);
    expect(parseGoDuration("3\u03bcs")).toBeCloseTo(0.003);
  });
  it("refuses what Go refuses", () => {
    for (const s of ["", "1", "10", "s", ".s", " 1s", "1s ", "2 seconds", "1d", "--1s", "1s-2s", "1.2.3s"])
      expect(parseGoDuration(s), s).toBeUndefined();
  });
});

describe("errors and guards", () => {
  it("a TollgateError carries a code and a sentence", () => {
    const e = new UsageError("missing -name");
    expect(e).toBeInstanceOf(TollgateError);
    expect(e.code).toBe("USAGE");
    expect(e.name).toBe("UsageError");
    expect(JSON.parse(JSON.stringify(e))).toEqual({ code: "USAGE", message: "missing -name" });
  });
  it("errorMessage reads any thrown value", () => {
    expect(errorMessage(new Error("x"))).toBe("x");
    expect(errorMessage("y")).toBe("y");
    expect(errorMessage(undefined)).toBe("undefined");
  });
  it("isRecord is true for plain objects only", () => {
    expect(isRecord({})).toBe(true);
    for (const v of [null, [], "x", 1, undefined]) expect(isRecord(v)).toBe(false);
  });
});
