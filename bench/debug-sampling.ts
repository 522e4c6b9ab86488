/**
 * Cost of operator debug raw sampling (issue #5), on both sides:
 *
 * - Hub: `DebugRows.record` of a 100-row report (the per-window maximum) from
 *   one of 10 devices in debug (the default maxDebugDevices), into a real
 *   SQLite file: the session check, the insert and the trim to the newest
 *   1,000 rows per device. Baseline: the same rows written by a bare prepared
 *   INSERT in one transaction (no session check, no trim) — the floor for
 *   storing them at all.
 * - Agent: `TelemetryCollector.observe` of a sampled 32-feature request with
 *   debug on (100 rows per window) against debug off, over whole windows of
 *   1,000 requests (only the first 100 of a window build a raw row).
 */
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import type { BrokerClient } from '@fleetcast/agent/broker-client.js';
import type { TensorData } from '@fleetcast/agent/runtime.js';
import { TelemetryCollector, type TelemetryModel } from '@fleetcast/agent/telemetry/collector.js';
import { DebugSessionStore } from '@fleetcast/hub/debug/debug-store.js';
import { HubStore } from '@fleetcast/hub/store.js';
import { DebugRows } from '@fleetcast/hub/telemetry/debug-rows.js';
import { referenceProfile } from '@fleetcast/protocol/feature-summary.js';
import type { Manifest } from '@fleetcast/protocol/manifest.js';
import { benchDir } from './dirs.js';
import type { BenchResult } from './lib.js';

const F = 32;
const DEVICES = 10;
const ROWS = 100;
const REPORTS = 400;
const WINDOWS = 40;
const PER_WINDOW = 1_000;

function median(xs: number[]): number { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; }

function rowsOf(seed: number): Record<string, unknown>[] {
  return Array.from({ length: ROWS }, (_, r) => Object.fromEntries(Array.from({ length: F }, (_, i) => [`x[${i}]`, Math.round(((seed * 31 + r * 7 + i) % 997) * 1e3) / 1e3])));
}

function hubSide(): { oursMs: number; baseMs: number; kept: number } {
  const store = HubStore.open(benchDir('debug-rows'));
  try {
    const db = store.db;
    const now = Date.now();
    const sessions = new DebugSessionStore(db);
    for (let d = 0; d < DEVICES; d++) {
      sessions.write({ deviceId: `d${d}`, counter: now, rowsPerWindow: ROWS, startedAt: now, until: now + 3_600_000, endedAt: null, actor: 'bench', envelope: null, expiresAt: null, published: true, cleared: false },
        { at: now, deviceId: `d${d}`, action: 'on', actor: 'bench', rowsPerWindow: ROWS, until: now + 3_600_000, counter: now });
    }
    const rows = new DebugRows(db, { now: Date.now, logger: pino({ level: 'silent' }) });
    const bundle = 'a'.repeat(64);
    const reports = Array.from({ length: REPORTS }, (_, k) => rowsOf(k));
    db.exec('CREATE TABLE bench_rows (id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL, bundle_id TEXT NOT NULL, received_at INTEGER NOT NULL, window_from INTEGER, data TEXT NOT NULL)');
    const put = db.prepare('INSERT INTO bench_rows (device_id, bundle_id, received_at, window_from, data) VALUES (?, ?, ?, ?, ?)');
    const plain = db.transaction((dev: string, rs: Record<string, unknown>[]) => { for (const r of rs) put.run(dev, bundle, Date.now(), null, JSON.stringify(r)); });
    const ours: number[] = [];
    const base: number[] = [];
    // Interleaved, so both see the same file growth and machine load.
    for (let k = 0; k < REPORTS; k++) {
      const dev = `d${k % DEVICES}`;
      let t = performance.now();
      rows.record(dev, bundle, reports[k]);
      ours.push(performance.now() - t);
      t = performance.now();
      plain(dev, reports[k]);
      base.push(performance.now() - t);
    }
    return { oursMs: median(ours.slice(DEVICES)), baseMs: median(base.slice(DEVICES)), kept: rows.count('d0') };
  } finally {
    store.close();
  }
}

function model(): TelemetryModel {
  const ref = referenceProfile(Array.from({ length: 2000 }, (_, i) => Math.sin(i) * 3), 10);
  return {
    bundleId: 'b'.repeat(64),
    manifest: {
      inputs: [{ name: 'x', type: 'float32', shape: ['batch', F] }],
      outputs: [{ name: 'y', type: 'float32', shape: ['batch', 1] }],
      reference: { type: 'fleetcast.reference/v1', rows: 2000, bins: 10, features: Array.from({ length: F }, (_, i) => ({ name: `x[${i}]`, input: 'x', index: i, kind: 'numeric', profile: ref })), outputs: [] },
    } as unknown as Manifest,
  };
}

async function agentSide(): Promise<{ onNs: number; offNs: number }> {
  const client = { connected: true, publish: async () => {} } as unknown as BrokerClient;
  const m = model();
  const feeds: Record<string, TensorData> = { x: { type: 'float32', dims: [1, F], data: Float32Array.from({ length: F }, (_, i) => Math.cos(i)) } };
  const out: Record<string, TensorData> = { y: { type: 'float32', dims: [1, 1], data: new Float32Array([0.5]) } };
  const on = new TelemetryCollector({ deviceId: 'on', client, options: { sampleRate: 1 } });
  const off = new TelemetryCollector({ deviceId: 'off', client, options: { sampleRate: 1 } });
  on.setDebug(ROWS, Date.now() + 3_600_000);
  const window = async (c: TelemetryCollector): Promise<number> => {
    const t = performance.now();
    for (let i = 0; i < PER_WINDOW; i++) c.observe(m, feeds, out, 1);
    const ms = performance.now() - t;
    await c.flush();
    return (ms * 1e6) / PER_WINDOW;
  };
  const a: number[] = [];
  const b: number[] = [];
  for (let w = 0; w < WINDOWS; w++) {
    // Alternate which goes first: neither arm always runs on a warmer cache.
    if (w % 2) { a.push(await window(on)); b.push(await window(off)); } else { b.push(await window(off)); a.push(await window(on)); }
  }
  return { onNs: median(a.slice(4)), offNs: median(b.slice(4)) };
}

export async function benchDebugSampling(): Promise<BenchResult> {
  const hub = hubSide();
  const agent = await agentSide();
  return {
    name: `debug sampling: hub stores a ${ROWS}-row report (${DEVICES} devices in debug, newest 1,000 kept); agent observe with debug on`,
    ours: { 'hub ms / 100-row report': hub.oursMs, 'agent ns / sampled request': agent.onNs },
    baseline: { 'hub ms / 100-row report': hub.baseMs, 'agent ns / sampled request': agent.offNs },
    ratios: [
      { name: 'hub record / bare insert', value: hub.oursMs / hub.baseMs, goal: 2 },
      { name: 'agent debug on / off', value: agent.onNs / agent.offNs, goal: 1.2 },
    ],
    notes: [`rows kept for one device after ${REPORTS / DEVICES} reports of ${ROWS}: ${hub.kept} (bound 1,000)`, `agent: ${WINDOWS} windows of ${PER_WINDOW} sampled 32-feature requests per arm, median ns per request`],
  };
}
