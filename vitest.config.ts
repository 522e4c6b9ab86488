import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const ROOT = fileURLToPath(new URL('.', import.meta.url));
const WORKSPACES = (JSON.parse(readFileSync(new URL('package.json', import.meta.url), 'utf8')) as { workspaces: string[] }).workspaces;

export default defineConfig({
  resolve: {
    // Workspace packages import each other by name (`@fleetcast/protocol/errors.js`, folder = package name);
    // tests run the sources, so a name goes to the .ts file, as the exports map's `source` condition does for
    // tsc. Every module is then loaded once, whether a test imports it relatively or a package by name: a
    // compiled dist/ copy beside the source would be a second FleetcastError class and break `instanceof`.
    // An alias rather than resolve.conditions: vitest hands its conditions to the test process's Node
    // (--conditions), worker threads inherit them, and the hub's compiled ingest worker would then load .ts.
    alias: [{ find: new RegExp(`^@fleetcast/(${WORKSPACES.join('|')})/(.+)\\.js$`), replacement: `${ROOT}$1/$2.ts` }],
  },
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
