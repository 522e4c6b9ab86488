/**
 * The shipped example examples/scenarios/drift-early-ring.yaml, run by the compiled
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

it('example drift-early-ring.yaml exits 0 with every expectation met', async () => {
  const { rec } = await runExample(h, 'drift-early-ring.yaml');
  expect(rec.expectations.length).toBeGreaterThan(0);
  expect(rec.drift[0].flagged.filter((f) => f.feature === 'x[3]').map((f) => f.ring)).toEqual(['early']);
}, 90_000);
