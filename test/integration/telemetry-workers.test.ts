/**
 * Telemetry ingest on worker threads (`telemetry.ingestWorkers: 2`) in a real
 * hub (embedded aedes, SQLite file): reports from 12 devices over MQTT end up
 * in exactly the cells the hub's own-thread ingest makes of the same reports;
 * refusals made on the hub's thread (spoofed device) and in a worker (replay,
 * unknown feature, broken sketch) are counted by code with the link's other
 * refusals, and nothing of them is merged; debug rows still reach the hub.
 */
import { openMigrated } from '../../hub/db/open-migrated.js';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TelemetryWindow } from '../../agent/telemetry/window.js';
import type { Hub } from '../../hub/hub.js';
import { TelemetryIngest } from '../../hub/telemetry/ingest.js';
import { TELEMETRY_DEFAULTS } from '../../hub/telemetry/options.js';
import { TelemetryStore } from '../../hub/telemetry/telemetry-store.js';
import { encode } from '../../protocol/messages.js';
import { encodeTelemetryBinary } from '../../protocol/telemetry-binary.js';
import { compilePlan } from '../../protocol/telemetry-plan.js';
import type { TelemetryReport } from '../../protocol/telemetry.js';
import { topics } from '../../protocol/topics.js';
import { cleanupTempDirs, makeKeys, tempDir, waitFor } from '../helpers/env.js';
import { connectDevice } from '../helpers/hub-fixtures.js';
import { startTestHub } from '../helpers/hub-harness.js';
import { normal, prng } from '../helpers/random.js';
import { publishModel, referenceRows, type PublishedModel } from '../helpers/telemetry-fleet.js';

let hub: Hub;
let m: PublishedModel;
const FEATURES = ['x[0]', 'x[1]', 'x[2]', 'x[3]'];
const rand = prng(21);
const gauss = normal(rand);

beforeAll(async () => {
  const keys = makeKeys();
  hub = await startTestHub(keys, { telemetry: { ingestWorkers: 2, bucketMs: 60_000, flushMs: 50, driftIntervalMs: 0 } });
  m = await publishModel(hub, [keys.keys.release], { name: 'workers', version: 1, mlp: { features: 4, seed: 3 }, reference: referenceRows(FEATURES, 1500, 4) });
}, 60_000);

afterAll(async () => {
  await m?.model.release();
  await hub?.close();
  cleanupTempDirs();
});

function windowReport(deviceId: string, seq: number, from: number): TelemetryReport {
  const w = new TelemetryWindow(compilePlan(m.bundleId, m.manifest), from);
  for (let k = 0; k < 60; k++) {
    const x = Float32Array.from([gauss(), gauss() * 2 + 1, rand(), k % 7 === 0 ? NaN : gauss()]);
    w.request(1 + rand() * 3, true, { x: { type: 'float32', dims: [1, 4], data: x } }, { [m.manifest.outputs[0].name]: { type: 'float32', dims: [1, 2], data: Float32Array.of(x[0], x[1]) } }, 0);
  }
  w.failure('AGENT_ERR_BAD_INPUT');
  return { v: 1, deviceId, seq, to: from + 1000, part: 0, parts: 1, sampleRate: 1, dropped: 0, ...w.body() };
}

const rejected = (code: string) => hub.link.stats.rejected[code] ?? 0;

