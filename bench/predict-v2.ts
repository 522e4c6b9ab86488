/**
 * Predict of a uint8 [1, 224, 224, 3] image (a small conv model built in code,
 * bundle-build/onnx-build-io.ts) through a real agent: Open Inference Protocol
 * binary (JSON header + 150,528 raw bytes), v2 JSON (a flat array of 150,528
 * numbers) and /v1/predict (nested JSON arrays), against two baselines in the
 * same run: a bare `session.run` on a pre-built tensor, and the HTTP floor, a
 * minimal node:http server that takes the same binary request, wraps its
 * bytes in a tensor with no validation, runs the same model and answers the
 * logits as JSON. Goal: binary v2 p50 within 1.3× of the HTTP floor.
 *
 * Method: bench/interleave.ts. The five arms run in short blocks, in every
 * order equally often (balanced permutations), so machine-load drift does
 * not favour one; ratios are medians of per-round ratios of block medians,
 * printed with their spread. One keep-alive connection per arm on loopback.
 */
import { writeFileSync } from 'node:fs';
import { Agent as HttpAgent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { createAgent } from '@fleetcast/agent/agent.js';
import { buildBundle } from '@fleetcast/bundle-build/build.js';
import { buildImageConv } from '@fleetcast/bundle-build/onnx-build-io.js';
import { rng } from '@fleetcast/bundle-build/onnx-build.js';
import { HubClient } from '@fleetcast/cli/hub-client.js';
import { readAdminToken } from '@fleetcast/hub/auth/tokens.js';
import { startHub } from '@fleetcast/hub/hub.js';
import { initKeys } from '@fleetcast/signing/keys.js';
import { benchDir } from './dirs.js';
import { blockRatios, interleave, type ArmResult } from './interleave.js';
import { fmt, summarize, type BenchResult } from './lib.js';

const SIZE = 224;
const PIXELS = SIZE * SIZE * 3;
/** 5 arms: 120 orders; every order runs once per 120 rounds. */
const PLAN = { rounds: 120, warmupRounds: 10, block: 4 };
const IMAGES = 6;
const SESSION: ort.InferenceSession.SessionOptions = { logSeverityLevel: 3, intraOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' };

interface Req { path: string; body: Buffer; headers: Record<string, string | number> }

function post(agent: HttpAgent, port: number, r: Req): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: r.path, method: 'POST', agent, headers: { ...r.headers, 'content-length': r.body.length } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`${r.path} answered ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(r.body);
  });
}

/** The HTTP floor: read the body, take the bytes after the JSON header as the image, run, answer JSON. */
async function floorServer(session: ort.InferenceSession): Promise<{ port: number; close: () => void }> {
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (b: Buffer) => parts.push(b));
    req.on('end', () => {
      const body = Buffer.concat(parts);
      const at = Number(req.headers['inference-header-content-length']);
      const image = new ort.Tensor('uint8', new Uint8Array(body.buffer, body.byteOffset + at, PIXELS), [1, SIZE, SIZE, 3]);
      void session.run({ image }).then((out) => {
        const text = JSON.stringify({ logits: Array.from(out.logits.data as Float32Array) });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
        res.end(text);
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as AddressInfo).port, close: () => { server.closeAllConnections(); server.close(); } };
}

export async function benchPredictV2(): Promise<BenchResult> {
  const dir = benchDir('predict-v2');
  const keys = initKeys(join(dir, 'keys'));
  const model = buildImageConv({ size: SIZE, seed: 11 });
  const modelPath = join(dir, 'model.onnx');
  writeFileSync(modelPath, model);
  const b = await buildBundle({ model: modelPath, name: 'camera', version: 1, releaseKeys: [keys.keys.release], out: join(dir, 'b.fcb') });
  const hub = await startHub({ dataDir: join(dir, 'hub'), keysDir: join(dir, 'keys'), mqttPort: 0, httpPort: 0, logLevel: 'silent', insecureDemo: true });
  const agent = createAgent({ deviceId: 'bench-v2', dataDir: join(dir, 'agent'), rootPath: keys.rootPath, brokerUrl: hub.mqttUrl, listen: '127.0.0.1:0', heartbeatMs: 0, maxBodyBytes: 8 * 1024 * 1024 });
  await agent.start();
  const api = new HubClient(hub.httpUrl, readAdminToken(hub.options.dataDir));
  const session = await ort.InferenceSession.create(model, SESSION);
  const floor = await floorServer(session);
  try {
    while ((await api.devices()).devices.length < 1) await new Promise((r) => setTimeout(r, 20));
    await api.publish(b.path);
    await api.deploy({ name: 'camera', version: 1, devices: ['bench-v2'], allowUnknown: true });
    while (agent.status().active?.version !== 1) await new Promise((r) => setTimeout(r, 20));

    const r = rng(5);
    const images = Array.from({ length: IMAGES }, () => { const a = new Uint8Array(PIXELS); for (let i = 0; i < PIXELS; i++) a[i] = Math.floor(r() * 256); return a; });
    const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'image', shape: [1, SIZE, SIZE, 3], datatype: 'UINT8', parameters: { binary_data_size: PIXELS } }] }));
    const binary: Req[] = images.map((img) => ({
      path: '/v2/models/camera/infer', body: Buffer.concat([header, img]),
      headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': header.length },
    }));
    const json: Req[] = images.map((img) => ({
      path: '/v2/models/camera/infer', headers: { 'content-type': 'application/json' },
      body: Buffer.from(JSON.stringify({ inputs: [{ name: 'image', shape: [1, SIZE, SIZE, 3], datatype: 'UINT8', data: Array.from(img) }] })),
    }));
    const nest = (img: Uint8Array) => [Array.from({ length: SIZE }, (_, y) => Array.from({ length: SIZE }, (_, x) => Array.from(img.subarray((y * SIZE + x) * 3, (y * SIZE + x) * 3 + 3))))];
    const v1: Req[] = images.map((img) => ({ path: '/v1/predict', headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify({ inputs: { image: nest(img) } })) }));
    const tensors = images.map((img) => new ort.Tensor('uint8', img, [1, SIZE, SIZE, 3]));

    const port = agent.address!.port;
    const conn = () => new HttpAgent({ keepAlive: true, maxSockets: 1 });
    const [cb, cj, c1, cf] = [conn(), conn(), conn(), conn()];
    const res = await interleave([
      { name: 'bare', run: async (i) => { await session.run({ image: tensors[i % IMAGES] }); } },
      { name: 'floor', run: (i) => post(cf, floor.port, binary[i % IMAGES]) },
      { name: 'binary', run: (i) => post(cb, port, binary[i % IMAGES]) },
      { name: 'json', run: (i) => post(cj, port, json[i % IMAGES]) },
      { name: 'v1', run: (i) => post(c1, port, v1[i % IMAGES]) },
    ], PLAN);
    for (const c of [cb, cj, c1, cf]) c.destroy();

    const s = (a: ArmResult) => summarize(a.samples);
    const [bare, fl, bin, js, one] = ['bare', 'floor', 'binary', 'json', 'v1'].map((k) => s(res[k]));
    const rb = blockRatios(res, 'binary', 'floor');
    const row = (name: string, x: ReturnType<typeof s>) => `${name.padEnd(22)} p50 ${fmt(x.p50, 3).padStart(8)} ms  p99 ${fmt(x.p99, 3).padStart(8)} ms  p50/floor ${fmt(x.p50 / fl.p50, 3).padStart(7)}  p50/bare ${fmt(x.p50 / bare.p50, 3).padStart(7)}`;
    return {
      name: 'predict-v2: uint8 [1,224,224,3] image through the agent (ms)',
      ours: { 'binary v2 p50': bin.p50, 'binary v2 p99': bin.p99, 'json v2 p50': js.p50, 'json v2 p99': js.p99, 'v1 predict p50': one.p50, 'v1 predict p99': one.p99 },
      baseline: { 'http floor p50': fl.p50, 'http floor p99': fl.p99, 'bare session.run p50': bare.p50, 'bare session.run p99': bare.p99 },
      ratios: [
        { name: 'binary v2 / floor p50', value: bin.p50 / fl.p50, goal: 1.3 },
        { name: 'binary v2 / floor (median of per-round block ratios)', value: rb.median, goal: 1.3 },
        { name: 'binary v2 / bare p50', value: bin.p50 / bare.p50 },
        { name: 'json v2 / binary v2 p50', value: js.p50 / bin.p50 },
        { name: 'v1 / binary v2 p50', value: one.p50 / bin.p50 },
      ],
      notes: [
        row('bare session.run', bare), row('http floor', fl), row('binary v2', bin), row('json v2', js), row('v1 /v1/predict', one),
        `binary/floor per-round block ratio: median ${fmt(rb.median, 3)}, p25 ${fmt(rb.p25, 3)}, p75 ${fmt(rb.p75, 3)}, 95% CI of the median ${fmt(rb.ciLo, 3)}–${fmt(rb.ciHi, 3)} (${rb.n} rounds)`,
        `request bodies: binary ${binary[0].body.length} B, json v2 ${json[0].body.length} B, v1 ${v1[0].body.length} B; ${PLAN.rounds} rounds × ${PLAN.block} requests per arm after ${PLAN.warmupRounds} warm-up rounds; GCs binary ${res.binary.gcCount} (${fmt(res.binary.gcMs, 1)} ms), json ${res.json.gcCount} (${fmt(res.json.gcMs, 1)} ms), v1 ${res.v1.gcCount} (${fmt(res.v1.gcMs, 1)} ms)`,
        'the agent arms include what the floor skips: Host/Origin/Content-Type checks, the model lookup, validation (none needed for uint8 without limits), predict stats, health and sampled telemetry',
      ],
    };
  } finally {
    floor.close();
    await session.release();
    await agent.stop();
    await hub.close();
  }
}
