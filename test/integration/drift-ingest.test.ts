/**
 * Telemetry ingest against a real hub (embedded aedes, SQLite file): bad
 * reports are refused with a counted code and never stop the others; a device
 * cannot report under another id; replays are dropped; a collector that was
 * offline delivers its buffer (bounded, oldest dropped and counted) on
 * reconnect; a report too big for one message is split and still merges; and
 * real agents (predict path, collector, MQTT) feed the hub.
 */
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectMqtt } from '../../agent/broker-client.js';
import { TelemetryCollector } from '../../agent/telemetry/collector.js';
import type { Hub } from '../../hub/hub.js';
import { MESSAGE_LIMITS, decodeTelemetry, encode } from '../../protocol/messages.js';
import type { TelemetryReport } from '../../protocol/telemetry.js';
import { topics } from '../../protocol/topics.js';
import { startFleet } from '../../simulator/fleet.js';
import { scenarioGenerator } from '../../simulator/scenarios.js';
import { cleanupTempDirs, makeKeys, tempDir, waitFor } from '../helpers/env.js';
import { connectDevice } from '../helpers/hub-fixtures.js';
import { api, startTestHub } from '../helpers/hub-harness.js';
import { publishModel, referenceRows, type PublishedModel } from '../helpers/telemetry-fleet.js';

let hub: Hub;
let keys: ReturnType<typeof makeKeys>;
let m: PublishedModel;
let wide: PublishedModel;
const FEATURES = ['x[0]', 'x[1]', 'x[2]', 'x[3]'];

beforeAll(async () => {
  keys = makeKeys();
  hub = await startTestHub(keys, { telemetry: { bucketMs: 100, flushMs: 50, driftIntervalMs: 0 } });
  m = await publishModel(hub, [keys.keys.release], { name: 'ingest', version: 1, mlp: { features: 4, seed: 3 }, reference: referenceRows(FEATURES, 2000, 4) });
  // 300 features: a 32 KB cap forces a report into parts.
  wide = await publishModel(hub, [keys.keys.release], { name: 'wide', version: 1, mlp: { features: 300, seed: 3, hidden: 4 }, reference: referenceRows(Array.from({ length: 300 }, (_, i) => `x[${i}]`), 600, 5) });
}, 60_000);

afterAll(async () => {
  await Promise.all([m?.model.release(), wide?.model.release()]);
  await hub?.close();
  cleanupTempDirs();
});

const rejected = (code: string) => hub.link.stats.rejected[code] ?? 0;

/** One valid report from a real collector, as bytes. */
async function validReport(deviceId: string, seqBase: number): Promise<TelemetryReport> {
  const sent: Buffer[] = [];
  const fake = { connected: true, publish: async (_t: string, p: Buffer) => { sent.push(p); } } as unknown as Parameters<typeof connectMqtt>[0] & { connected: boolean };
  const c = new TelemetryCollector({ deviceId, client: fake as never, seqBase, options: { sampleRate: 1 } });
  const g = scenarioGenerator({}, 1);
  const { compileValidator } = await import('../../agent/validate.js');
  const v = compileValidator(m.manifest.inputs, { maxBatch: 100 });
  const feeds = v(g.body(deviceId, m.manifest.inputs, 0, 10).inputs).feeds;
  c.observe({ bundleId: m.bundleId, manifest: m.manifest }, feeds, await m.model.run(feeds), 2);
  c.flush();
  await waitFor(() => sent.length === 1, 'report');
  return decodeTelemetry(sent[0]);
}