describe('telemetry ingest workers', () => {
  it('store exactly what the own-thread ingest stores, and count refusals made in a worker with the link\'s', async () => {
    const from = Date.now() - 5_000;
    const ids = Array.from({ length: 12 }, (_, i) => `wk-${i}`);
    const reports = ids.flatMap((id) => [1, 2, 3].map((seq) => windowReport(id, seq, from)));
    const clients = new Map(await Promise.all(ids.map(async (id) => [id, await connectDevice(hub.mqttUrl, id)] as const)));
    const before = { ...hub.link.stats.rejected };
    for (const r of reports) await clients.get(r.deviceId)!.publishAsync(topics.device(r.deviceId, 'telemetry'), encodeTelemetryBinary(r), { qos: 1 });
    const spoof = encodeTelemetryBinary({ ...windowReport('wk-1', 9, from) });
    const bad: [string, Buffer, string][] = [
      ['wk-0', spoof, 'HUB_ERR_DEVICE_MISMATCH'],
      ['wk-2', encodeTelemetryBinary(reports[6]), 'HUB_ERR_TELEMETRY_REPLAY'],
      ['wk-3', encodeTelemetryBinary({ ...windowReport('wk-3', 10, from), features: { 'nope[1]': reports[0].features['x[0]'] } }), 'HUB_ERR_BAD_TELEMETRY'],
      ['wk-4', Buffer.from(encodeTelemetryBinary(windowReport('wk-4', 11, from)).subarray(0, 200)), 'PROTO_ERR_INVALID_MESSAGE'],
      ['wk-5', encode({ ...windowReport('wk-5', 12, from), sampleRate: 7 }), 'PROTO_ERR_INVALID_MESSAGE'],
    ];
    for (const [id, payload] of bad) await clients.get(id)!.publishAsync(topics.device(id, 'telemetry'), payload, { qos: 1 });
    await waitFor(() => (hub.link.stats.handled.telemetry ?? 0) + Object.values(hub.link.stats.rejected).reduce((t, x) => t + x, 0) - Object.values(before).reduce((t, x) => t + x, 0) >= reports.length + bad.length, 'every message dispatched');
    await hub.telemetry.settle();
    // A report a worker refuses is counted under handled and under its code, so the sum above can be reached one
    // message early: wait for each refusal itself, then check none was counted twice.
    const want: Record<string, number> = { HUB_ERR_BAD_TELEMETRY: 1, HUB_ERR_DEVICE_MISMATCH: 1, HUB_ERR_TELEMETRY_REPLAY: 1, PROTO_ERR_INVALID_MESSAGE: 2 };
    await waitFor(() => Object.entries(want).every(([code, n]) => rejected(code) - (before[code] ?? 0) >= n), 'every refusal counted');
    await hub.telemetry.settle();
    expect(rejected('HUB_ERR_DEVICE_MISMATCH') - (before.HUB_ERR_DEVICE_MISMATCH ?? 0)).toBe(1);
    expect(rejected('HUB_ERR_TELEMETRY_REPLAY') - (before.HUB_ERR_TELEMETRY_REPLAY ?? 0)).toBe(1);
    expect(rejected('PROTO_ERR_INVALID_MESSAGE') - (before.PROTO_ERR_INVALID_MESSAGE ?? 0)).toBe(2);
    expect(hub.telemetry.pool!.stats.accepted).toBe(reports.length);

    // The reference: the same reports through the own-thread ingest into a fresh database.
    const db = openMigrated(join(tempDir('fleetcast-workers-ref-'), 'ref.db'));
    const ref = new TelemetryStore(db);
    const inline = new TelemetryIngest({ store: ref, options: { ...TELEMETRY_DEFAULTS, bucketMs: 60_000 }, now: Date.now, logger: pino({ level: 'silent' }), manifest: () => m.manifest, ringOf: () => 'default' });
    for (const r of reports) inline.handle(r);
    inline.flush();
    const cells = (s: TelemetryStore) => [...s.cells(m.bundleId, undefined, 0, Date.now() + 1, 60_000)]
      .map(([k, c]) => [k.key, k.ring, JSON.stringify(c.kind === 'latency' ? { ...c.s.toJSON(), sum: 0 } : c.kind === 'f' || c.kind === 'o' ? { ...c.s, sum: 0, sumSq: 0, sketch: { ...c.s.sketch.toJSON(), sum: 0 } } : c.s)] as const)
      .sort((a, b) => (a[0] < b[0] ? -1 : 1));
    const got = cells(hub.telemetry.telemetry);
    expect(got.length).toBe(FEATURES.length + 2 + 2); // features, 2 outputs, latency, meta
    expect(got).toEqual(cells(ref));
    // Sums add in another order across workers: equal to rounding.
    const sums = (s: TelemetryStore) => ([...s.cells(m.bundleId, undefined, 0, Date.now() + 1, 60_000)].find(([k]) => k.key === 'f:x[1]')![1] as { s: { sum: number; sumSq: number } }).s;
    expect(sums(hub.telemetry.telemetry).sum).toBeCloseTo(sums(ref).sum, 6);
    expect(sums(hub.telemetry.telemetry).sumSq).toBeCloseTo(sums(ref).sumSq, 6);
    expect(hub.telemetry.deviceStats().filter((d) => d.deviceId.startsWith('wk-')).map((d) => [d.deviceId, d.lastSeq])).toEqual(ids.map((id) => [id, 3]).sort());
    db.close();
    await Promise.all([...clients.values()].map((c) => c.endAsync()));
  });
});
