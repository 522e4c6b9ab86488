/**
 * Real edge-model shapes on the real agent (aedes broker, hub double, real
 * onnxruntime-node): models whose dynamic dimensions need a minimum size, and
 * the element types edge models use. Each is built in code, built into a
 * bundle the way an operator would (`examples` = --example, `smokeDims` =
 * --smoke-dims), installed (verify, stage, smoke check, swap, commit), then
 * served over the predict API; the types model also through telemetry.
 */
import mqtt, { type MqttClient } from 'mqtt';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonToTensor } from '../../bundle-build/json-tensor.js';
import { buildEdgeTypes } from '../../bundle-build/onnx-build-edge.js';
import { readModelInfo } from '../../bundle-build/onnx-info.js';
import { outputValues } from '../../bundles/smoke.js';
import { TELEMETRY_DEFAULTS } from '../../agent/telemetry/collector.js';
import { decodeTelemetry } from '../../protocol/messages.js';
import type { TelemetryReport } from '../../protocol/telemetry.js';
import { topics } from '../../protocol/topics.js';
import { EDGE_CLASSES } from '../helpers/edge-models.js';
import { makeBundle } from '../helpers/agent-test-hub.js';
import { fixture, http, waitInstalled, type Fixture } from '../helpers/agent-fixture.js';
import { cleanupTempDirs, waitFor } from '../helpers/env.js';

let fx: Fixture;
beforeAll(async () => { fx = await fixture(); });
afterAll(async () => { await fx?.close(); cleanupTempDirs(); });

/** What onnxruntime-node computes directly for JSON inputs, as the predict API writes it. */
async function direct(model: Uint8Array, inputs: Record<string, unknown>): Promise<Record<string, { dims: number[]; data: unknown[] }>> {
  const info = readModelInfo(model);
  const s = await ort.InferenceSession.create(model);
  try {
    const out = await s.run(Object.fromEntries(info.inputs.map((i) => [i.name, jsonToTensor(i, inputs[i.name])])));
    return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, { dims: [...t.dims], data: t.type === 'bool' ? Array.from(t.data as Uint8Array, (b) => b !== 0) : outputValues({ type: t.type, dims: t.dims, data: t.data as ArrayLike<unknown> }) }]));
  } finally {
    await s.release();
  }
}

let device = 0;
async function installed(b: Awaited<ReturnType<typeof makeBundle>>, extra: Parameters<Fixture['newAgent']>[1] = {}) {
  const id = `dev-edge-${device++}`;
  const agent = fx.newAgent(id, { listen: '127.0.0.1:0', ...extra });
  await agent.start();
  fx.hub.add(b);
  await fx.hub.assign(id, b, 1);
  await waitInstalled(agent, b.bundleId);
  return { agent, id, port: agent.address!.port };
}

describe('models whose dynamic dimensions have a minimum size install and serve', () => {
  let version = 1;
  for (const c of EDGE_CLASSES) {
    it(`${c.name}: built with --example, installed by a real agent, predicts what onnxruntime computes`, async () => {
      const b = await makeBundle(fx.keys, { name: 'edge', version: version++, model: c.model, examples: [{ inputs: c.example }] });
      expect(b.manifest.golden).toHaveLength(1);
      const { port } = await installed(b);
      const r = await http(port, 'POST', '/v1/predict', JSON.stringify({ inputs: c.example }));
      expect(r.status, JSON.stringify(r.json)).toBe(200);
      expect(r.json.outputs).toEqual(await direct(c.model, c.example));
    }, 120_000);
  }

  it('the device runs the golden cases instead of the synthetic input (the streaming VAD with golden cases installs)', async () => {
    // Golden cases written by hand, as `--golden` gives them: before, the synthetic input
    // (samples = 1) ran first and failed the reflect padding, so no golden case could help.
    const vad = EDGE_CLASSES[3];
    const want = await direct(vad.model, vad.example);
    const golden = [{ inputs: vad.example, outputs: { prob: want.prob as { dims: number[]; data: number[] } }, tolerance: 1e-4 }];
    const b = await makeBundle(fx.keys, { name: 'vad', version: 1, model: vad.model, golden });
    const { agent } = await installed(b);
    expect(agent.status().active?.bundleId).toBe(b.bundleId);
  }, 120_000);

  it('the device sizes the synthetic input by the signed smokeDims (reflect padding with --smoke-dims samples=16)', async () => {
    const pad = EDGE_CLASSES[0];
    const b = await makeBundle(fx.keys, { name: 'pad', version: 1, model: pad.model, smokeDims: pad.smokeDims! });
    expect(b.manifest.smokeDims).toEqual({ samples: 16 });
    const { port } = await installed(b);
    const r = await http(port, 'POST', '/v1/predict', JSON.stringify({ inputs: { x: [[1, 2, 3, 4, 5, 6]] } }));
    expect(r.status).toBe(200);
    // Reflect padding by 4: 5 4 3 2 | 1 2 3 4 5 6 | 5 4 3 2
    expect(r.json.outputs.y).toEqual({ dims: [1, 14], data: [5, 4, 3, 2, 1, 2, 3, 4, 5, 6, 5, 4, 3, 2] });
  }, 120_000);
});

