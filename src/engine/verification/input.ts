// Step: input. The subject must carry a digest and a valid image name; the name alone then
// decides exemptImages and images / unmatchedImages, on the reference actually used.
import { isSupportedDigest } from "../../base/digest.js";
import { memoPerObject } from "../../base/memo.js";
import { EngineError } from "../errors.js";
import { canonicalReference } from "../identity.js";
import type { CompiledPolicy } from "../policy/model.js";
import type { Subject, Verdict } from "../types.js";
import { conclude, denied, imageLabel, type Judging } from "./verdict.js";

/** Throws INVALID_REFERENCE for a subject no verification can be keyed on. */
export function checkSubject(subject: Subject): void {
  if (!isSupportedDigest(subject.digest)) {
    throw new EngineError(
      "INVALID_REFERENCE",
      `subject digest ${JSON.stringify(subject.digest)} is not a sha256/sha512 digest`,
    );
  }
  if (typeof subject.reference !== "string" || subject.reference.length === 0) {
    throw new EngineError("INVALID_REFERENCE", "subject reference is empty");
  }
}

/** The cheap pre-check of Engine.cached(): it never throws, it just has no answer. */
export function hasDigestAndName(subject: Subject): boolean {
  return isSupportedDigest(subject.digest) && typeof subject.reference === "string";
}

/** What the name alone says under one compiled policy (its patterns are fixed for its lifetime). */
type NameClass = "invalid" | "exempt" | "ungoverned" | "unmatched-deny" | "governed";
const nameClasses = memoPerObject<CompiledPolicy, NameClass>(1024);

function nameClass(policy: CompiledPolicy, reference: string): NameClass {
  // Memoised per policy and reference: every CreateContainer of a cached image asks again.
  const memo = nameClasses(policy);
  const known = memo.get(reference);
  if (known !== undefined) return known;
  const matchRef = canonicalReference(reference);
  const c: NameClass =
    matchRef === undefined
      ? "invalid"
      : policy.isExempt(matchRef)
        ? "exempt"
        : policy.governs(matchRef)
          ? "governed"
          : policy.unmatchedImages === "Allow"
            ? "ungoverned"
            : "unmatched-deny";
  return memo.set(reference, c);
}

/**
 * The decisions made from the name alone (exemptImages, images / unmatchedImages), on the
 * canonical identity of the reference actually used; undefined when signatures decide.
 */
export function nameDecision(j: Judging): Verdict | undefined {
  const { subject, policy } = j;
  switch (nameClass(policy, subject.reference)) {
    case "governed":
      return undefined;
    case "invalid":
      throw new EngineError(
        "INVALID_REFERENCE",
        `subject reference ${JSON.stringify(subject.reference.slice(0, 300))} is not a valid image name`,
      );
    case "exempt":
      return conclude(
        j,
        "exempt",
        [`${imageLabel(subject)} is exempt by ImagePolicy ${policy.name} (spec.exemptImages)`],
        [],
      );
    case "ungoverned":
      return conclude(
        j,
        "ungoverned",
        [
          `${imageLabel(subject)} is not governed by ImagePolicy ${policy.name} (spec.images) and unmatchedImages is Allow`,
        ],
        [],
      );
    case "unmatched-deny":
      return denied(j, "not matched by spec.images and unmatchedImages is Deny", []);
  }
}
