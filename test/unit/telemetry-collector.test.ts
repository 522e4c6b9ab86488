/**
 * The agent's collector with the broker client seam replaced by a recorder
 * (the real MQTT path is tested in test/integration/drift-ingest.test.ts):
 * sampling, latency of every request, failures by code, one report per model
 * version, raw rows only with debug on, NaN as missing, size of a 32-feature report.
 */
import { describe, expect, it } from 'vitest';
import type { BrokerClient } from '../../agent/broker-client.js';
import type { TensorData } from '../../agent/runtime.js';
import { TelemetryCollector, parseTelemetryOptions } from '../../agent/telemetry/collector.js';
import { referenceProfile } from '../../protocol/feature-summary.js';
import type { Manifest } from '../../protocol/manifest.js';
import { decodeTelemetry, MESSAGE_LIMITS } from '../../protocol/messages.js';
import type { TelemetryReport } from '../../protocol/telemetry.js';
import { prng, normal } from '../helpers/random.js';

function recorder() {
  const sent: { topic: string; payload: Buffer }[] = [];
  const client = { connected: true, publish: async (topic: string, payload: Buffer) => { sent.push({ topic, payload }); } } as unknown as BrokerClient;
  return { client, sent, reports: () => sent.map((s) => decodeTelemetry(s.payload) as TelemetryReport) };
}

const r = prng(9);
const n = normal(r);

function model(id: string, width: number): { bundleId: string; manifest: Manifest } {
  const ref = referenceProfile(Array.from({ length: 2000 }, n), 10);
  return {
    bundleId: id.repeat(64),
    manifest: {
      inputs: [{ name: 'x', type: 'float32', shape: ['batch', width] }],
      outputs: [{ name: 'y', type: 'float32', shape: ['batch', 1] }],
      reference: { type: 'fleetcast.reference/v1', rows: 2000, bins: 10, features: Array.from({ length: width }, (_, i) => ({ name: `x[${i}]`, input: 'x', index: i, kind: 'numeric', profile: ref })), outputs: [] },
    } as unknown as Manifest,
  };
}

const feeds = (rows: number[][]): Record<string, TensorData> => ({ x: { type: 'float32', dims: [rows.length, rows[0].length], data: Float32Array.from(rows.flat()) } });
const out = (k: number): Record<string, TensorData> => ({ y: { type: 'float32', dims: [k, 1], data: new Float32Array(k).fill(0.5) } });

describe('telemetry collector', () => {
  it('defaults: 60 s windows, 10 % feature sampling, debug off', () => {
    expect(parseTelemetryOptions({})).toMatchObject({ windowMs: 60_000, sampleRate: 0.1, debugRowsPerWindow: 0 });
    expect(() => parseTelemetryOptions({ sampleRate: 2 })).toThrow(expect.objectContaining({ code: 'PROTO_ERR_INVALID_OPTION' }));
  });

  it('samples features at the configured rate but counts latency and outcome of every request', async () => {
    const rec = recorder();
    const m = model('a', 2);
    const c = new TelemetryCollector({ deviceId: 'd1', client: rec.client, random: prng(1), options: { sampleRate: 0.1 } });
    for (let i = 0; i < 2000; i++) c.observe(m, feeds([[n(), n()]]), out(1), 3);
    for (let i = 0; i < 7; i++) c.failure(m, 'AGENT_ERR_INPUT_RANGE');
    await c.flush();
    const [rep] = rec.reports();
    expect(rep.requests).toBe(2007);
    expect(rep.latency!.count).toBe(2000);
    expect(rep.failures).toEqual({ AGENT_ERR_INPUT_RANGE: 7 });
    expect(rep.sampled).toBeGreaterThan(150);
    expect(rep.sampled).toBeLessThan(250);
    expect(rep.features['x[0]'].count).toBe(rep.sampled);
    expect(rep.outputs['y[0]'].count).toBe(rep.sampled);
    expect(rep.debug).toBeUndefined();
    expect(rec.sent[0].topic).toBe('fc/v1/dev/d1/telemetry');
  });

  it('reports each model version of a window separately, with strictly increasing seqs', async () => {
    const rec = recorder();
    const c = new TelemetryCollector({ deviceId: 'd2', client: rec.client, seqBase: 7_000, options: { sampleRate: 1 } });
    c.observe(model('a', 2), feeds([[1, 2]]), out(1), 1);
    c.observe(model('b', 2), feeds([[3, 4], [5, 6]]), out(2), 1);
    await c.flush();
    await c.flush(); // an empty window sends nothing
    c.observe(model('a', 2), feeds([[1, 2]]), out(1), 1);
    await c.flush();
    const reps = rec.reports();
    expect(reps.map((x) => [x.bundleId[0], x.features['x[0]'].count, x.seq])).toEqual([['a', 1, 7000], ['b', 2, 7001], ['a', 1, 7002]]);
  });

  it('counts NaN as missing; sends raw rows only with debug on, at most the configured rows per window', async () => {
    const rec = recorder();
    const c = new TelemetryCollector({ deviceId: 'd3', client: rec.client, options: { sampleRate: 1 } });
    const m = model('a', 2);
    c.observe(m, feeds([[NaN, 1], [2, 3]]), out(2), 1);
    await c.flush();
    expect(rec.reports()[0].features['x[0]']).toMatchObject({ count: 1, nulls: 1 });
    expect(rec.reports()[0].debug).toBeUndefined();
    c.setDebug(2);
    expect(c.status().debug).toEqual({ on: true, rowsPerWindow: 2, until: null });
    for (let i = 0; i < 5; i++) c.observe(m, feeds([[i, i]]), out(1), 1);
    await c.flush();
    expect(rec.reports()[1].debug).toEqual([{ 'x[0]': 0, 'x[1]': 0 }, { 'x[0]': 1, 'x[1]': 1 }]);
  });

  it('debug sampling with `until` switches itself off then (issue #5: nobody needs to say off)', async () => {
    const rec = recorder();
    let t = 1_000_000;
    const c = new TelemetryCollector({ deviceId: 'd5', client: rec.client, now: () => t, options: { sampleRate: 1 } });
    const m = model('a', 2);
    c.setDebug(3, t + 60_000);
    expect(c.status().debug).toEqual({ on: true, rowsPerWindow: 3, until: t + 60_000 });
    c.observe(m, feeds([[1, 1]]), out(1), 1);
    t += 60_000;
    expect(c.status().debug).toEqual({ on: false, rowsPerWindow: 0, until: null });
    c.observe(m, feeds([[2, 2]]), out(1), 1);
    await c.flush();
    expect(rec.reports()[0].debug).toEqual([{ 'x[0]': 1, 'x[1]': 1 }]);
  });

  it('a 32-feature report of a 1,000-request window stays far under the message limit', async () => {
    const rec = recorder();
    const c = new TelemetryCollector({ deviceId: 'd4', client: rec.client, options: { sampleRate: 1 } });
    const m = model('a', 32);
    for (let i = 0; i < 1000; i++) c.observe(m, feeds([Array.from({ length: 32 }, n)]), out(1), 2 + r());
    await c.flush();
    const size = rec.sent[0].payload.length;
    expect(rec.reports()).toHaveLength(1);
    // Binary (the default form): about 11 KB for 32 features and an output (28 KB as JSON).
    expect(rec.sent[0].payload[0]).toBe(0xfc);
    expect(size).toBeLessThan(16 * 1024);
    expect(size).toBeLessThan(MESSAGE_LIMITS.telemetry);
  });
});
