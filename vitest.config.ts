import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests start brokers and onnxruntime sessions; two cores, so keep it modest.
    pool: 'forks',
    maxWorkers: 2,
    // dist/ is compiled once here, before any suite spawns the CLI or agent; and the skip log is made.
    globalSetup: ['test/setup/global.ts'],
    // The summary of tests skipped for a missing program prints after the usual report.
    reporters: ['default', './test/setup/skip-summary.ts'],
  },
});
