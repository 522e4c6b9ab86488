/**
 * Hub ingest throughput with 32-feature telemetry reports: decode (size cap,
 * binary form with every schema check), check against the bundle (known features, reference edges,
 * per-device seq), merge per (bundle, ring, key, bucket), and the batched
 * SQLite writes, on a real hub.db file — against a bare SQLite insert of the
 * same rows (one row per summary a report carries, its JSON as text) in
 * batches of the same size. MQTT is not in either path (the broker's own
 * throughput is another benchmark). Goal: ≥ 20,000 reports/s.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { pino } from 'pino';
import type { BrokerClient } from '@fleetcast/agent/broker-client.js';
import type { TensorData } from '@fleetcast/agent/runtime.js';
import { TelemetryCollector } from '@fleetcast/agent/telemetry/collector.js';
import { referenceProfile } from '@fleetcast/protocol/feature-summary.js';
import type { Manifest } from '@fleetcast/protocol/manifest.js';
import { decodeTelemetry } from '@fleetcast/protocol/messages.js';
import { encodeTelemetryBinary } from '@fleetcast/protocol/telemetry-binary.js';
import type { TelemetryReport } from '@fleetcast/protocol/telemetry.js';
import { openSqlite } from '@fleetcast/hub/db/open-migrated.js';
import { TelemetryIngest } from '@fleetcast/hub/telemetry/ingest.js';
import { IngestPool } from '@fleetcast/hub/telemetry/ingest-pool.js';
import { TELEMETRY_DEFAULTS } from '@fleetcast/hub/telemetry/options.js';
import { TelemetryStore } from '@fleetcast/hub/telemetry/telemetry-store.js';
import { scenarioGenerator } from '@fleetcast/simulator/scenarios.js';
import { benchDir } from './dirs.js';
import { nowMs, type BenchResult } from './lib.js';

const F = 32;
const DEVICES = 500;
const ROUNDS = 24;

export async function benchTelemetryIngest(): Promise<BenchResult> {
  const dir = benchDir('telemetry-ingest');
  const gen = scenarioGenerator({}, 2);
  const names = Array.from({ length: F }, (_, i) => `x[${i}]`);
  const profile = (seed: number) => referenceProfile(Array.from({ length: 4000 }, () => gen.value(`r${seed}`, 'x[0]', 0) as number), 10);
  const bundleId = 'c'.repeat(64);
  const manifest = {
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', F] }],
    outputs: [{ name: 'y', type: 'float32', shape: ['batch', 2] }],
    reference: { type: 'fleetcast.reference/v1', rows: 4000, bins: 10, features: names.map((n, i) => ({ name: n, input: 'x', index: i, kind: 'numeric', profile: profile(i) })), outputs: [] },
  } as unknown as Manifest;

  // One window's report per device (200 sampled requests each), as agents send them.
  const reports: TelemetryReport[] = [];
  for (let d = 0; d < DEVICES; d++) {
    let got: Buffer | null = null;
    const rec = { connected: true, publish: async (_t: string, p: Buffer) => { got = p; } } as unknown as BrokerClient;
    const c = new TelemetryCollector({ deviceId: `dev-${d}`, client: rec, options: { sampleRate: 1 } });
    for (let i = 0; i < 200; i++) {
      const x = Float32Array.from(names.map((n) => gen.value(`dev-${d}`, n, 0) as number));
      const feeds: Record<string, TensorData> = { x: { type: 'float32', dims: [1, F], data: x } };
      const out: Record<string, TensorData> = { y: { type: 'float32', dims: [1, 2], data: Float32Array.of(x[0], x[1]) } };
      c.observe({ bundleId, manifest }, feeds, out, 1 + (i % 9) / 4);
    }
    await c.flush();
    reports.push(decodeTelemetry(got!));
  }
  const binaryBytes = reports.reduce((t, r) => t + encodeTelemetryBinary(r).length, 0) / reports.length;
  const jsonBytes = reports.reduce((t, r) => t + JSON.stringify(r).length, 0) / reports.length;

  // Ours: the hub's ingest on a real SQLite file, flushing as the hub does (every maxPendingCells, here once per
  // window). Each window's reports arrive as the bytes agents send; `json` feeds the same path JSON for reference.
  let runs = 0;
  const run = (format: 'binary' | 'json', rounds: number): { ms: number; decodeMs: number; n: number } => {
    const db = openSqlite(join(dir, `hub-${format}-${runs++}.db`));
    const store = new TelemetryStore(db);
    const now = Date.now();
    const ingest = new TelemetryIngest({
      store, options: { ...TELEMETRY_DEFAULTS, maxPendingCells: 50_000 }, now: () => now, logger: pino({ level: 'silent' }),
      manifest: (id) => (id === bundleId ? manifest : undefined), ringOf: (deviceId) => (Number(deviceId.slice(4)) % 10 === 0 ? 'canary' : 'broad'),
    });
    let ms = 0;
    let decodeMs = 0;
    let n = 0;
    for (let round = 0; round < rounds; round++) {
      const wire = reports.map((r) => {
        const x = { ...r, seq: round, from: now - 60_000, to: now };
        return format === 'binary' ? encodeTelemetryBinary(x) : Buffer.from(JSON.stringify(x));
      });
      const t0 = nowMs();
      for (const b of wire) ingest.handleDecoded(ingest.decode(b));
      ingest.flush();
      ms += nowMs() - t0;
      // The decode share: the same bytes decoded again without the rest.
      const t1 = nowMs();
      for (const b of wire) ingest.decode(b);
      decodeMs += nowMs() - t1;
      n += wire.length;
    }
    db.close();
    return { ms, decodeMs, n };
  };
  run('binary', 2); // warm-up
  const bin = run('binary', ROUNDS);
  const json = run('json', Math.ceil(ROUNDS / 4));

  // The same through the hub's ingest workers (telemetry.ingestWorkers): this thread reads each report's head
  // and batches it to the device's worker; the workers decode, check and merge; their deltas are stored here.
  const pooled = async (workers: number): Promise<number> => {
    const db = openSqlite(join(dir, `hub-pool-${workers}.db`));
    const store = new TelemetryStore(db);
    const now = Date.now();
    let refused = 0;
    const pool = new IngestPool({
      workers, options: { ...TELEMETRY_DEFAULTS, flushMs: 1_000 }, store, now: () => now, logger: pino({ level: 'silent' }),
      manifest: (id) => (id === bundleId ? manifest : undefined), ringOf: (deviceId) => (Number(deviceId.slice(4)) % 10 === 0 ? 'canary' : 'broad'),
      onRefused: (_code, n) => { refused += n; }, onDebug: () => {},
    });
    const windows = Array.from({ length: ROUNDS + 2 }, (_, round) => reports.map((r) => encodeTelemetryBinary({ ...r, seq: round, from: now - 60_000, to: now })));
    for (let d = 0; d < DEVICES; d++) pool.submit(`dev-${d}`, windows[0][d]); // warm-up
    await pool.flush();
    const t0 = nowMs();
    for (let round = 1; round <= ROUNDS; round++) {
      for (let d = 0; d < DEVICES; d++) pool.submit(`dev-${d}`, windows[round][d]);
      // The batches go out; the next window is read once the workers are less than 4 MB behind.
      await pool.below(4 * 1024 * 1024);
    }
    await pool.flush();
    const ms = nowMs() - t0;
    await pool.close();
    db.close();
    if (refused > 0 || pool.stats.accepted !== (ROUNDS + 1) * DEVICES) throw new Error(`pool bench: ${refused} refused, ${pool.stats.accepted} accepted`);
    return (ROUNDS * DEVICES) / (ms / 1000);
  };
  const pool2 = await pooled(2);

  // Baseline: bare batched INSERTs of the same rows (one per summary in a report), one transaction per round.
  const bare = new Database(join(dir, 'bare.db'));
  bare.pragma('journal_mode = WAL');
  bare.pragma('synchronous = FULL');
  bare.exec('CREATE TABLE raw (device TEXT NOT NULL, seq INTEGER NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL)');
  const ins = bare.prepare('INSERT INTO raw (device, seq, key, data) VALUES (?, ?, ?, ?)');
  const rowsOf = (r: TelemetryReport, seq: number): [string, number, string, string][] => [
    ...Object.entries(r.features).map(([k, v]) => [r.deviceId, seq, `f:${k}`, JSON.stringify(v)] as [string, number, string, string]),
    ...Object.entries(r.outputs).map(([k, v]) => [r.deviceId, seq, `o:${k}`, JSON.stringify(v)] as [string, number, string, string]),
    [r.deviceId, seq, 'latency', JSON.stringify(r.latency)],
    [r.deviceId, seq, 'meta', JSON.stringify({ requests: r.requests, failures: r.failures })],
  ];
  let bareMs = 0;
  let rows = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const batch = reports.flatMap((r) => rowsOf(r, round));
    const t0 = nowMs();
    bare.transaction(() => { for (const row of batch) ins.run(...row); })();
    bareMs += nowMs() - t0;
    rows += batch.length;
  }
  bare.close();

  const ours = bin.n / (bin.ms / 1000);
  const base = (ROUNDS * DEVICES) / (bareMs / 1000);
  return {
    name: `hub telemetry ingest: ${F}-feature reports (${Math.round(binaryBytes)} bytes binary, ${Math.round(jsonBytes)} as JSON), decode + validate + merge + batched SQLite, vs bare batched INSERT of the same rows`,
    ours: { 'reports/s': ours, 'reports/s, 2 workers': pool2, 'decode share %': (100 * bin.decodeMs) / bin.ms, 'bytes/report': binaryBytes, 'JSON reports/s': json.n / (json.ms / 1000) },
    baseline: { 'reports/s': base, 'rows/s': rows / (bareMs / 1000) },
    ratios: [
      { name: 'bare / ours (time per report)', value: base / ours },
      { name: '20,000 / ours, hub thread (goal ≤ 1)', value: 20_000 / ours, goal: 1 },
      { name: '20,000 / ours, 2 ingest workers (goal ≤ 1)', value: 20_000 / pool2, goal: 1 },
    ],
    notes: [
      `${bin.n} reports from ${DEVICES} devices over ${ROUNDS} windows, one transaction per window on both sides; SQLite WAL, synchronous FULL; the bare side inserts one row per summary (${rows / (ROUNDS * DEVICES)} per report), ours writes merged cells`,
      'JSON reports/s: the same pipeline fed the JSON form (JSON.parse and the schema walk, then the same checks and merge), for comparison; MQTT is not in either path (see telemetry-mqtt)',
    ],
  };
}
