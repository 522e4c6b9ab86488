/**
 * The shipped example examples/scenarios/field-faults.yaml, run by the compiled
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

it('example field-faults.yaml exits 0 with every expectation met', async () => {
  const { rec } = await runExample(h, 'field-faults.yaml');
  expect(rec.expectations.length).toBeGreaterThan(0);
  // Chunks really were tampered and links really went down; the devices still installed, and the broker restart shows as an outage.
  expect(rec.links.field.tampered).toBeGreaterThan(0);
  expect(rec.links.remote.refused).toBeGreaterThan(0);
  expect(rec.brokerOutages.length).toBeGreaterThan(0);
  // Both unplugged devices lost power (their phases then are recorded) and came back from their own disk to serve v1 (allOn above).
  const power = rec.faults.find((f) => f.kind === 'power-loss')!;
  expect(Object.values(power.phases!).reduce((a, b) => a + b, 0)).toBe(2);
  expect(rec.installs.filter((i) => i.group === 'unplugged').length).toBe(2);
  expect(rec.faults.map((f) => f.kind).sort()).toEqual(['broker-restart', 'clock-skew', 'flapping-link', 'network-loss', 'power-loss', 'slow-link', 'slow-link', 'tampered-chunks']);
}, 90_000);
