import { defineConfig } from "vitest/config";

// One config for the whole repo. Unit tests live next to the code; integration and
// end-to-end tests live under tests/ and start real local stand-ins, so they get more time.
export default defineConfig({
  root: import.meta.dirname,
  resolve: { conditions: ["@docpipe/source"] },
  ssr: { resolve: { conditions: ["@docpipe/source"] } },
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: ["packages/*/src/**/*.test.ts", "services/*/src/**/*.test.ts"],
          testTimeout: 30_000,
        },
      },
      {
        extends: true,
        test: {
          name: "integration",
          include: ["tests/**/*.test.ts", "infra/test/**/*.test.ts"],
          exclude: ["tests/faults/**", "**/node_modules/**"],
          testTimeout: 300_000,
          hookTimeout: 180_000,
          // 2 cores: each file starts its own stack, so run files one after another.
          fileParallelism: false,
        },
      },
      {
        extends: true,
        test: {
          // Fault injection (kills, duplicates, SIGTERM mid-message): the heaviest files, so they
          // run after every other project has finished (groupOrder), one after another.
          name: "faults",
          include: ["tests/faults/**/*.test.ts"],
          sequence: { groupOrder: 1 },
          testTimeout: 540_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
