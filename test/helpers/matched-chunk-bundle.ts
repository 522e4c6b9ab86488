/**
 * For the simulator's shared-receive suites: a bundle whose chunk (~80 KB of
 * incompressible weights) is above the agent framer's matching size
 * (agent/mqtt-framer.ts MIN_MATCHED_PAYLOAD), uploaded to the hub and deployed
 * to every device.
 */
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import { MIN_MATCHED_PAYLOAD } from '../../agent/mqtt-framer.js';
import type { Hub } from '../../hub/hub.js';
import { api, makeBundle, type TestKeys } from './hub-harness.js';

export async function deployMatchedChunkBundle(h: Hub, keys: TestKeys, name: string) {
  const b = await makeBundle([keys.keys.release], { name, version: 1, model: { seed: 7, padFloats: 20_000 } });
  expect(b.manifest.payload.compressedLength).toBeGreaterThan(MIN_MATCHED_PAYLOAD);
  expect((await api(h, 'POST', '/v1/bundles', new Uint8Array(readFileSync(b.path)))).status).toBeLessThan(300);
  expect((await api(h, 'POST', '/v1/deployments', { name, version: 1, all: true })).status).toBe(200);
  return b;
}
