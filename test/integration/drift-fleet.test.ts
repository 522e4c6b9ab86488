/**
 * Fleet-wide drift, end to end on the hub side: 200 devices, each with a real
 * MQTT connection and a real telemetry collector fed through the agent's input
 * validation and a real onnxruntime session; a real hub (embedded aedes, SQLite
 * file) ingests, merges and judges. 20 canary devices run v2, 180 stay on v1.
 * v2 re-releases v1's weights, so the two versions' predictions agree unless
 * their inputs differ (a changed model shows up as prediction drift vs v1).
 */
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '../../hub/hub.js';
import type { DriftReport } from '../../hub/drift/report.js';
import { scenarioGenerator, type Shift } from '../../simulator/scenarios.js';
import { cleanupTempDirs, makeKeys } from '../helpers/env.js';
import { adminToken, api, startTestHub } from '../helpers/hub-harness.js';
import { publishModel, referenceRows, startCollectorFleet, virtualClock, type CollectorFleet, type PublishedModel } from '../helpers/telemetry-fleet.js';

const FEATURES = Array.from({ length: 8 }, (_, i) => `x[${i}]`);
const WINDOW_MS = 500;
const ids = Array.from({ length: 200 }, (_, i) => `dev-${String(i).padStart(3, '0')}`);
const canary = ids.slice(0, 20);

let hub: Hub;
let fleet: CollectorFleet;
let hook: Server;
const posted: unknown[] = [];
const clock = virtualClock();
const shifts: Shift[] = [];
let v1: PublishedModel;
let v2: PublishedModel;

beforeAll(async () => {
  hook = createServer((req, res) => { let b = ''; req.on('data', (c) => { b += c; }); req.on('end', () => { posted.push(JSON.parse(b)); res.end('{}'); }); });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', () => r()));
  const keys = makeKeys();
  hub = await startTestHub(keys, {
    telemetry: { bucketMs: 100, flushMs: 50, driftIntervalMs: 0, driftWindowMs: 2 * WINDOW_MS, webhookUrl: `http://127.0.0.1:${(hook.address() as { port: number }).port}/drift` },
  }, { now: clock.now });
  const reference = referenceRows(FEATURES, 5000, 11);
  v1 = await publishModel(hub, [keys.keys.release], { name: 'churn', version: 1, mlp: { features: 8, seed: 1 }, reference });
  v2 = await publishModel(hub, [keys.keys.release], { name: 'churn', version: 2, mlp: { features: 8, seed: 1 }, reference });
  expect((await api(hub, 'POST', '/v1/deployments', { name: 'churn', version: 1, devices: ids.slice(20), ring: 'wide', allowUnknown: true })).status).toBe(200);
  expect((await api(hub, 'POST', '/v1/deployments', { name: 'churn', version: 2, devices: canary, ring: 'canary', allowUnknown: true })).status).toBe(200);
  fleet = await startCollectorFleet(hub, { ids, clock, scenario: scenarioGenerator({ shifts }, 5) });
  for (const d of fleet.devices) d.model = canary.includes(d.id) ? v2 : v1;
}, 60_000);

afterAll(async () => {
  await fleet?.close();
  await hub?.close();
  await Promise.all([v1?.model.release(), v2?.model.release()]);
  hook?.close();
  cleanupTempDirs();
});

let shiftAt = 0;
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'cli/dist/fleetcast.js');
const run = promisify(execFile);
const drifting = (r: DriftReport) => r.rows.filter((x) => x.verdict === 'drift');

