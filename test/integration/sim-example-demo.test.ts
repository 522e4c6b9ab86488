/**
 * The shipped example examples/scenarios/demo.yaml, run by the compiled
 * `fleetcast sim` against the real hub in its default secure mode (devices
 * enrolled through the API with the admin token): exit 0, every expectation
 * met, every action done, and the report's JSON says so.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { cleanupTempDirs } from '../helpers/env.js';
import { runExample, startSimHub, type SimHub } from '../helpers/sim-hub.js';

let h: SimHub;
beforeAll(async () => { h = await startSimHub(); }, 60_000);
afterAll(async () => { await h?.hub.close(); cleanupTempDirs(); });

it('example demo.yaml exits 0 with every expectation met', async () => {
  const { rec } = await runExample(h, 'demo.yaml');
  expect(rec.expectations.length).toBeGreaterThan(0);
  // The rollout's decisions were read back from the hub: start, two promotions, completion.
  expect(rec.rollouts[0].decisions.map((d) => d.kind)).toEqual(expect.arrayContaining(['start', 'complete']));
}, 90_000);
