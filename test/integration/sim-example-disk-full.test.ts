/**
 * The shipped example examples/scenarios/disk-full.yaml, run by the compiled
 * `fleetcast sim` against the real hub in its default secure mode: the full
 * group's devices (in-memory storage, capacity lowered to what they store while
 * the disk-full fault lasts) refuse v2 with AGENT_ERR_DISK_SPACE, the hub keeps
 * that refusal in their event history, they serve v1 throughout the fault, and a
 * deploy after the fault puts them on v2.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { cleanupTempDirs } from '../helpers/env.js';
import { api } from '../helpers/hub-harness.js';
import { runExample, startSimHub, type SimHub } from '../helpers/sim-hub.js';

let h: SimHub;
beforeAll(async () => { h = await startSimHub(); }, 60_000);
afterAll(async () => { await h?.hub.close(); cleanupTempDirs(); });

it('disk-full: an install during the fault is refused with AGENT_ERR_DISK_SPACE, v1 keeps serving, a deploy after the fault succeeds', async () => {
  // Exit 0: refused with AGENT_ERR_DISK_SPACE in the full group, every device on v2 at the end, no prediction failed.
  const { rec, report } = await runExample(h, 'disk-full.yaml');

  // The fault is a band of the report, on the full group only.
  expect(rec.faults.map((f) => [f.kind, f.group])).toEqual([['disk-full', 'full']]);
  const band = rec.faults[0];
  const html = readFileSync(join(report, 'report.html'), 'utf8');
  expect(/<table id="faults">(?:(?!<\/table>).)*<td>disk-full \(full\)<\/td>/s.test(html), 'the faults table has the disk-full row').toBe(true);

  // Both full devices refused, while the disk was full; the roomy group never did.
  const refusals = rec.installFailures.filter((f) => f.code === 'AGENT_ERR_DISK_SPACE');
  expect(new Set(refusals.map((f) => f.deviceId))).toEqual(new Set(['full-0', 'full-1']));
  for (const f of refusals) expect(f.t).toBeGreaterThanOrEqual(band.from);
  for (const f of refusals) expect(f.t).toBeLessThanOrEqual(band.to);

  // During the fault the full devices served v1, and served it: predictions there succeeded.
  const during = rec.samples.filter((s) => s.faults.includes('disk-full full'));
  expect(during.length).toBeGreaterThan(0);
  for (const s of during) expect(s.versions.full).toEqual({ 'demo-mlp@1': 2 });
  expect(during.reduce((a, s) => a + s.ok.full, 0)).toBeGreaterThan(0);

  // After it, the later deploy installed v2 on both.
  const v2 = rec.installs.filter((i) => i.group === 'full' && i.model === 'demo-mlp@2');
  expect(new Set(v2.map((i) => i.deviceId))).toEqual(new Set(['full-0', 'full-1']));
  for (const i of v2) expect(i.t).toBeGreaterThanOrEqual(band.to);

  // The hub saw the refusal: it is in the device's event history.
  const d = await api<{ events: { kind: string; code?: string }[]; state: { active: { version: number } | null } }>(h.hub, 'GET', '/v1/devices/full-0');
  expect(d.status).toBe(200);
  expect(d.body.events.map((e) => e.code)).toContain('AGENT_ERR_DISK_SPACE');
  expect(d.body.state.active?.version).toBe(2);
}, 90_000);
