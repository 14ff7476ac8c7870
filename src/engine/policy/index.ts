// ImagePolicy: model, validation, compilation (trust material + Rego), revision.
export { type CompileOptions, compileParsed, compilePolicy } from "./compile.js";
export { isPolicyValidationError, type PolicyIssue, PolicyValidationError } from "./errors.js";
export * from "./model.js";
export { usesKeyVault } from "./kmp.js";
export { compilePatterns, normalisePattern, repositoryOf } from "./patterns.js";
export { interpret as interpretRegoResult, loadRego } from "./rego.js";
export { canonicalJson, revisionOf } from "./revision.js";
export { parsePolicy, validatePolicy } from "./validate.js";