describe('drift across a 200-device fleet', () => {
  it('no shift: no drift alarm over 50 windows, on any ring, against the reference or the previous version', async () => {
    const seen: string[] = [];
    let judged = 0;
    for (let w = 0; w < 50; w++) {
      await fleet.window({ requests: 1, rows: 25, windowMs: WINDOW_MS });
      if (w < 1) continue;
      for (const b of [v1, v2]) {
        const r = hub.telemetry.report({ bundleId: b.bundleId, since: clock.now() - 2 * WINDOW_MS });
        judged += r.rows.filter((x) => x.verdict !== 'insufficient-data').length;
        for (const x of drifting(r)) seen.push(`window ${w} ${b === v1 ? 'v1' : 'v2'} ${x.ring} ${x.feature} vs ${x.baseline}: ${JSON.stringify(x.alarms)} p ${x.pValue}`);
      }
      await hub.telemetry.monitor.evaluate();
    }
    expect(seen).toEqual([]);
    // The comparisons really ran (n ≥ minN): canary and wide, inputs and outputs, vs reference and vs v1.
    expect(judged).toBe(49 * 30);
    expect(hub.telemetry.monitor.alerts).toEqual([]);
  }, 60_000);

  it('a 0.5σ shift of x[3] on the canary devices is reported for that feature and ring within two windows, and nothing else is', async () => {
    const at = clock.now();
    shifts.push({ feature: 'x[3]', devices: canary, at, mean: 0.5 });
    let found: DriftReport | null = null;
    for (let w = 0; w < 2 && !found; w++) {
      await fleet.window({ requests: 1, rows: 50, windowMs: WINDOW_MS });
      const r = hub.telemetry.report({ bundleId: v2.bundleId, ring: 'canary', since: at });
      if (drifting(r).some((x) => x.feature === 'x[3]' && x.kind === 'input')) found = r;
    }
    expect(found, 'drift on x[3] within two windows').not.toBeNull();
    const inputs = drifting(found!).filter((x) => x.kind === 'input');
    expect(new Set(inputs.map((x) => x.feature))).toEqual(new Set(['x[3]']));
    const row = inputs.find((x) => x.baseline === 'reference')!;
    expect(row.ring).toBe('canary');
    expect(row.wassersteinNorm!).toBeGreaterThan(0.35);
    expect(row.meanShift!).toBeGreaterThan(0.35);
    expect(row.n).toBeGreaterThanOrEqual(500);
    // Worst first.
    expect(found!.rows[0].verdict).toBe('drift');
    // The ring still on v1 sees nothing.
    const wide = hub.telemetry.report({ bundleId: v1.bundleId, ring: 'wide', since: at });
    expect(drifting(wide)).toEqual([]);
    expect(wide.rows.filter((x) => x.verdict === 'ok').length).toBeGreaterThan(0);

    // The same report over the API (and the alert: logged, recorded, POSTed).
    const viaApi = await api<DriftReport>(hub, 'GET', `/v1/drift/churn/2?ring=canary&since=${at}`);
    expect(viaApi.status).toBe(200);
    expect(viaApi.body.rows[0].feature).toBe(found!.rows[0].feature);
    // Thresholds in the query string: text on the wire, read as numbers (once refused: "querystring/minN must be integer").
    const tuned = await api<DriftReport>(hub, 'GET', `/v1/drift/churn/2?ring=canary&since=${at}&minN=10&psi=0.5&wasserstein=0.25`);
    expect(tuned.status, JSON.stringify(tuned.body)).toBe(200);
    expect(tuned.body.thresholds).toMatchObject({ minN: 10, psi: 0.5, wasserstein: 0.25 });
    expect((await api(hub, 'GET', `/v1/drift/churn/2?minN=-3`)).status).toBe(400);
    await hub.telemetry.monitor.evaluate();
    const alerts = hub.telemetry.monitor.alerts.filter((a) => a.state === 'drift');
    expect(alerts.map((a) => `${a.ring} ${a.feature}`)).toContain('canary x[3]');
    expect(alerts.every((a) => a.ring === 'canary')).toBe(true);
    const events = await api<{ events: { feature: string; ring: string; state: string }[] }>(hub, 'GET', `/v1/drift-events?bundleId=${v2.bundleId}`);
    expect(events.body.events.some((e) => e.feature === 'x[3]' && e.ring === 'canary' && e.state === 'drift')).toBe(true);
    expect(posted.some((p) => (p as { feature: string }).feature === 'x[3]')).toBe(true);
    // The rollout gate's reader sees it too: past the threshold (score > 1), on x[3].
    const reading = hub.telemetry.reader.maxDrift(v2.bundleId, 'canary', at);
    expect(reading.value!).toBeGreaterThan(1);
    expect(reading.feature).toBe('x[3]');
    expect(hub.telemetry.reader.maxDrift(v1.bundleId, 'wide', at).value!).toBeLessThan(1);
    shiftAt = at;
  }, 60_000);

  it('fleetcast drift report (compiled CLI) prints the same report, worst first, and exits 3 on drift', async () => {
    const cli = (...args: string[]) => run(process.execPath, [CLI, 'drift', ...args], { cwd: ROOT, timeout: 30_000, env: { ...process.env, FLEETCAST_TOKEN: adminToken(hub) } })
      .then((r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }), (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }));
    const table = await cli('report', 'churn@2', '--hub', hub.httpUrl, '--ring', 'canary', '--since', String(shiftAt));
    expect(table.code).toBe(3);
    const rows = table.stdout.split('\n').filter((l) => /^(DRIFT|ok|n<min) /.test(l));
    expect(rows[0]).toMatch(/^DRIFT\s+canary\s+x\[3\]\s+(reference|v1)\s/);
    expect(rows.filter((l) => l.startsWith("DRIFT") && !/x\[3\]|out /.test(l)), table.stdout).toEqual([]);
    const json = await cli('report', 'churn@2', '--hub', hub.httpUrl, '--ring', 'canary', '--since', String(shiftAt), '--json');
    expect(JSON.parse(json.stdout)).toMatchObject({ name: 'churn', version: 2, drift: true });
    const calm = await cli('report', 'churn@1', '--hub', hub.httpUrl, '--ring', 'wide', '--since', String(shiftAt));
    expect(calm.code).toBe(0);
    expect(calm.stdout).toContain('no drift');
    const unknown = await cli('report', 'churn@9', '--hub', hub.httpUrl);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('HUB_ERR_UNKNOWN_BUNDLE');
    const badSince = await cli('report', 'churn@2', '--hub', hub.httpUrl, '--since', 'yesterday');
    expect(badSince.stderr).toContain('HUB_ERR_BAD_REQUEST');
  }, 60_000);
});
