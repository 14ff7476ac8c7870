// Prints vitest's JSON results as one plain closing line: "tests: N passed, N failed, N skipped",
// after the Node.js runtime that ran them (scripts/test.sh runs this with the same node as vitest).
import { readFileSync } from "node:fs";

const file = process.argv[2];
const r = JSON.parse(readFileSync(file, "utf8"));
const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
console.log(`node: ${process.version} (${process.execPath})`);
console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