describe('element types edge models use: float16, uint8 images, bool, string', () => {
  const model = buildEdgeTypes();
  const img = (k: number) => Array.from({ length: 4 }, (_, y) => Array.from({ length: 4 }, (_, x) => [(x * 16 + y + k) % 256, 255 - x * y, k]));
  const body = {
    h: [[1, -2, 0.5, 0.1], [3, 0.25, -0.125, 1e-5]],
    img: [img(0), img(200)],
    flag: [[true, false], [true, true]],
    word: [['hello'], ['wörld']],
  };
  let port = 0;
  let id = '';
  let served: Awaited<ReturnType<typeof installed>>['agent'];
  let spy: MqttClient;
  const reports: TelemetryReport[] = [];

  beforeAll(async () => {
    spy = await mqtt.connectAsync(fx.broker.url, { clientId: `spy-${process.pid}` });
    spy.on('message', (_t, p) => reports.push(decodeTelemetry(p)));
    const info = readModelInfo(model);
    // onnx-info reads every type from the model.
    expect(info.inputs.map((i) => i.type)).toEqual(['float16', 'uint8', 'bool', 'string']);
    expect(info.outputs.map((o) => o.type)).toEqual(['float16', 'float32', 'uint8', 'bool', 'string']);
    // Built with --example: the golden case the device then checks holds float16 numbers, bools (0/1) and strings.
    const b = await makeBundle(fx.keys, { name: 'types', version: 1, model, examples: [{ inputs: body }] });
    expect(b.manifest.golden![0].outputs.word_echo.data).toEqual(['hello', 'wörld']);
    expect(b.manifest.golden![0].outputs.flag_not.data).toEqual([0, 1, 0, 0]);
    const a = await installed(b, { telemetry: { ...TELEMETRY_DEFAULTS, windowMs: 200, sampleRate: 1, format: 'json' } });
    port = a.port;
    id = a.id;
    served = a.agent;
    await spy.subscribeAsync(topics.device(id, 'telemetry'));
  }, 120_000);
  afterAll(async () => { await spy?.endAsync(); });

  it('predict takes float16 as JSON numbers (rounded to the nearest half) and returns float16 outputs as numbers', async () => {
    const r = await http(port, 'POST', '/v1/predict', JSON.stringify({ inputs: body }));
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    const want = await direct(model, body);
    expect(r.json.outputs.h_out).toEqual(want.h_out);
    expect(r.json.outputs.h_out.dims).toEqual([2, 2]);
    // Numbers out, not raw half bits: |h_out| is a small linear function of small inputs.
    for (const v of r.json.outputs.h_out.data) expect(Math.abs(v)).toBeLessThan(10);
    const over = await http(port, 'POST', '/v1/predict', JSON.stringify({ inputs: { ...body, h: [[1, 1, 1, 70000], [1, 1, 1, 1]] } }));
    expect(over.json.error).toMatchObject({ code: 'AGENT_ERR_INPUT_RANGE', details: { input: 'h', index: [0, 3] } });
  });

  it('uint8 image inputs: means and maxima per channel as onnxruntime computes; 256 is refused', async () => {
    const r = await http(port, 'POST', '/v1/predict', JSON.stringify({ inputs: body }));
    const want = await direct(model, body);
    expect(r.json.outputs.img_mean).toEqual(want.img_mean);
    expect(r.json.outputs.img_max).toEqual({ dims: [2, 3], data: [51, 255, 0, 251, 255, 200] });
    const bad = await http(port, 'POST', '/v1/predict', JSON.stringify({ inputs: { ...body, img: [img(0), img(0).map((row, y) => row.map((px, x) => (x === 1 && y === 2 ? [256, 0, 0] : px)))] } }));
    expect(bad.json.error).toMatchObject({ code: 'AGENT_ERR_INPUT_RANGE', details: { input: 'img', index: [1, 2, 1, 0] } });
  });

  it('bool tensors in and out as JSON booleans', async () => {
    const r = await http(port, 'POST', '/v1/predict', JSON.stringify({ inputs: body }));
    expect(r.json.outputs.flag_not).toEqual({ dims: [2, 2], data: [false, true, false, false] });
    const bad = await http(port, 'POST', '/v1/predict', JSON.stringify({ inputs: { ...body, flag: [[1, 0], [true, true]] } }));
    expect(bad.json.error.code).toBe('AGENT_ERR_INPUT_TYPE');
  });

  it('string tensors in and out, non-ASCII intact', async () => {
    const r = await http(port, 'POST', '/v1/predict', JSON.stringify({ inputs: body }));
    expect(r.json.outputs.word_echo).toEqual({ dims: [2, 1], data: ['hello', 'wörld'] });
  });

  it('without examples the device runs the synthetic input (0 in float16, zeros as uint8, false, "") and serves', async () => {
    const b = await makeBundle(fx.keys, { name: 'types-synthetic', version: 1, model });
    expect(b.manifest.golden).toBeUndefined();
    const a = await installed(b);
    const r = await http(a.port, 'POST', '/v1/predict', JSON.stringify({ inputs: body }));
    expect(r.status).toBe(200);
    expect(r.json.outputs.word_echo.data).toEqual(['hello', 'wörld']);
  }, 120_000);

  it('telemetry summarises float16 features and outputs as numbers, bool and string inputs as categories', async () => {
    const before = reports.reduce((n, x) => n + x.requests, 0);
    for (let i = 0; i < 3; i++) expect((await http(port, 'POST', '/v1/predict', JSON.stringify({ inputs: body }))).status).toBe(200);
    // Requests so far: 4 ok + 2 refused in the tests above, then these 3.
    await waitFor(() => reports.reduce((n, x) => n + x.requests, 0) - before >= 3 && reports.reduce((n, x) => n + x.sampled, 0) >= 6, 'telemetry for the predictions', 30_000);
    const sum = (pick: (r: TelemetryReport) => { count: number; sum: number; min: number | null } | undefined) => {
      let count = 0; let total = 0; let min = Infinity;
      for (const r of reports) { const s = pick(r); if (s && s.count) { count += s.count; total += s.sum; min = Math.min(min, s.min!); } }
      return { count, total, min };
    };
    // Every sampled request (sampleRate 1) had 2 rows; float16 values are the halves of what was sent.
    const sampled = reports.reduce((n, x) => n + x.sampled, 0);
    const h0 = sum((r) => r.features['h[0]']);
    expect(h0.count).toBe(2 * sampled);
    expect(h0.total).toBe(sampled * (1 + 3));
    expect(sum((r) => r.features['h[1]']).min).toBe(-2);
    const h3 = sum((r) => r.features['h[3]']);
    expect(h3.total).toBeCloseTo(sampled * (0.0999755859375 + 0.000010013580322265625), 12); // half(0.1) + half(1e-5), a subnormal
    const out0 = sum((r) => r.outputs['h_out[0]']);
    expect(out0.count).toBe(2 * sampled);
    const want = await direct(model, body);
    expect(out0.total).toBeCloseTo(sampled * ((want.h_out.data[0] as number) + (want.h_out.data[2] as number)), 6);
    expect(sum((r) => r.outputs['img_mean[0]']).count).toBe(2 * sampled);
    const cats = (name: string) => {
      const c: Record<string, number> = {};
      for (const r of reports) for (const [k, v] of Object.entries(r.categorical[name]?.counts ?? {})) c[k] = (c[k] ?? 0) + v;
      return c;
    };
    expect(cats('flag[0]')).toEqual({ true: 2 * sampled });
    expect(cats('flag[1]')).toEqual({ false: sampled, true: sampled });
    expect(cats('word[0]')).toEqual({ hello: sampled, wörld: sampled });
  }, 60_000);

  it('a float16 output that overflows to Infinity counts as a non-finite output in the health window the rollout gates read', async () => {
    // Largest halves with these signs take h_out[1] past 65504 in the final Cast: -Infinity (checked directly first).
    const h = [[-65504, 65504, -65504, -65504], [1, 1, 1, 1]];
    const want = await direct(model, { ...body, h });
    expect(want.h_out.data[1]).toBe(Number.NEGATIVE_INFINITY);
    const before = served.status().predictions.errors;
    const ok = await http(port, 'POST', '/v1/predict', JSON.stringify({ inputs: body }));
    expect(ok.status).toBe(200);
    expect(served.status().predictions.errors).toBe(before);
    const r = await http(port, 'POST', '/v1/predict', JSON.stringify({ inputs: { ...body, h } }));
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(served.status().predictions.errors).toBe(before + 1);
  });
});
