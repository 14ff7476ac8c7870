import { EngineError } from "../errors.js";

/** One problem in a policy document, with the exact path (e.g. "spec.verifiers[1].cosign.keys[0].pem"). */
export interface PolicyIssue {
  path: string;
  message: string;
}

/** EngineError("INVALID_POLICY") that carries every issue found, not just the first. */
export class PolicyValidationError extends EngineError {
  readonly issues: PolicyIssue[];
  readonly policyName: string | undefined;

  constructor(policyName: string | undefined, issues: PolicyIssue[]) {
    const head = policyName ? `ImagePolicy ${policyName} is invalid` : "ImagePolicy is invalid";
    super("INVALID_POLICY", `${head}: ${issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`, {
      details: { issues },
    });
    this.name = "PolicyValidationError";
    this.issues = issues;
    this.policyName = policyName;
  }
}

export function isPolicyValidationError(e: unknown): e is PolicyValidationError {
  return e instanceof PolicyValidationError;
}
