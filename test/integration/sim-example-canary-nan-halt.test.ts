/**
 * The shipped example examples/scenarios/canary-nan-halt.yaml, run by the compiled
 * `fleetcast sim` against the real hub in its default secure mode (devices
 * enrolled through the API with the admin token): exit 0, every expectation
 * met, every action done, and the report's JSON says so.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { cleanupTempDirs } from '../helpers/env.js';
import { api } from '../helpers/hub-harness.js';
import { runExample, startSimHub, type SimHub } from '../helpers/sim-hub.js';

let h: SimHub;
beforeAll(async () => { h = await startSimHub(); }, 60_000);
afterAll(async () => { await h?.hub.close(); cleanupTempDirs(); });

it('example canary-nan-halt.yaml exits 0 with every expectation met', async () => {
  const { rec } = await runExample(h, 'canary-nan-halt.yaml');
  expect(rec.expectations.length).toBeGreaterThan(0);
  // The canary devices refused to install v2 (their golden cases came out NaN); the field never got it.
  expect(rec.installFailures.filter((f) => f.group === 'canary').length).toBeGreaterThan(0);
  expect(rec.installs.filter((i) => i.model === 'demo-mlp@2')).toEqual([]);
  // runtime: web in the scenario is what the devices told the hub they run.
  const runtimeOf = async (id: string) => (await api<{ state: { runtime: string } }>(h.hub, 'GET', `/v1/devices/${id}`)).body.state.runtime;
  expect(await runtimeOf('field-0')).toMatch(/^onnxruntime-web@/);
  expect(await runtimeOf('canary-0')).toMatch(/^onnxruntime-node@/);
}, 90_000);
