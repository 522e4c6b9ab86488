import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests start brokers and onnxruntime sessions; two cores, so keep it modest.
    pool: 'forks',
    maxWorkers: 2,
  },
});
