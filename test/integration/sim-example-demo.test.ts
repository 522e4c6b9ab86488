/**
 * The shipped example examples/scenarios/demo.yaml, run by the compiled
 * `fleetcast sim` against the real hub in its default secure mode (devices
 * enrolled through the API with the admin token): exit 0, every expectation
 * met, every action done, and the report's JSON says so.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunRecord } from '../../simulator/run-record.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';
import { EXAMPLES, startSimHub, type SimHub } from '../helpers/sim-hub.js';

let h: SimHub;
beforeAll(async () => { h = await startSimHub(); }, 60_000);
afterAll(async () => { await h?.hub.close(); cleanupTempDirs(); });

it('example demo.yaml exits 0 with every expectation met', async () => {
  const report = tempDir('fleetcast-sim-report-');
  const r = await h.sim(['--scenario', join(EXAMPLES, 'demo.yaml'), ...h.common(), '--report', report]);
  const rec = JSON.parse(readFileSync(join(report, 'report.json'), 'utf8')) as RunRecord;
  expect({ code: r.code, unmet: rec.expectations.filter((e) => !e.met), failedActions: rec.actions.filter((a) => !a.ok) }, r.stdout + r.stderr).toEqual({ code: 0, unmet: [], failedActions: [] });
  expect(rec.expectations.length).toBeGreaterThan(0);
  // The rollout's decisions were read back from the hub: start, two promotions, completion.
  expect(rec.rollouts[0].decisions.map((d) => d.kind)).toEqual(expect.arrayContaining(['start', 'complete']));
}, 90_000);
