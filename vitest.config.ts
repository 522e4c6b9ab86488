import { defaultServerConditions } from 'vite';
import { defineConfig } from 'vitest/config';

// Workspace packages import each other by name (`@fleetcast/protocol/errors.js`); their exports map
// sends the `source` condition to the .ts file. Tests run the sources, so every module is loaded
// once, from source, whether a test imports it relatively or a package imports it by name: a mix
// of compiled dist/ and source would make two FleetcastError classes and break `instanceof`.
const conditions = ['source', ...defaultServerConditions];

export default defineConfig({
  // Tests run in vite's server (ssr) environment: its resolver is the one that needs the condition.
  ssr: { resolve: { conditions } },
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
