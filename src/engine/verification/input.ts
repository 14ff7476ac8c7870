// Step: input. The subject must carry a digest and a valid image name; the name alone then
// decides exemptImages and images / unmatchedImages, on the reference actually used.
import { isSupportedDigest } from "../../base/digest.js";
import { EngineError } from "../errors.js";
import { canonicalReference } from "../identity.js";
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

/**
 * The decisions made from the name alone (exemptImages, images / unmatchedImages), on the
 * canonical identity of the reference actually used; undefined when signatures decide.
 */
export function nameDecision(j: Judging): Verdict | undefined {
  const { subject, policy } = j;
  const label = imageLabel(subject);
  const matchRef = canonicalReference(subject.reference);
  if (matchRef === undefined) {
    throw new EngineError(
      "INVALID_REFERENCE",
      `subject reference ${JSON.stringify(subject.reference.slice(0, 300))} is not a valid image name`,
    );
  }
  if (policy.isExempt(matchRef)) {
    return conclude(
      j,
      "exempt",
      [`${label} is exempt by ImagePolicy ${policy.name} (spec.exemptImages)`],
      [],
    );
  }
  if (!policy.governs(matchRef)) {
    if (policy.unmatchedImages === "Allow") {
      return conclude(
        j,
        "ungoverned",
        [`${label} is not governed by ImagePolicy ${policy.name} (spec.images) and unmatchedImages is Allow`],
        [],
      );
    }
    return denied(j, "not matched by spec.images and unmatchedImages is Deny", []);
  }
  return undefined;
}