describe('telemetry ingest', () => {
  it('Drift_ring_text_never_500: a drift report asked for a ring holding a control character is a coded 400 (PostgreSQL refuses a NUL byte)', async () => {
    for (const ring of ['%00', 'a%00b', '%0A']) {
      const r = await api<{ error: { code: string; message: string } }>(hub, 'GET', `/v1/drift/ingest/1?ring=${ring}`);
      expect(r.status, ring).toBe(400);
      expect(r.body.error.code).toBe('HUB_ERR_BAD_REQUEST');
      expect(r.body.error.message).toContain('ring');
    }
    expect((await api(hub, 'GET', '/v1/drift/ingest/1?ring=canary')).status).toBe(200);
  });

  it('refuses malformed, oversized, foreign-bundle, mismatched-bin and spoofed reports by code, and keeps ingesting the rest', async () => {
    const dev = await connectDevice(hub.mqttUrl, 'dev-a');
    const good = await validReport('dev-a', 100);
    const t = topics.device('dev-a', 'telemetry');
    const before = { ...hub.link.stats.rejected };
    const accepted0 = hub.telemetry.ingest.stats.accepted;
    const bad: [Buffer, string][] = [
      [Buffer.from('{not json'), 'PROTO_ERR_INVALID_JSON'],
      [encode({ ...good, seq: 101, features: { 'x[0]': { ...good.features['x[0]'], count: -1 } } }), 'PROTO_ERR_INVALID_MESSAGE'],
      [Buffer.alloc(MESSAGE_LIMITS.telemetry + 1, 0x20), 'PROTO_ERR_MESSAGE_TOO_LARGE'],
      [encode({ ...good, seq: 102, bundleId: 'f'.repeat(64) }), 'HUB_ERR_TELEMETRY_UNKNOWN_BUNDLE'],
      [encode({ ...good, seq: 103, features: { 'nope[9]': good.features['x[0]'] } }), 'HUB_ERR_BAD_TELEMETRY'],
      // Bins not over the reference edges (one bin short).
      [encode({ ...good, seq: 104, features: { 'x[0]': { ...good.features['x[0]'], bins: [good.features['x[0]'].count] } } }), 'HUB_ERR_BAD_TELEMETRY'],
      // A device speaking for another: the body names dev-b on dev-a's topic.
      [encode({ ...good, seq: 105, deviceId: 'dev-b' }), 'HUB_ERR_DEVICE_MISMATCH'],
    ];
    for (const [payload] of bad) await dev.publishAsync(t, payload, { qos: 1 });
    await dev.publishAsync(t, encode(good), { qos: 1 });
    await waitFor(() => hub.telemetry.ingest.stats.accepted === accepted0 + 1, 'the good report after the bad ones');
    const want: Record<string, number> = {};
    for (const [, code] of bad) want[code] = (want[code] ?? 0) + 1;
    for (const [code, n] of Object.entries(want)) expect(rejected(code) - (before[code] ?? 0), code).toBe(n);
    // Nothing of the refused reports was merged: dev-b has no telemetry, the merged count is the good report's.
    expect(hub.telemetry.deviceStats().map((d) => d.deviceId)).toEqual(['dev-a']);
    const r = hub.telemetry.report({ bundleId: m.bundleId, since: 0 });
    expect(r.rings[0].requests).toBe(1);
    expect(r.rows.find((x) => x.feature === 'x[0]' && x.baseline === 'reference')!.n).toBe(10);
    await dev.endAsync();
  });

  it('drops a replayed report (seq not above the last one) and counts it', async () => {
    const dev = await connectDevice(hub.mqttUrl, 'dev-r');
    const r1 = await validReport('dev-r', 5000);
    const t = topics.device('dev-r', 'telemetry');
    const before = rejected('HUB_ERR_TELEMETRY_REPLAY');
    const accepted0 = hub.telemetry.ingest.stats.accepted;
    await dev.publishAsync(t, encode(r1), { qos: 1 });
    await dev.publishAsync(t, encode(r1), { qos: 1 });
    await dev.publishAsync(t, encode({ ...r1, seq: r1.seq - 1 }), { qos: 1 });
    await dev.publishAsync(t, encode({ ...r1, seq: r1.seq + 1 }), { qos: 1 });
    await waitFor(() => rejected('HUB_ERR_TELEMETRY_REPLAY') - before === 2 && hub.telemetry.ingest.stats.accepted === accepted0 + 2, 'replays dropped, fresh ones taken');
    expect(hub.telemetry.deviceStats().find((d) => d.deviceId === 'dev-r')!.lastSeq).toBe(r1.seq + 1);
    await dev.endAsync();
  });

  it('buffers while offline (bounded, oldest dropped and counted) and delivers the rest in order when the link is back', async () => {
    // The device reaches the broker through a TCP relay the test can cut and restore (a real network outage).
    const up = new URL(hub.mqttUrl);
    const sockets = new Set<Socket>();
    const relay = createServer((s) => {
      const b = connect(Number(up.port), up.hostname);
      sockets.add(s); sockets.add(b);
      s.pipe(b).pipe(s);
      const end = () => { s.destroy(); b.destroy(); };
      s.on('error', end); b.on('error', end); s.on('close', end); b.on('close', end);
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', () => r()));
    const port = (relay.address() as { port: number }).port;
    const client = connectMqtt({ url: `mqtt://127.0.0.1:${port}`, clientId: 'dev-flap', reconnectPeriodMs: 50, connectTimeoutMs: 5000 });
    await waitFor(() => client.connected, 'connect');
    const c = new TelemetryCollector({ deviceId: 'dev-flap', client, seqBase: 1_000, options: { sampleRate: 1, maxBuffered: 3 } });
    client.onConnect(() => c.onConnect());
    relay.close();
    for (const s of sockets) s.destroy();
    await waitFor(() => !client.connected, 'disconnect');
    const { compileValidator } = await import('../../agent/validate.js');
    const v = compileValidator(m.manifest.inputs, { maxBatch: 100 });
    const g = scenarioGenerator({}, 3);
    for (let w = 0; w < 5; w++) {
      c.observe({ bundleId: m.bundleId, manifest: m.manifest }, v(g.body('dev-flap', m.manifest.inputs, 0, 2).inputs).feeds, null, 1);
      c.flush();
    }
    expect(c.status()).toMatchObject({ buffered: 3, dropped: 2, sent: 0 });
    await new Promise<void>((r) => relay.listen(port, '127.0.0.1', () => r()));
    await waitFor(() => c.status().buffered === 0 && hub.telemetry.deviceStats().find((d) => d.deviceId === 'dev-flap')?.lastSeq === 1_004, 'buffer delivered after the link is back', 20_000);
    // The hub knows how many the device had to drop; the three kept windows arrived in order (no replay refusals).
    expect(hub.telemetry.deviceStats().find((d) => d.deviceId === 'dev-flap')!.dropped).toBe(2);
    expect(c.status().sent).toBe(3);
    expect(hub.telemetry.report({ bundleId: m.bundleId, since: 0 }).rings[0].requests).toBeGreaterThanOrEqual(3);
    await client.end();
    relay.close();
    for (const s of sockets) s.destroy();
  });

  it('splits a report over the size limit into parts that merge to the same counts', async () => {
    const sent: Buffer[] = [];
    const client = connectMqtt({ url: hub.mqttUrl, clientId: 'dev-wide', reconnectPeriodMs: 50, connectTimeoutMs: 5000 });
    await waitFor(() => client.connected, 'connect');
    const spy = { get connected() { return client.connected; }, publish: (t: string, p: Buffer) => { sent.push(p); return client.publish(t, p); } } as never;
    const c = new TelemetryCollector({ deviceId: 'dev-wide', client: spy, options: { sampleRate: 1, maxReportBytes: 8 * 1024 } });
    const { compileValidator } = await import('../../agent/validate.js');
    const v = compileValidator(wide.manifest.inputs, { maxBatch: 100 });
    const feeds = v(scenarioGenerator({}, 4).body('dev-wide', wide.manifest.inputs, 0, 20).inputs).feeds;
    c.observe({ bundleId: wide.bundleId, manifest: wide.manifest }, feeds, await wide.model.run(feeds), 1);
    c.flush();
    await waitFor(() => c.status().buffered === 0 && sent.length > 1, 'parts sent');
    expect(sent.every((b) => b.length <= 8 * 1024)).toBe(true);
    const parts = sent.map((b) => decodeTelemetry(b));
    expect(parts.map((p) => p.part)).toEqual(parts.map((_, i) => i));
    expect(new Set(parts.flatMap((p) => Object.keys(p.features))).size).toBe(300);
    await waitFor(() => hub.telemetry.deviceStats().find((d) => d.deviceId === 'dev-wide')?.lastSeq === parts.length - 1, 'every part ingested');
    const r = hub.telemetry.report({ bundleId: wide.bundleId, since: 0 });
    expect(r.rows.filter((x) => x.baseline === 'reference' && x.kind === 'input').map((x) => x.n)).toEqual(new Array(300).fill(20));
    expect(r.rings[0].requests).toBe(1);
    await client.end();
  });

  it('real agents report telemetry from their predict path, validation failures by code, and show it in their status', async () => {
    const fleet = await startFleet({ brokerUrl: hub.mqttUrl, agents: 3, rootPath: join(keys.dir, 'root.json'), dataDir: tempDir('fleetcast-agents-'), idPrefix: 'tel', agentOptions: { telemetry: { windowMs: 200, sampleRate: 1, maxBuffered: 100, debugRowsPerWindow: 0, format: 'json', maxReportBytes: MESSAGE_LIMITS.telemetry } } });
    try {
      expect((await api(hub, 'POST', '/v1/deployments', { name: 'ingest', version: 1, devices: [...fleet.ids], ring: 'canary', allowUnknown: true })).status).toBe(200);
      await fleet.waitForVersion('ingest', 1, 30_000);
      const g = scenarioGenerator({ shifts: [{ feature: 'x[1]', devices: 'all', at: 0, missing: 0.5 }] }, 9);
      let failed = 0;
      for (const a of fleet.agents) {
        for (let k = 0; k < 20; k++) await a.predict(g.body(a.options.deviceId, m.manifest.inputs, 1)).catch(() => { failed++; });
      }
      expect(failed).toBeGreaterThan(0);
      expect(fleet.agents[0].status().telemetry).toMatchObject({ windowMs: 200, sampleRate: 1, debug: { on: false } });
      await waitFor(() => {
        const r = hub.telemetry.report({ bundleId: m.bundleId, ring: 'canary', since: 0 });
        return r.rings[0] && r.rings[0].requests === 60 ? r : null;
      }, 'the agents\' windows at the hub');
      const r = hub.telemetry.report({ bundleId: m.bundleId, ring: 'canary', since: 0 });
      expect(r.rings[0].failures.AGENT_ERR_INPUT_NAN).toBe(failed);
      expect(r.rings[0].latencyMs!.n).toBe(60 - failed);
      expect(r.rows.find((x) => x.feature === 'x[0]' && x.baseline === 'reference')!.n).toBe(60 - failed);
    } finally {
      await fleet.stop();
    }
  });

  it('a damaged stored cell is started afresh and counted; ingest and flushes keep working', async () => {
    const dev = await connectDevice(hub.mqttUrl, 'dev-damaged');
    const t = topics.device('dev-damaged', 'telemetry');
    const good = await validReport('dev-damaged', 5_000);
    const accepted0 = hub.telemetry.ingest.stats.accepted;
    await dev.publishAsync(t, encode(good), { qos: 1 });
    await waitFor(() => hub.telemetry.ingest.stats.accepted > accepted0, 'first report accepted');
    hub.telemetry.ingest.flush();
    // Damage what was stored, then let the 100 ms bucket close so the in-memory cells are dropped.
    hub.store.db.prepare("UPDATE telemetry_fine SET data = '{damaged' WHERE bundle_id = ?").run(m.bundleId);
    await new Promise((r) => setTimeout(r, 250));
    // A report in the current bucket makes the next flush forget the closed bucket's cells.
    const nowAt = Date.now();
    const acceptedMid = hub.telemetry.ingest.stats.accepted;
    await dev.publishAsync(t, encode({ ...good, seq: good.seq + 1, from: nowAt, to: nowAt + 1 }), { qos: 1 });
    await waitFor(() => hub.telemetry.ingest.stats.accepted > acceptedMid, 'current-bucket report accepted');
    hub.telemetry.ingest.flush();
    expect(hub.telemetry.ingest.stats.unreadableCells).toBe(0);
    // The first window again (a later seq): its cells must be read back from the damaged rows.
    await dev.publishAsync(t, encode({ ...good, seq: good.seq + 2 }), { qos: 1 });
    await waitFor(() => hub.telemetry.ingest.stats.unreadableCells > 0, 'damaged cells noticed');
    expect(() => hub.telemetry.ingest.flush()).not.toThrow();
    const accepted1 = hub.telemetry.ingest.stats.accepted;
    await dev.publishAsync(t, encode({ ...good, seq: good.seq + 3 }), { qos: 1 });
    await waitFor(() => hub.telemetry.ingest.stats.accepted > accepted1, 'later report accepted');
    expect(() => hub.telemetry.ingest.flush()).not.toThrow();
    // Started afresh: every damaged cell of the first window was rewritten readable, and holds exactly
    // the two reports sent after the damage (the damaged report's counts are gone, not half-merged).
    const rows = hub.store.db.prepare("SELECT key, bucket, data FROM telemetry_fine WHERE bundle_id = ? AND key LIKE 'f:%'").all(m.bundleId) as { key: string; bucket: number; data: string }[];
    const first = Math.floor(good.from / 100) * 100; // bucketMs 100: a window is filed under its start's bucket
    const firstRows = rows.filter((r) => r.bucket === first);
    expect(firstRows.map((r) => r.key).sort()).toEqual(FEATURES.map((f) => `f:${f}`));
    for (const r of firstRows) {
      expect(r.data).not.toContain('{damaged');
      expect((JSON.parse(r.data) as { w: { count: number } }).w.count).toBe(2 * good.features[r.key.slice(2)].count);
    }
    await dev.endAsync();
  });
});
