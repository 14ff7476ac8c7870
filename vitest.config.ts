import { defineConfig } from "vitest/config";

// Two projects: fast unit/integration tests (loopback servers, real CLIs) and
// end-to-end tests on a real containerd. Both run in the README's test command.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/**/*.test.ts"],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          name: "e2e",
          include: ["e2e/**/*.test.ts"],
          // Each e2e file brings up its own containerd; two at once is what 2 cores take.
          maxWorkers: 1,
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 300_000,
          globalSetup: ["e2e/lib/global-setup.ts"],
        },
      },
    ],
  },
});
